import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { Client, type SessionMarker } from '../api/client';
import { SessionProvider } from '../session';
import Connections from './Connections';
import type { ConnectionRequest, ConnectionResponse, ConnectionTestResponse } from './connections';

const app: ConnectionResponse = {
  id: 'c1',
  name: 'openai',
  kind: 'openai',
  base_url: '',
  api_version: '',
  key_hint: '…a1b2',
  models: [{ name: 'gpt-4o', input_usd_per_mtok: 2.5, output_usd_per_mtok: 10 }],
  enabled: true,
  source: 'app',
  created_at: '2026-11-30T10:00:00Z',
  updated_at: '2026-11-30T10:00:00Z',
};

const configured: ConnectionResponse = {
  id: null,
  name: 'local',
  kind: 'openai-compatible',
  base_url: 'http://127.0.0.1:11434/v1',
  api_version: '',
  key_hint: null,
  models: [{ name: 'llama3.2' }],
  enabled: true,
  source: 'configuration',
  created_at: null,
  updated_at: null,
};

function json(status: number, body: unknown): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

interface Sent {
  method: string;
  url: string;
  body: unknown;
}

/**
 * A fake server keeping connections as the real one does: the key never
 * comes back, only its last four characters. `options` override the test
 * and create routes.
 */
function renderConnections(options: { test?: () => Promise<Response>; create?: (request: ConnectionRequest) => Response } = {}) {
  const sent: Sent[] = [];
  let list: ConnectionResponse[] = [app, configured];
  const fetcher = ((input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const method = init?.method ?? 'GET';
    const body = typeof init?.body === 'string' ? (JSON.parse(init.body) as unknown) : null;
    sent.push({ method, url, body });
    if (url === '/api/v1/admin/connections' && method === 'GET') return Promise.resolve(json(200, list));
    if (url === '/api/v1/admin/connections' && method === 'POST') {
      const request = body as ConnectionRequest;
      if (options.create) return Promise.resolve(options.create(request));
      const made: ConnectionResponse = {
        id: 'c2',
        name: request.name,
        kind: request.kind,
        base_url: request.base_url ?? '',
        api_version: request.api_version ?? '',
        key_hint: request.api_key ? `…${request.api_key.slice(-4)}` : null,
        models: request.models,
        enabled: request.enabled ?? true,
        source: 'app',
        created_at: '',
        updated_at: '',
      };
      list = [...list, made];
      return Promise.resolve(json(201, made));
    }
    if (url === '/api/v1/admin/connections/c1/test' && options.test) return options.test();
    if (url === '/api/v1/admin/connections/c1' && method === 'PATCH') {
      list = list.map((c) => (c.id === 'c1' ? { ...c, ...(body as object) } : c));
      return Promise.resolve(json(200, list[0]));
    }
    if (url === '/api/v1/admin/connections/c1' && method === 'DELETE') {
      list = list.filter((c) => c.id !== 'c1');
      return Promise.resolve(json(204, undefined));
    }
    return Promise.resolve(json(404, { code: 'not_found', detail: 'no such thing' }));
  }) as typeof fetch;
  const client = new Client('', { get: () => false, set: () => undefined } satisfies SessionMarker, fetcher);
  (client as unknown as { accessToken: string }).accessToken = 'a';
  const queries = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  queries.setQueryData(['models'], { default: null, models: [] });
  render(
    <SessionProvider client={client}>
      <QueryClientProvider client={queries}>
        <Connections />
      </QueryClientProvider>
    </SessionProvider>,
  );
  const listings = () => sent.filter((s) => s.method === 'GET' && s.url === '/api/v1/admin/connections').length;
  return { sent, queries, listings };
}

function item(name: string): HTMLElement {
  return within(screen.getByRole('list', { name: 'Connections' })).getByRole('listitem', { name });
}

