import { fireEvent, screen, waitFor } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { renderWithApi } from '../test-api';
import Webhooks from './Webhooks';

const HOOK = {
  id: 'w1',
  project_id: 'p1',
  url: 'https://hooks.example.com/cairn',
  events: ['run.succeeded'],
  enabled: true,
  previous_secret_until: null,
  created_at: '2026-11-30T06:00:00Z',
};
const DELIVERY = {
  id: 'd1',
  webhook_id: 'w1',
  event_type: 'run.succeeded',
  payload: {},
  status: 'delivered',
  attempts: 2,
  response_code: 200,
  duration_ms: 41,
  last_error: null,
  next_attempt_at: null,
  created_at: '2026-11-30T06:00:00Z',
  updated_at: '2026-11-30T06:00:01Z',
};

function renderPanel() {
  return renderWithApi(<Webhooks projectId="p1" />, (method, url) => {
    if (url.includes('/deliveries')) return url.includes('/redeliver') ? { ...DELIVERY, status: 'pending' } : [DELIVERY];
    return method === 'POST' ? { ...HOOK, secret: 'whsec_c2VjcmV0' } : [HOOK];
  });
}

describe('Webhooks', () => {
  it('adds an endpoint and shows its secret once', async () => {
    const sent = renderPanel();
    fireEvent.change(screen.getByLabelText('Endpoint URL'), { target: { value: 'https://hooks.example.com/cairn' } });
    fireEvent.click(screen.getByLabelText('member.added'));
    fireEvent.click(screen.getByRole('button', { name: 'Add endpoint' }));
    await waitFor(() => expect(screen.getByRole('status').textContent).toContain('whsec_c2VjcmV0'));
    const made = sent.find((s) => s.method === 'POST');
    expect(made).toEqual({
      method: 'POST',
      url: '/api/v1/projects/p1/webhooks',
      body: { url: 'https://hooks.example.com/cairn', events: ['run.succeeded', 'run.failed', 'member.added'] },
    });
    fireEvent.click(screen.getByRole('button', { name: 'I have stored it' }));
    expect(screen.queryByRole('status')).toBeNull();
  });

  it('shows the delivery log and redelivers', async () => {
    const sent = renderPanel();
    fireEvent.click(await screen.findByRole('button', { name: 'Deliveries' }));
    const log = await screen.findByRole('table', { name: 'Deliveries' });
    await waitFor(() => expect(log.textContent).toContain('delivered'));
    expect(log.textContent).toContain('41 ms');
    fireEvent.click(screen.getByRole('button', { name: 'Redeliver' }));
    await waitFor(() => expect(sent.some((s) => s.url === '/api/v1/projects/p1/webhooks/w1/deliveries/d1/redeliver')).toBe(true));
  });
});
