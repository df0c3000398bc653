import { fireEvent, screen, waitFor } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { renderWithApi } from '../test-api';
import Schedules from './Schedules';

const SCHEDULE = {
  id: 's1',
  project_id: 'p1',
  name: 'Morning report',
  cron: '0 9 * * MON-FRI',
  timezone: 'Europe/Paris',
  message: 'Summarise yesterday.',
  thread_id: null,
  service_account_id: 'u9',
  missed: 'skip',
  paused: false,
  next_runs: ['2026-12-01T08:00:00Z', '2026-12-02T08:00:00Z'],
  last_run_at: null,
  last_run_id: null,
  last_error: 'the tick of 2026-11-30 was missed (no process was running) and skipped',
  created_at: '2026-11-30T06:00:00Z',
};

function renderPanel() {
  return renderWithApi(<Schedules projectId="p1" />, (method, url) => {
    if (url.endsWith('/service-accounts')) return [{ id: 'u9', name: 'Nightly', role: 'editor', created_at: '', keys: [] }];
    return method === 'GET' ? [SCHEDULE] : SCHEDULE;
  });
}

describe('Schedules', () => {
  it('shows the next runs and why the last tick started nothing, and pauses', async () => {
    const sent = renderPanel();
    expect((await screen.findByLabelText('Next runs of Morning report')).textContent).toContain(' · ');
    expect(screen.getByText(/was missed/)).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Pause' }));
    await waitFor(() => expect(sent.some((s) => s.method === 'PATCH')).toBe(true));
    expect(sent.find((s) => s.method === 'PATCH')).toEqual({ method: 'PATCH', url: '/api/v1/projects/p1/schedules/s1', body: { paused: true } });
  });

  it('schedules a task as a service account', async () => {
    const sent = renderPanel();
    await screen.findByRole('option', { name: 'Nightly' });
    fireEvent.change(screen.getByLabelText('Name'), { target: { value: 'Weekly digest' } });
    fireEvent.change(screen.getByLabelText('When (cron: minute hour day month weekday)'), { target: { value: '0 8 * * MON' } });
    fireEvent.change(screen.getByLabelText('Time zone'), { target: { value: 'UTC' } });
    fireEvent.change(screen.getByLabelText('Task to post'), { target: { value: 'Digest the week.' } });
    fireEvent.click(screen.getByRole('button', { name: 'Schedule' }));
    await waitFor(() => expect(sent.some((s) => s.method === 'POST')).toBe(true));
    expect(sent.find((s) => s.method === 'POST')?.body).toEqual({
      name: 'Weekly digest',
      cron: '0 8 * * MON',
      timezone: 'UTC',
      message: 'Digest the week.',
      service_account_id: 'u9',
    });
  });
});
