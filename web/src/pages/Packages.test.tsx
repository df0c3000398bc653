import { fireEvent, screen, waitFor } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { ProjectResponse } from '../api/schema';
import { renderWithApi } from '../test-api';
import Packages from './Packages';

const PROJECT: ProjectResponse = {
  id: 'p1',
  name: 'Research',
  role: 'owner',
  created_by: 'u1',
  created_at: '2026-11-30T00:00:00Z',
  model: null,
  budget_usd: null,
  retention_days: null,
  packages: false,
  requirements: 'numpy>=2\n',
};

describe('Packages', () => {
  it('lets an owner allow installs and set the requirements', async () => {
    const sent = renderWithApi(<Packages project={PROJECT} />, () => ({ ...PROJECT, packages: true }));
    const save = screen.getByRole('button', { name: 'Save packages' });
    expect((save as HTMLButtonElement).disabled).toBe(true);
    expect(screen.getByLabelText<HTMLTextAreaElement>(/Requirements/).value).toBe('numpy>=2\n');
    fireEvent.click(screen.getByRole('checkbox'));
    fireEvent.change(screen.getByLabelText(/Requirements/), { target: { value: 'numpy>=2\npolars' } });
    fireEvent.click(save);
    await waitFor(() => expect(sent.some((s) => s.method === 'PATCH')).toBe(true));
    expect(sent.find((s) => s.method === 'PATCH')).toEqual({
      method: 'PATCH',
      url: '/api/v1/projects/p1',
      body: { packages: true, requirements: 'numpy>=2\npolars' },
    });
  });

  it('shows a member the setting without letting them change it', () => {
    renderWithApi(<Packages project={{ ...PROJECT, role: 'viewer', packages: true }} />, () => null);
    expect(screen.getByRole<HTMLInputElement>('checkbox').checked).toBe(true);
    expect(screen.getByRole<HTMLInputElement>('checkbox').disabled).toBe(true);
    expect(screen.getByLabelText<HTMLTextAreaElement>(/Requirements/).disabled).toBe(true);
    expect(screen.queryByRole('button', { name: 'Save packages' })).toBeNull();
  });
});
