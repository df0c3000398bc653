import { fireEvent, render, screen, within } from '@testing-library/react';
import { describe, expect, it, vi } from 'vitest';
import App from './ServerStatus.tsx';

const VERSION = { name: 'cairn', version: '0.1.0', role: 'all' };

const READY = {
  status: 'ready',
  checks: { database: { ok: true }, bus: { ok: true } },
};

const NOT_READY = {
  type: 'about:blank',
  title: 'Service unavailable',
  status: 503,
  code: 'dependency_unavailable',
  detail: 'database unreachable',
  checks: {
    database: { ok: false, error: 'connection refused (os error 111)' },
    bus: { ok: true },
  },
};

function json(body: unknown, status = 200, contentType = 'application/json'): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': contentType },
  });
}

type Route = () => Response | Promise<Response>;

/** Replace global fetch with one that answers only the given paths. */
function stubFetch(routes: Record<string, Route>) {
  const fetchMock = vi.fn((input: RequestInfo | URL): Promise<Response> => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const route = routes[url];
    if (!route) return Promise.reject(new Error(`unexpected fetch ${url}`));
    return Promise.resolve(route());
  });
  vi.stubGlobal('fetch', fetchMock);
  return fetchMock;
}

function region(name: string): HTMLElement {
  return screen.getByRole('region', { name });
}

/** The list item of the dependency called `name` in the Health section. */
function dependency(name: string): HTMLElement {
  const item = within(region('Health')).getByText(name).closest('li');
  if (!item) throw new Error(`no list item for dependency ${name}`);
  return item;
}

describe('App', () => {
  it('shows loading states while requests are pending', () => {
    stubFetch({
      '/api/v1/version': () => new Promise<Response>(() => {}),
      '/readyz': () => new Promise<Response>(() => {}),
    });
    render(<App />);

    expect(within(region('Server')).getByRole('status').textContent).toBe('Loading version…');
    expect(within(region('Health')).getByRole('status').textContent).toBe('Checking health…');
  });

  it('shows the product name and the server version', async () => {
    const fetchMock = stubFetch({
      '/api/v1/version': () => json(VERSION),
      '/readyz': () => json(READY),
    });
    render(<App />);

    expect(screen.getByRole('heading', { level: 1 }).textContent).toBe('Cairn');
    const server = region('Server');
    expect(await within(server).findByText('0.1.0')).toBeTruthy();
    expect(within(server).getByText('all')).toBeTruthy();
    expect(within(server).queryByRole('status')).toBeNull();
    const paths = fetchMock.mock.calls.map(([input]) => input);
    expect(paths).toContain('/api/v1/version');
    expect(paths).toContain('/readyz');
  });

  it('shows both dependencies ok when the server is ready', async () => {
    stubFetch({
      '/api/v1/version': () => json(VERSION),
      '/readyz': () => json(READY),
    });
    render(<App />);

    const health = region('Health');
    expect(await within(health).findByText('Ready')).toBeTruthy();
    expect(within(dependency('database')).getByText('ok')).toBeTruthy();
    expect(within(dependency('bus')).getByText('ok')).toBeTruthy();
    expect(within(health).getAllByRole('listitem')).toHaveLength(2);
    expect(within(health).queryByText('failing')).toBeNull();
    expect(within(health).queryByText('Not ready')).toBeNull();
  });

  it('names the failing dependency and its error on a 503 problem response', async () => {
    stubFetch({
      '/api/v1/version': () => json(VERSION),
      '/readyz': () => json(NOT_READY, 503, 'application/problem+json'),
    });
    render(<App />);

    const health = region('Health');
    expect(await within(health).findByText('Not ready')).toBeTruthy();
    expect(within(health).getByText(/database unreachable/)).toBeTruthy();

    const database = dependency('database');
    expect(within(database).getByText('failing')).toBeTruthy();
    expect(within(database).getByText('connection refused (os error 111)')).toBeTruthy();
    expect(within(database).queryByText('ok')).toBeNull();

    const bus = dependency('bus');
    expect(within(bus).getByText('ok')).toBeTruthy();
    expect(within(bus).queryByText('failing')).toBeNull();

    // A 503 is an answer, not an outage: no error banner.
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('shows an error state when the API cannot be reached', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(() => Promise.reject(new TypeError('Failed to fetch'))),
    );
    render(<App />);

    const serverAlert = await within(region('Server')).findByRole('alert');
    expect(serverAlert.textContent).toContain('Cannot reach the Cairn server');
    const healthAlert = await within(region('Health')).findByRole('alert');
    expect(healthAlert.textContent).toContain('Cannot reach the Cairn server');
    expect(screen.queryByText('0.1.0')).toBeNull();
    expect(screen.queryByText('Ready')).toBeNull();
    expect(screen.queryByRole('status')).toBeNull();
  });

  it('loads again when Refresh is clicked', async () => {
    let up = false;
    const fetchMock = vi.fn((input: RequestInfo | URL): Promise<Response> => {
      if (!up) return Promise.reject(new TypeError('Failed to fetch'));
      return Promise.resolve(input === '/readyz' ? json(READY) : json(VERSION));
    });
    vi.stubGlobal('fetch', fetchMock);
    render(<App />);

    await within(region('Server')).findByRole('alert');
    await within(region('Health')).findByRole('alert');
    up = true;
    fireEvent.click(screen.getByRole('button', { name: 'Refresh' }));

    expect(await within(region('Server')).findByText('0.1.0')).toBeTruthy();
    expect(await within(region('Health')).findByText('Ready')).toBeTruthy();
    expect(screen.queryByRole('alert')).toBeNull();
    expect(fetchMock).toHaveBeenCalledTimes(4);
  });

  it('links to the API docs and the OpenAPI document', () => {
    stubFetch({
      '/api/v1/version': () => json(VERSION),
      '/readyz': () => json(READY),
    });
    render(<App />);

    expect(screen.getByRole('link', { name: /Swagger UI/ }).getAttribute('href')).toBe('/api/docs');
    expect(screen.getByRole('link', { name: /OpenAPI/ }).getAttribute('href')).toBe(
      '/api/openapi.json',
    );
  });
});
