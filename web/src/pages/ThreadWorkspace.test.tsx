import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { Client, type SessionMarker } from '../api/client';
import type { EventResponse, RunEvent } from '../api/schema';
import { SessionProvider } from '../session';
import ThreadPage from './ThreadPage';

function json(status: number, body: unknown): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

let seq = 0;
function event(payload: RunEvent, run_id: string | null = 'r1'): EventResponse {
  seq += 1;
  return { ...payload, seq, run_id, created_at: '2026-12-01T10:00:00Z' };
}

/** A run that visited a page, wrote a file and answered; then one that failed. */
function log(): EventResponse[] {
  seq = 0;
  return [
    event({ kind: 'message.created', payload: { id: 'm1', role: 'user', author: 'u1', content: 'Find the price' } }, null),
    event({ kind: 'run.status', payload: { status: 'running' } }),
    event({ kind: 'code', payload: { code: "browser_open('https://example.com')\nprint('found 42')" } }),
    event({ kind: 'tool', payload: { name: 'browser_open', args: '{"url":"https://example.com"}', result: '{"title":"Example"}', ok: true, duration_ms: 30 } }),
    event({ kind: 'browser', payload: { action: 'browser_open', url: 'https://example.com/', title: 'Example', screenshot: 'r1-1-1.jpg' } }),
    event({ kind: 'output', payload: { type: 'stream', name: 'stdout', text: 'found 42\n' } }),
    event({ kind: 'workspace', payload: { changes: [{ path: 'price.txt', change: 'added', size: 2 }] } }),
    event({ kind: 'observation', payload: { text: 'stdout: found 42' } }),
    event({ kind: 'message.created', payload: { id: 'm2', role: 'assistant', content: 'It costs **42**.' } }, null),
    event({ kind: 'run.status', payload: { status: 'succeeded' } }),
    event({ kind: 'message.created', payload: { id: 'm3', role: 'user', author: 'u1', content: 'And in euros?' } }, null),
    event({ kind: 'run.status', payload: { status: 'failed', error: 'the model is unreachable' } }, 'r2'),
  ];
}

type Sent = { method: string; url: string; body: unknown };

function renderThread(events: EventResponse[]): Sent[] {
  const sent: Sent[] = [];
  const sse = events.map((e) => `id: ${e.seq}\ndata: ${JSON.stringify(e)}\n\n`).join('');
  const fetcher = ((input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const method = init?.method ?? 'GET';
    sent.push({ method, url, body: typeof init?.body === 'string' ? (JSON.parse(init.body) as unknown) : null });
    if (url === '/api/v1/threads/t1') return Promise.resolve(json(200, { id: 't1', project_id: 'p1', title: 'Prices', last_event_seq: 0 }));
    if (url === '/api/v1/projects/p1') return Promise.resolve(json(200, { id: 'p1', name: 'Acme', role: 'owner' }));
    if (url === '/api/v1/projects/p1/members') return Promise.resolve(json(200, [{ user_id: 'u1', display_name: 'Ada' }]));
    if (url === '/api/v1/me') return Promise.resolve(json(200, { id: 'u1', role: 'member' }));
    if (url === '/api/v1/models') return Promise.resolve(json(200, { models: [{ id: 'lab/fast' }, { id: 'lab/smart' }] }));
    if (url.startsWith('/api/v1/threads/t1/events')) return Promise.resolve(new Response(sse, { headers: { 'Content-Type': 'text/event-stream' } }));
    if (url === '/api/v1/threads/t1/runs') return Promise.resolve(json(200, []));
    if (url === '/api/v1/threads/t1/workspace') return Promise.resolve(json(200, [{ path: 'price.txt', kind: 'file', size: 2, modified: null }]));
    if (url.startsWith('/api/v1/threads/t1/pictures/')) return Promise.resolve(new Response('jpeg', { headers: { 'Content-Type': 'image/jpeg' } }));
    if (url === '/api/v1/threads/t1/workspace/save') return Promise.resolve(json(201, { id: 'f1', path: 'price.txt', version: 1 }));
    if (url === '/api/v1/runs/r1/fork') return Promise.resolve(json(201, { thread: { id: 't2', title: 'Prices (edited)' }, run: { id: 'r3' } }));
    if (url === '/api/v1/runs/r2/retry') return Promise.resolve(json(201, { id: 'r4' }));
    if (url === '/api/v1/threads/t1/messages') return Promise.resolve(json(201, { message: { id: 'm4' } }));
    return Promise.resolve(json(404, { code: 'not_found', detail: `no ${url}` }));
  }) as typeof fetch;
  const client = new Client('', { get: () => false, set: () => undefined } satisfies SessionMarker, fetcher);
  (client as unknown as { accessToken: string }).accessToken = 'a';
  render(
    <SessionProvider client={client}>
      <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
        <ThreadPage id="t1" />
      </QueryClientProvider>
    </SessionProvider>,
  );
  return sent;
}

