import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { fireEvent, render, screen } from '@testing-library/react';
import type { ReactNode } from 'react';
import { describe, expect, it } from 'vitest';
import { Client, type SessionMarker } from '../api/client';
import type { GlobalRole, ModelInfo } from '../api/schema';
import { SessionProvider } from '../session';
import { Projects } from './Projects';
import ThreadPage from './ThreadPage';

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

const gpt: ModelInfo = {
  id: 'openai/gpt-4o',
  provider: 'openai',
  model: 'gpt-4o',
  kind: 'openai',
  context_tokens: 128000,
  input_usd_per_mtok: 2.5,
  output_usd_per_mtok: 10,
  capabilities: {} as ModelInfo['capabilities'],
};

/** A server with `models` connected, signed in as a `role`; posting a message is refused when there are none. */
function serve(role: GlobalRole, models: ModelInfo[]) {
  const fetcher = ((input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const method = init?.method ?? 'GET';
    if (url === '/api/v1/me') {
      return Promise.resolve(json(200, { id: 'u1', email: 'a@example.com', display_name: 'Ada', role, disabled: false, created_at: '' }));
    }
    if (url === '/api/v1/models') return Promise.resolve(json(200, { default: models[0]?.id ?? null, models }));
    if (url === '/api/v1/projects') return Promise.resolve(json(200, []));
    if (url === '/api/v1/threads/t1') return Promise.resolve(json(200, { id: 't1', project_id: 'p1', title: 'Sales', created_at: '' }));
    if (url === '/api/v1/projects/p1') return Promise.resolve(json(200, { id: 'p1', name: 'Sales', role: 'owner', created_at: '', created_by: 'u1' }));
    if (url === '/api/v1/projects/p1/members') return Promise.resolve(json(200, []));
    if (url === '/api/v1/threads/t1/events') return new Promise<Response>(() => undefined); // the live stream, quiet
    if (url === '/api/v1/threads/t1/messages' && method === 'POST') {
      const detail =
        role === 'admin'
          ? 'no language model is connected yet: connect one on the administration page'
          : 'no language model is connected yet: ask an administrator to connect a model';
      return Promise.resolve(json(503, { code: 'agent_unavailable', detail, status: 503, title: 'Service unavailable' }));
    }
    return Promise.resolve(json(404, { code: 'not_found', detail: 'no' }));
  }) as typeof fetch;
  const client = new Client('', { get: () => false, set: () => undefined } satisfies SessionMarker, fetcher);
  (client as unknown as { accessToken: string }).accessToken = 'a';
  return client;
}

function renderWith(client: Client, page: ReactNode) {
  render(
    <SessionProvider client={client}>
      <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>{page}</QueryClientProvider>
    </SessionProvider>,
  );
}

describe('the first run, without a model', () => {
  it('shows an administrator the way to connect one', async () => {
    renderWith(serve('admin', []), <Projects />);
    const notice = await screen.findByText('No language model is connected yet.', { exact: false });
    expect(notice.textContent).toBe('No language model is connected yet. Connect a model');
    expect(screen.getByRole('link', { name: 'Connect a model' }).getAttribute('href')).toBe('#/admin');
  });

  it('tells a member to ask an administrator, with no link', async () => {
    renderWith(serve('member', []), <Projects />);
    await screen.findByText('No language model is connected yet: ask an administrator to connect one.');
    expect(screen.queryByRole('link', { name: 'Connect a model' })).toBeNull();
  });

  it('says nothing once a model is connected', async () => {
    renderWith(serve('admin', [gpt]), <Projects />);
    await screen.findByRole('form', { name: 'New project' });
    // Wait for the models to arrive, then look for the notice.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(screen.queryByText('No language model is connected yet', { exact: false })).toBeNull();
  });

  it('links an administrator to the connections when a message finds no agent', async () => {
    renderWith(serve('admin', []), <ThreadPage id="t1" />);
    fireEvent.change(await screen.findByLabelText('Your message'), { target: { value: 'Hello' } });
    fireEvent.click(screen.getByRole('button', { name: 'Send' }));
    expect((await screen.findByRole('alert')).textContent).toContain('no language model is connected yet');
    const link = await screen.findByRole('link', { name: 'Connect a model' });
    expect(link.getAttribute('href')).toBe('#/admin');
  });

  it('gives a member no link when a message finds no agent', async () => {
    renderWith(serve('member', []), <ThreadPage id="t1" />);
    fireEvent.change(await screen.findByLabelText('Your message'), { target: { value: 'Hello' } });
    fireEvent.click(screen.getByRole('button', { name: 'Send' }));
    expect((await screen.findByRole('alert')).textContent).toContain('ask an administrator');
    expect(screen.queryByRole('link', { name: 'Connect a model' })).toBeNull();
  });
});
