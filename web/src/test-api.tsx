import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { render } from '@testing-library/react';
import type { ReactNode } from 'react';
import { Client, type SessionMarker } from './api/client';
import { SessionProvider } from './session';

/** A request a component under test made. */
export type Sent = { method: string; url: string; body: unknown };

/** Renders `ui` signed in, with the API answered by `respond` (JSON, 200);
 * the requests made, in order. */
export function renderWithApi(ui: ReactNode, respond: (method: string, url: string) => unknown): Sent[] {
  const sent: Sent[] = [];
  const fetcher = ((input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const method = init?.method ?? 'GET';
    sent.push({ method, url, body: typeof init?.body === 'string' ? (JSON.parse(init.body) as unknown) : null });
    return Promise.resolve(new Response(JSON.stringify(respond(method, url)), { status: 200, headers: { 'Content-Type': 'application/json' } }));
  }) as typeof fetch;
  const client = new Client('', { get: () => false, set: () => undefined } satisfies SessionMarker, fetcher);
  (client as unknown as { accessToken: string }).accessToken = 'a';
  render(
    <SessionProvider client={client}>
      <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>{ui}</QueryClientProvider>
    </SessionProvider>,
  );
  return sent;
}
