import { fireEvent, screen, waitFor } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { renderWithApi } from '../test-api';
import Admin from './Admin';

const REFUSED = {
  id: 'a1',
  actor: 'u1',
  project_id: 'p1',
  action: 'tool.refused',
  target: 'run:r1',
  outcome: 'refused',
  detail: { tool: 'web_fetch' },
  client_addr: null,
  created_at: '2026-11-30T08:00:00Z',
};

describe('Admin', () => {
  it('filters the audit log by action and outcome, and shows targets and refusals', async () => {
    const sent = renderWithApi(<Admin />, (_method, url) => {
      if (url.includes('/admin/audit')) return [REFUSED];
      if (url.includes('/connections')) return [];
      return [];
    });
    expect(await screen.findByText(/tool.refused on run:r1 \(refused\)/)).toBeTruthy();
    fireEvent.change(screen.getByLabelText('Action (or a family: run.)'), { target: { value: 'tool.' } });
    fireEvent.change(screen.getByLabelText('Outcome'), { target: { value: 'refused' } });
    await waitFor(() => expect(sent.some((s) => s.url.includes('action=tool.&outcome=refused'))).toBe(true));
  });
});
