import { describe, expect, it } from 'vitest';
import { ApiProblem, Client, type SessionMarker } from './client';
import type { EventResponse } from './schema';

function memoryStore(initial = false): SessionMarker & { value: boolean } {
  const store = {
    value: initial,
    get: () => store.value,
    set: (signedIn: boolean) => {
      store.value = signedIn;
    },
  };
  return store;
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

function urlOf(input: RequestInfo | URL): string {
  if (typeof input === 'string') return input;
  return input instanceof URL ? input.href : input.url;
}

// The cookie flow: the refresh token travels in an HttpOnly cookie, never in a body.
const tokens = (n: number) => ({ access_token: `access-${n}`, token_type: 'Bearer', expires_in: 900 });

describe('Client sessions', () => {
  it('signs in with the cookie flow, sends the access token, and refreshes it once by cookie when it expired', async () => {
    const seen: string[] = [];
    let refreshes = 0;
    const fetcher = ((input: RequestInfo | URL, init?: RequestInit) => {
      const url = urlOf(input);
      const headers = new Headers(init?.headers);
      const auth = headers.get('Authorization') ?? '';
      seen.push(`${init?.method ?? 'GET'} ${url} ${auth}`);
      if (url.endsWith('/auth/token') || url.endsWith('/auth/refresh')) {
        expect(headers.get('Cairn-Session')).toBe('cookie');
        expect(init?.credentials).toBe('same-origin');
      }
      if (url.endsWith('/auth/token')) return Promise.resolve(json(200, tokens(1)));
      if (url.endsWith('/auth/refresh')) {
        refreshes += 1;
        expect(init?.body).toBe('{}');
        return Promise.resolve(json(200, tokens(2)));
      }
      if (auth === 'Bearer access-1') return Promise.resolve(json(401, { code: 'invalid_token', detail: 'expired' }));
      return Promise.resolve(json(200, { ok: true }));
    }) as typeof fetch;
    const store = memoryStore();
    const client = new Client('', store, fetcher);
    await client.signIn('ada@example.com', 'correct horse battery staple');
    expect(store.value).toBe(true);
    await expect(client.call('GET', '/api/v1/me')).resolves.toEqual({ ok: true });
    expect(refreshes).toBe(1);
    expect(store.value).toBe(true);
    expect(JSON.stringify(globalThis.localStorage ?? {})).not.toContain('access-');
    expect(seen.filter((s) => s.includes('/api/v1/me'))).toEqual([
      'GET /api/v1/me Bearer access-1',
      'GET /api/v1/me Bearer access-2',
    ]);
  });

  it('restores a session from the cookie, and drops it when refresh is refused', async () => {
    const fetcher = ((input: RequestInfo | URL) => {
      if (urlOf(input).endsWith('/auth/refresh')) {
        return Promise.resolve(json(400, { error: 'invalid_grant', error_description: 'used' }));
      }
      return Promise.resolve(json(401, { code: 'invalid_token', detail: 'no' }));
    }) as typeof fetch;
    const store = memoryStore(true);
    const client = new Client('', store, fetcher);
    const changes: boolean[] = [];
    client.onSessionChange((signedIn) => changes.push(signedIn));
    expect(client.hasSession).toBe(true);
    await expect(client.call('GET', '/api/v1/me')).rejects.toMatchObject({ status: 401, code: 'invalid_token' });
    expect(store.value).toBe(false);
    expect(changes).toEqual([false]);
    expect(client.hasSession).toBe(false);
  });

  it('turns problem documents into errors with their stable code', async () => {
    const fetcher = (() =>
      Promise.resolve(
        json(422, { type: 'about:blank', title: 'Invalid input', status: 422, code: 'weak_password', detail: 'too short' }),
      )) as typeof fetch;
    const client = new Client('', memoryStore(), fetcher);
    const error = await client.call('POST', '/api/v1/x', {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiProblem);
    expect(error).toMatchObject({ status: 422, code: 'weak_password', message: 'too short' });
  });
});

function sse(events: Array<{ seq: number; kind: string }>, cut = false): Response {
  const text = events.map((e) => `id: ${e.seq}\nevent: ${e.kind}\ndata: ${JSON.stringify({ ...e, payload: {} })}\n\n`).join('');
  // Delivered in awkward pieces, cutting through events.
  const pieces = [text.slice(0, 7), text.slice(7, 40), text.slice(40), cut ? '' : ': keep-alive\n\n'];
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const piece of pieces) if (piece) controller.enqueue(new TextEncoder().encode(piece));
      controller.close();
    },
  });
  return new Response(stream, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
}

describe('Client.followEvents', () => {
  it('delivers each event once and in order across a dropped connection', async () => {
    const asked: string[] = [];
    let connections = 0;
    const fetcher = ((_input: RequestInfo | URL, init?: RequestInit) => {
      asked.push(new Headers(init?.headers).get('Last-Event-ID') ?? '');
      connections += 1;
      if (connections === 1) return Promise.resolve(sse([{ seq: 1, kind: 'run.status' }, { seq: 2, kind: 'token' }], true));
      // The server replays from the id it was given; an overlap is skipped.
      return Promise.resolve(sse([{ seq: 2, kind: 'token' }, { seq: 3, kind: 'code' }]));
    }) as typeof fetch;
    const client = new Client('', memoryStore(), fetcher);
    (client as unknown as { accessToken: string }).accessToken = 'access';
    const controller = new AbortController();
    const received: EventResponse[] = [];
    await client.followEvents(
      'thread-1',
      0,
      (event) => {
        received.push(event);
        if (event.seq === 3) controller.abort();
      },
      controller.signal,
    );
    expect(received.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(asked.slice(0, 2)).toEqual(['0', '2']);
  });

  it('hands presence states apart from the log, without moving the resume point', async () => {
    const signal = { here: [{ user: 'u1', name: 'Ada' }], typing: [{ user: 'u1', name: 'Ada' }] };
    const body = `event: presence\ndata: ${JSON.stringify(signal)}\n\nid: 1\nevent: code\ndata: ${JSON.stringify({ seq: 1, kind: 'code', payload: {} })}\n\n`;
    const fetcher = (() => Promise.resolve(new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } }))) as typeof fetch;
    const client = new Client('', memoryStore(), fetcher);
    (client as unknown as { accessToken: string }).accessToken = 'access';
    const controller = new AbortController();
    const events: number[] = [];
    const signals: unknown[] = [];
    await client.followEvents(
      'thread-1',
      0,
      (event) => {
        events.push(event.seq);
        controller.abort();
      },
      controller.signal,
      undefined,
      (s) => signals.push(s),
    );
    expect(signals).toEqual([signal]);
    expect(events).toEqual([1]);
  });
});
