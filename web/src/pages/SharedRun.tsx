// A run shared by link, for anyone holding it, without signing in: the
// message that started it, its steps, the agent's computer and the answer,
// with a replay — and nothing else of the project.

import { useQuery } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { ApiProblem } from '../api/client';
import type { SharedRunResponse } from '../api/schema';
import { Markdown } from '../components/Markdown';
import { Button, EmptyState, LoadingRows, Muted } from '../components/ui';
import { useSession } from '../session';
import { Computer } from '../thread/Computer';
import { ReplayBar } from '../thread/Replay';
import { viewAt } from '../thread/view';
import { RunPanel } from './ThreadPage';

export default function SharedRun({ token }: { token: string }) {
  const { client } = useSession();
  const shared = useQuery({
    queryKey: ['shared', token],
    queryFn: () => client.call<SharedRunResponse>('GET', `/api/v1/shared/${encodeURIComponent(token)}`),
    retry: false,
  });
  const [at, setAt] = useState<number | null>(null);
  const events = useMemo(() => shared.data?.events ?? [], [shared.data]);
  const view = useMemo(() => viewAt(events, at ?? events.length), [events, at]);
  const run = view.runs[0];
  if (shared.isPending) {
    return (
      <main className="mx-auto max-w-5xl p-4">
        <LoadingRows rows={5} label="Loading the shared run…" />
      </main>
    );
  }
  if (shared.error) {
    const closed = shared.error instanceof ApiProblem && shared.error.code === 'share_closed';
    return (
      <main className="mx-auto max-w-xl p-4">
        <EmptyState title={closed ? 'This link no longer works' : 'Nothing is shared at this link'}>{shared.error.message}</EmptyState>
      </main>
    );
  }
  const messages = view.messages;
  return (
    <main className="mx-auto grid max-w-7xl gap-4 p-4 text-zinc-900 lg:grid-cols-[minmax(0,1fr)_28rem] dark:text-zinc-100">
      <section aria-labelledby="shared-heading" className="flex min-w-0 flex-col gap-3">
        <header className="flex flex-col gap-1">
          <p className="text-xs font-medium tracking-wide text-indigo-800 uppercase dark:text-indigo-300">A run shared from Cairn · read-only</p>
          <h1 id="shared-heading" className="text-xl font-semibold">
            {shared.data.thread_title || 'Untitled thread'}
          </h1>
          <Muted>This link works until {new Date(shared.data.expires_at).toLocaleString()}.</Muted>
        </header>
        {messages
          .filter((m) => m.role === 'user')
          .map((m) => (
            <article key={m.id} aria-label="The request" className="rounded-lg bg-indigo-50 p-3 dark:bg-indigo-950">
              <Markdown text={m.content} />
            </article>
          ))}
        {run && <RunPanel run={run} canAnswer={false} onAnswer={() => undefined} actions={at === null ? <Button size="sm" variant="ghost" onClick={() => setAt(0)}>Replay</Button> : undefined} />}
        {messages
          .filter((m) => m.role === 'assistant')
          .map((m) => (
            <article key={m.id} aria-label="Answer from Cairn" className="rounded-lg bg-white p-3 dark:bg-zinc-900">
              <Markdown text={m.content} />
            </article>
          ))}
        {at !== null && <ReplayBar at={at} total={events.length} onSeek={setAt} onClose={() => setAt(null)} />}
      </section>
      <aside className="min-w-0">
        <Computer run={run} source={{ kind: 'shared', token }} live={0} canSave={false} />
      </aside>
    </main>
  );
}
