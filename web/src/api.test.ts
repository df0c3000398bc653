import { describe, expect, it, vi } from 'vitest';
import { ApiError, getReadiness, getVersion } from './api.ts';

function respondWith(response: Response) {
  const fetchMock = vi.fn(() => Promise.resolve(response));
  vi.stubGlobal('fetch', fetchMock);
  return fetchMock;
}

function failWith(reason: unknown) {
  vi.stubGlobal(
    'fetch',
    vi.fn(() => Promise.reject(reason as Error)),
  );
}

function json(body: unknown, status = 200, contentType = 'application/json'): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': contentType } });
}

describe('getVersion', () => {
  it('requests /api/v1/version and returns the parsed body', async () => {
    const fetchMock = respondWith(json({ name: 'cairn', version: '0.1.0', role: 'all' }));

    await expect(getVersion()).resolves.toEqual({ name: 'cairn', version: '0.1.0', role: 'all' });
    expect(fetchMock).toHaveBeenCalledTimes(1);
    expect(fetchMock.mock.calls[0]).toEqual(['/api/v1/version', expect.any(Object)]);
  });

  it('rejects with the HTTP status on a non-2xx answer', async () => {
    respondWith(json({ title: 'Not found' }, 404, 'application/problem+json'));

    const err: unknown = await getVersion().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(404);
  });

  it('rejects when the body is not a version object', async () => {
    respondWith(json({ hello: 'world' }));

    await expect(getVersion()).rejects.toThrow(/Unexpected body/);
  });
});

describe('getReadiness', () => {
  it('treats 200 as ready and keeps every check', async () => {
    respondWith(json({ status: 'ready', checks: { database: { ok: true }, bus: { ok: true } } }));

    await expect(getReadiness()).resolves.toEqual({
      ready: true,
      status: 'ready',
      checks: { database: { ok: true }, bus: { ok: true } },
    });
  });

  it('treats a 503 problem+json as not ready, with detail and errors', async () => {
    respondWith(
      json(
        {
          type: 'about:blank',
          title: 'Service unavailable',
          status: 503,
          code: 'dependency_unavailable',
          detail: 'database unreachable',
          checks: { database: { ok: false, error: 'timeout' }, bus: { ok: true } },
        },
        503,
        'application/problem+json',
      ),
    );

    await expect(getReadiness()).resolves.toEqual({
      ready: false,
      status: 'Service unavailable',
      detail: 'database unreachable',
      checks: { database: { ok: false, error: 'timeout' }, bus: { ok: true } },
    });
  });

  it('rejects on other statuses', async () => {
    respondWith(new Response('boom', { status: 500 }));

    const err: unknown = await getReadiness().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(500);
  });

  it('rejects when a 503 has no JSON body', async () => {
    respondWith(new Response('<html>Bad gateway</html>', { status: 503 }));

    await expect(getReadiness()).rejects.toThrow(/Invalid JSON/);
  });

  it('turns a network failure into an ApiError without a status', async () => {
    failWith(new TypeError('Failed to fetch'));

    const err: unknown = await getReadiness().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBeUndefined();
    expect((err as ApiError).message).toMatch(/Cannot reach the Cairn server/);
  });

  it('passes cancellation through unchanged', async () => {
    const abort = new DOMException('The operation was aborted.', 'AbortError');
    failWith(abort);
    const controller = new AbortController();
    controller.abort();

    await expect(getReadiness(controller.signal)).rejects.toBe(abort);
  });
});