describe('Connections', () => {
  it('lists the connections of both sources, showing only the key hint', async () => {
    renderConnections();
    await screen.findByRole('listitem', { name: 'openai' });
    const made = item('openai');
    expect(made.textContent).toContain("provider's own API");
    expect(made.textContent).toContain('…a1b2');
    expect(made.textContent).toContain('openai/gpt-4o');
    expect(made.textContent).toContain('$2.5 in, $10 out');
    expect(made.textContent).toContain('enabled');
    const fromFile = item('local');
    expect(fromFile.textContent).toContain('http://127.0.0.1:11434/v1');
    expect(fromFile.textContent).toContain('no key');
    expect(fromFile.textContent).toContain('from the configuration file — read-only');
    expect(made.textContent).not.toContain('read-only');
    // Editing never fills the key in: blank keeps it.
    fireEvent.click(within(made).getByRole('button', { name: 'Edit openai' }));
    const form = within(made).getByRole('form', { name: 'Edit openai' });
    expect(within(form).getByLabelText<HTMLInputElement>('New API key (blank keeps the current one)').value).toBe('');
  });

  it('offers no test, edit or remove for a connection from the configuration file', async () => {
    renderConnections();
    await screen.findByRole('listitem', { name: 'local' });
    expect(within(item('local')).queryAllByRole('button')).toEqual([]);
    for (const action of ['Test openai', 'Edit openai', 'Disable openai', 'Remove openai']) {
      expect(within(item('openai')).getByRole('button', { name: action })).toBeTruthy();
    }
  });

  it('adds a connection with the right body, then refreshes the list and the models', async () => {
    const { sent, queries, listings } = renderConnections();
    await screen.findByRole('listitem', { name: 'openai' });
    const form = screen.getByRole('form', { name: 'Add a connection' });
    fireEvent.change(within(form).getByLabelText('Kind'), { target: { value: 'openai-compatible' } });
    fireEvent.click(within(form).getByRole('button', { name: 'OpenRouter' }));
    expect(within(form).getByLabelText<HTMLInputElement>('Name (the prefix of its model ids)').value).toBe('openrouter');
    fireEvent.change(within(form).getByLabelText('API key (if the server wants one)'), { target: { value: 'sk-or-secret-9z8y' } });
    fireEvent.change(within(form).getByLabelText('Model 1: name'), { target: { value: 'openai/gpt-4o-mini, meta/llama-3' } });
    fireEvent.change(within(form).getByLabelText('Model 1: input price'), { target: { value: '0.15' } });
    fireEvent.click(within(form).getByRole('button', { name: 'Add a model' }));
    fireEvent.change(within(form).getByLabelText('Model 2: name'), { target: { value: 'mistral/large' } });
    fireEvent.click(within(form).getByRole('button', { name: 'Add the connection' }));
    await screen.findByRole('listitem', { name: 'openrouter' });
    expect(sent.find((s) => s.method === 'POST')).toEqual({
      method: 'POST',
      url: '/api/v1/admin/connections',
      body: {
        name: 'openrouter',
        kind: 'openai-compatible',
        base_url: 'https://openrouter.ai/api/v1',
        api_key: 'sk-or-secret-9z8y',
        models: [
          { name: 'openai/gpt-4o-mini', input_usd_per_mtok: 0.15 },
          { name: 'meta/llama-3', input_usd_per_mtok: 0.15 },
          { name: 'mistral/large' },
        ],
      },
    });
    expect(listings()).toBe(2);
    expect(queries.getQueryState(['models'])?.isInvalidated).toBe(true);
    expect(within(form).getByRole('status').textContent).toContain('Connected openrouter');
    // The key is gone from the page: the form is cleared, the list shows the hint.
    expect(item('openrouter').textContent).toContain('…9z8y');
    expect(document.body.textContent).not.toContain('sk-or-secret');
    const values = Array.from(document.querySelectorAll('input')).map((input) => input.value);
    expect(values.some((value) => value.includes('secret'))).toBe(false);
  });

  it("shows the server's refusal when adding fails", async () => {
    const { listings } = renderConnections({
      create: () => json(409, { code: 'conflict', detail: 'a connection named openai exists already' }),
    });
    await screen.findByRole('listitem', { name: 'openai' });
    const form = screen.getByRole('form', { name: 'Add a connection' });
    fireEvent.change(within(form).getByLabelText('Model 1: name'), { target: { value: 'gpt-4o' } });
    fireEvent.click(within(form).getByRole('button', { name: 'Add the connection' }));
    expect((await within(form).findByRole('alert')).textContent).toBe('a connection named openai exists already');
    expect(listings()).toBe(1);
  });

  it('asks for a model before sending anything', async () => {
    const { sent } = renderConnections();
    await screen.findByRole('listitem', { name: 'openai' });
    const form = screen.getByRole('form', { name: 'Add a connection' });
    fireEvent.click(within(form).getByRole('button', { name: 'Add the connection' }));
    expect(within(form).getByRole('alert').textContent).toBe('Name at least one model.');
    expect(sent.some((s) => s.method === 'POST')).toBe(false);
  });

  it("tests a connection, with a spinner, then shows the server's sentence", async () => {
    let answer: (response: Response) => void = () => undefined;
    const result: ConnectionTestResponse = { ok: true, detail: 'The model answered in 412 ms.', model: 'openai/gpt-4o', latency_ms: 412 };
    renderConnections({ test: () => new Promise<Response>((resolve) => (answer = resolve)) });
    await screen.findByRole('listitem', { name: 'openai' });
    fireEvent.click(within(item('openai')).getByRole('button', { name: 'Test openai' }));
    expect((await within(item('openai')).findByRole('status')).textContent).toBe('Testing…');
    answer(json(200, result));
    await waitFor(() => expect(within(item('openai')).getByRole('status').textContent).toContain('The model answered in 412 ms.'));
    expect(within(item('openai')).getByRole('status').className).toContain('green');
  });

  it('shows a failed test in red, as text', async () => {
    const detail = 'the provider refused the key: <b>Incorrect API key</b>';
    renderConnections({ test: () => Promise.resolve(json(200, { ok: false, detail, model: 'openai/gpt-4o', latency_ms: 80 })) });
    await screen.findByRole('listitem', { name: 'openai' });
    fireEvent.click(within(item('openai')).getByRole('button', { name: 'Test openai' }));
    await waitFor(() => expect(within(item('openai')).getByRole('status').textContent).toContain(detail));
    const status = within(item('openai')).getByRole('status');
    expect(status.className).toContain('red');
    expect(status.querySelector('b')).toBeNull();
  });

  it('edits: a blank key keeps the old one, "remove the key" sends an empty one', async () => {
    const { sent, queries } = renderConnections();
    await screen.findByRole('listitem', { name: 'openai' });
    fireEvent.click(within(item('openai')).getByRole('button', { name: 'Edit openai' }));
    let form = within(item('openai')).getByRole('form', { name: 'Edit openai' });
    fireEvent.change(within(form).getByLabelText('Model 1: output price'), { target: { value: '' } });
    fireEvent.click(within(form).getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(within(item('openai')).queryByRole('form')).toBeNull());
    expect(sent.filter((s) => s.method === 'PATCH')[0]?.body).toEqual({ base_url: '', models: [{ name: 'gpt-4o', input_usd_per_mtok: 2.5 }] });
    expect(queries.getQueryState(['models'])?.isInvalidated).toBe(true);

    fireEvent.click(within(item('openai')).getByRole('button', { name: 'Edit openai' }));
    form = within(item('openai')).getByRole('form', { name: 'Edit openai' });
    fireEvent.click(within(form).getByLabelText('Remove the key (…a1b2)'));
    fireEvent.click(within(form).getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(sent.filter((s) => s.method === 'PATCH')).toHaveLength(2));
    expect(sent.filter((s) => s.method === 'PATCH')[1]?.body).toMatchObject({ api_key: '' });
  });

  it('disables, and removes only once confirmed', async () => {
    const { sent } = renderConnections();
    await screen.findByRole('listitem', { name: 'openai' });
    fireEvent.click(within(item('openai')).getByRole('button', { name: 'Disable openai' }));
    await within(item('openai')).findByRole('button', { name: 'Enable openai' });
    expect(sent.find((s) => s.method === 'PATCH')).toEqual({ method: 'PATCH', url: '/api/v1/admin/connections/c1', body: { enabled: false } });
    expect(item('openai').textContent).toContain('disabled');

    fireEvent.click(within(item('openai')).getByRole('button', { name: 'Remove openai' }));
    expect(sent.some((s) => s.method === 'DELETE')).toBe(false);
    fireEvent.click(within(item('openai')).getByRole('button', { name: 'Keep it' }));
    expect(sent.some((s) => s.method === 'DELETE')).toBe(false);
    fireEvent.click(within(item('openai')).getByRole('button', { name: 'Remove openai' }));
    fireEvent.click(within(item('openai')).getByRole('button', { name: 'Yes, remove openai' }));
    await waitFor(() => expect(screen.queryByRole('listitem', { name: 'openai' })).toBeNull());
    expect(sent.filter((s) => s.method === 'DELETE').map((s) => s.url)).toEqual(['/api/v1/admin/connections/c1']);
  });
});
