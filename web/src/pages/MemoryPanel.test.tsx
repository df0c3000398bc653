import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { Client, type SessionMarker } from '../api/client';
import { SessionProvider } from '../session';
import MemoryPanel from './MemoryPanel';

function renderPanel(canWrite: boolean) {
  const sent: Array<{ method: string; url: string; body: unknown }> = [];
  const fetcher = ((input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    sent.push({ method: init?.method ?? 'GET', url, body: typeof init?.body === 'string' ? (JSON.parse(init.body) as unknown) : null });
    const found = [{ id: 'm1', source: 'note', text: 'Acme Corp is our biggest customer.', score: 0.91, created_at: '' }];
    const body = url.includes('/search') ? found : [{ id: 'm2', source: 'note', text: 'x', created_at: '' }];
    return Promise.resolve(new Response(JSON.stringify(body), { status: url.includes('/search') ? 200 : 201, headers: { 'Content-Type': 'application/json' } }));
  }) as typeof fetch;
  const client = new Client('', { get: () => false, set: () => undefined } satisfies SessionMarker, fetcher);
  (client as unknown as { accessToken: string }).accessToken = 'a';
  render(
    <SessionProvider client={client}>
      <MemoryPanel projectId="p1" canWrite={canWrite} />
    </SessionProvider>,
  );
  return sent;
}

describe('MemoryPanel', () => {
  it('searches by meaning and shows the similarity', async () => {
    const sent = renderPanel(false);
    fireEvent.change(screen.getByLabelText("Search the project's memory"), { target: { value: 'biggest customer' } });
    fireEvent.click(screen.getByRole('button', { name: 'Search' }));
    const found = await screen.findByRole('list', { name: 'Memories found' });
    expect(found.textContent).toContain('Acme Corp');
    expect(found.textContent).toContain('similarity 0.91');
    expect(sent[0]?.url).toBe('/api/v1/projects/p1/memory/search?q=biggest%20customer&limit=10');
    expect(screen.queryByRole('button', { name: 'Remember' })).toBeNull();
  });

  it('lets editors add to the memory', async () => {
    const sent = renderPanel(true);
    fireEvent.change(screen.getByLabelText('Something for the project to remember'), { target: { value: 'Budget is 5k' } });
    fireEvent.click(screen.getByRole('button', { name: 'Remember' }));
    await waitFor(() => expect(screen.getByRole('status').textContent).toBe('Remembered (1 piece).'));
    expect(sent[0]).toEqual({ method: 'POST', url: '/api/v1/projects/p1/memory', body: { text: 'Budget is 5k' } });
  });
});
