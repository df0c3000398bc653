import { fireEvent, screen, waitFor } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { renderWithApi } from '../test-api';
import { DeleteAccount, DeleteThread, ProjectDangerZone } from './Deletion';

const PROJECT = { id: 'p1', name: 'Acme', role: 'owner', created_at: '', model: null, budget_usd: null };
const ME = { id: 'u1', email: 'ada@example.com', display_name: 'Ada', role: 'member', disabled: false, created_at: '' };

function deletion(status: string, done: number) {
  return {
    id: 'd1',
    kind: 'project',
    target: 'p1',
    project_id: 'p1',
    status,
    steps_done: done,
    steps_total: 4,
    attempts: 1,
    last_error: null,
    created_at: '',
    finished_at: null,
  };
}

describe('Deleting', () => {
  it('a project only once its name is typed, then follows the deletion to its end', async () => {
    let polls = 0;
    const sent = renderWithApi(<ProjectDangerZone project={PROJECT as never} />, (method, url) => {
      if (url.endsWith('/me')) return ME;
      if (method === 'DELETE') return deletion('pending', 0);
      polls += 1;
      return polls < 2 ? deletion('running', 2) : deletion('done', 4);
    });
    const button = screen.getByRole('button', { name: 'Delete project' });
    expect((button as HTMLButtonElement).disabled).toBe(true);
    fireEvent.change(screen.getByLabelText(/Type the project's name/), { target: { value: 'Acme' } });
    fireEvent.click(button);
    expect(await screen.findByLabelText('Deleting The project')).toBeTruthy();
    expect(sent.find((s) => s.method === 'DELETE')?.url).toBe('/api/v1/projects/p1');
    expect(await screen.findByText(/The project is deleted/, {}, { timeout: 4000 })).toBeTruthy();
    expect(sent.some((s) => s.url === '/api/v1/deletions/d1')).toBe(true);
  });

  it('exports the project as an archive (owners)', async () => {
    const sent = renderWithApi(<ProjectDangerZone project={PROJECT as never} />, (_method, url) => (url.endsWith('/me') ? ME : {}));
    fireEvent.click(screen.getByRole('button', { name: /Export the project/ }));
    await waitFor(() => expect(sent.some((s) => s.method === 'GET' && s.url === '/api/v1/projects/p1/export')).toBe(true));
  });

  it('a thread after a confirmation that says what goes', async () => {
    const sent = renderWithApi(<DeleteThread threadId="t1" projectId="p1" />, () => ({ ...deletion('pending', 0), kind: 'thread' }));
    fireEvent.click(screen.getByRole('button', { name: 'Delete thread' }));
    expect(screen.getByRole('alertdialog').textContent).toContain('Files it saved stay in the library');
    expect(sent.some((s) => s.method === 'DELETE')).toBe(false);
    fireEvent.click(screen.getAllByRole('button', { name: 'Delete thread' })[0] as HTMLElement);
    await waitFor(() => expect(sent.find((s) => s.method === 'DELETE')?.url).toBe('/api/v1/threads/t1'));
  });

  it('an account, handing a project owned alone over to a member', async () => {
    const sent = renderWithApi(<DeleteAccount />, (method, url) => {
      if (url.endsWith('/me') && method === 'GET') return ME;
      if (url.endsWith('/projects')) return [PROJECT];
      if (url.endsWith('/members'))
        return [
          { user_id: 'u1', display_name: 'Ada', email: '', role: 'owner', created_at: '' },
          { user_id: 'u2', display_name: 'Bob', email: '', role: 'editor', created_at: '' },
        ];
      return { user: { ...ME, display_name: 'Deleted user' }, deletions: [], handed_over: { p1: 'u2' } };
    });
    await screen.findByRole('option', { name: 'hand it over to Bob' });
    fireEvent.change(screen.getByRole('combobox'), { target: { value: 'u2' } });
    fireEvent.change(screen.getByLabelText('Your password'), { target: { value: 'secret words' } });
    fireEvent.click(screen.getByRole('button', { name: 'Delete my account' }));
    expect(await screen.findByText(/Your account is deleted/)).toBeTruthy();
    expect(sent.find((s) => s.method === 'DELETE')).toEqual({
      method: 'DELETE',
      url: '/api/v1/me',
      body: { password: 'secret words', projects: { p1: { hand_over_to: 'u2' } } },
    });
  });
});
