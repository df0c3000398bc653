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

  it('lists the sandbox hosts with their sandboxes and whether each host is alive', async () => {
    renderWithApi(<Admin />, (_method, url) => {
      if (url === '/api/v1/admin/sandboxes')
        return [
          { host: 'http://h1:8081', capacity: 4, live: true, draining: false, heartbeat_at: '2026-11-30T08:00:00Z', sandboxes: [{ id: 'abcdef1234', owner: 'u1', thread: 't1', running: true, busy: true, active_at: '2026-11-30T08:00:00Z' }] },
          { host: 'http://h2:8081', capacity: 4, live: false, draining: true, heartbeat_at: '2026-11-30T07:00:00Z', sandboxes: [] },
        ];
      return [];
    });
    const first = await screen.findByRole('listitem', { name: 'Host http://h1:8081' });
    expect(first.textContent).toContain('live');
    expect(first.textContent).toContain('1 running of 4, 0 paused');
    expect(screen.getByRole('table', { name: 'Sandboxes on http://h1:8081' }).textContent).toContain('executing');
    const second = screen.getByRole('listitem', { name: 'Host http://h2:8081' });
    expect(second.textContent).toContain('no heartbeat');
    expect(second.textContent).toContain('draining');
  });
});