// jsdom has no object URLs; the page only needs one it can put in an <img>.
Object.assign(URL, { createObjectURL: () => 'blob:test', revokeObjectURL: () => undefined });

describe('the thread workspace', () => {
  it('shows each run after its message, with its tools, pages and files, and the answer after it', async () => {
    renderThread(log());
    const conversation = await screen.findByRole('region', { name: 'Conversation' });
    await within(conversation).findByText(/It costs/);
    const order = [...conversation.querySelectorAll('article, [aria-label^="Step "]')].map((el) => el.getAttribute('aria-label'));
    expect(order).toEqual(['Message from You', 'Run succeeded', 'Step 1', 'Answer from Cairn', 'Message from You', 'Run failed']);
    const tools = within(conversation).getByRole('list', { name: 'Tools called in step 1' });
    expect(tools.textContent).toContain('browser_open');
    expect(within(conversation).getByRole('list', { name: 'Pages visited in step 1' }).textContent).toContain('https://example.com/');
    expect(within(conversation).getByText('+price.txt')).toBeTruthy();
  });

  it("shows the agent's computer: what it printed, what its browser saw, its files (saved to the library)", async () => {
    const sent = renderThread(log());
    const computer = await screen.findByRole('region', { name: "The agent's computer" });
    // The latest run failed before any step; pin the first run's step.
    fireEvent.click(await screen.findByRole('button', { name: 'Pin: the computer after step 1' }));
    await waitFor(() => expect(within(computer).getByLabelText('Terminal').textContent).toContain('found 42'));
    fireEvent.mouseDown(within(computer).getByRole('tab', { name: 'browser' }));
    const shot = await within(computer).findByRole('img', { name: 'The page Example after browser_open' });
    expect(shot.getAttribute('src')).toMatch(/^blob:/);
    expect(sent.some((r) => r.url === '/api/v1/threads/t1/pictures/r1-1-1.jpg')).toBe(true);
    expect(within(computer).getByLabelText('Address').textContent).toBe('https://example.com/');
    fireEvent.mouseDown(within(computer).getByRole('tab', { name: 'files' }));
    fireEvent.click(await within(computer).findByRole('button', { name: 'Save price.txt to the library' }));
    await waitFor(() => expect(sent.find((r) => r.url === '/api/v1/threads/t1/workspace/save')?.body).toEqual({ path: 'price.txt' }));
  });

  it('edits a message into a branch, retries a failed run, and sends with the chosen model', async () => {
    const sent = renderThread(log());
    const edit = await screen.findAllByRole('button', { name: 'Edit this message and regenerate' });
    fireEvent.click(edit[0] as HTMLElement);
    fireEvent.change(screen.getByLabelText('Your edited message'), { target: { value: 'Find the price in dollars' } });
    fireEvent.click(screen.getByRole('button', { name: 'Regenerate in a branch' }));
    await waitFor(() => expect(globalThis.location.hash).toBe('#/threads/t2'));
    expect(sent.find((r) => r.url === '/api/v1/runs/r1/fork')?.body).toEqual({ step: 0, content: 'Find the price in dollars' });

    fireEvent.click(screen.getByRole('button', { name: 'Retry' }));
    await waitFor(() => expect(sent.some((r) => r.url === '/api/v1/runs/r2/retry' && r.method === 'POST')).toBe(true));

    fireEvent.change(await screen.findByLabelText('Model for this run'), { target: { value: 'lab/smart' } });
    fireEvent.change(screen.getByLabelText('Your message'), { target: { value: 'Try again' } });
    fireEvent.click(screen.getByRole('button', { name: 'Send' }));
    await waitFor(() => expect(sent.find((r) => r.url === '/api/v1/threads/t1/messages')?.body).toMatchObject({ content: 'Try again', model: 'lab/smart' }));
  });

  it('replays a finished run from its first event, and ends the replay', async () => {
    renderThread(log());
    const conversation = await screen.findByRole('region', { name: 'Conversation' });
    await within(conversation).findByText(/It costs/);
    fireEvent.click(screen.getAllByRole('button', { name: 'Replay' })[0] as HTMLElement);
    const bar = await screen.findByRole('group', { name: 'Replay' });
    expect(within(bar).getByText(/Event 0 of 10/)).toBeTruthy();
    expect(within(conversation).queryByLabelText('Step 1')).toBeNull();
    const thumb = within(bar).getByRole('slider', { name: 'Replay position' });
    fireEvent.keyDown(thumb, { key: 'End' });
    await within(conversation).findByLabelText('Step 1');
    fireEvent.click(within(bar).getByRole('button', { name: 'End replay' }));
    expect(screen.queryByRole('group', { name: 'Replay' })).toBeNull();
  });
});
