import { useQuery } from '@tanstack/react-query';
import { useEffect, useReducer, useState, type FormEvent, type KeyboardEvent } from 'react';
import Markdown from 'react-markdown';
import remarkGfm from 'remark-gfm';
import { ApiProblem } from '../api/client';
import type { ThreadResponse } from '../api/schema';
import { useSession } from '../session';
import { activeRun, applyEvent, emptyThread, type RunView, type StepOutput } from '../thread/view';
import { Alert } from '../components/Alert';

/** One thread: its messages and runs, live, and the composer. */
export default function ThreadPage({ id }: { id: string }) {
  const { client } = useSession();
  const thread = useQuery({ queryKey: ['thread', id], queryFn: () => client.call<ThreadResponse>('GET', `/api/v1/threads/${id}`) });
  const [view, apply] = useReducer(applyEvent, emptyThread);
  const [connected, setConnected] = useState(false);
  const [draft, setDraft] = useState('');
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const controller = new AbortController();
    client.followEvents(id, 0, apply, controller.signal, setConnected).catch((err: unknown) => {
      if (!controller.signal.aborted) setError(err instanceof Error ? err.message : String(err));
    });
    return () => controller.abort();
  }, [client, id]);

  const running = activeRun(view);

  async function send(event?: FormEvent) {
    event?.preventDefault();
    const content = draft.trim();
    if (!content) return;
    setError(null);
    try {
      if (running?.status === 'waiting') {
        await client.call('POST', `/api/v1/runs/${running.id}/resume`, { answer: content });
      } else {
        // While a run works, a message reaches it at its next step.
        await client.call('POST', `/api/v1/threads/${id}/messages`, { content, run: !running });
      }
      setDraft('');
    } catch (err) {
      setError(err instanceof ApiProblem ? err.message : 'Cannot reach the Cairn server.');
    }
  }

  async function stop() {
    if (running) await client.call('POST', `/api/v1/runs/${running.id}/cancel`).catch(() => undefined);
  }

  function onKey(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) void send();
    if (event.key === 'Escape') void stop();
  }

  return (
    <section aria-labelledby="thread-heading" className="flex flex-col gap-4">
      <a href={thread.data ? `#/projects/${thread.data.project_id}` : '#/'} className="text-sm text-blue-600 underline">
        ← Threads
      </a>
      <h2 id="thread-heading" className="text-xl font-semibold">
        {thread.data?.title ?? '…'}
      </h2>
      <p className="text-sm text-gray-500" aria-live="polite">
        {connected ? 'Live' : 'Connecting…'}
      </p>
      <ol className="flex flex-col gap-3" aria-label="Messages">
        {view.messages.map((message) => (
          <li key={message.id} className={message.role === 'user' ? 'rounded bg-blue-50 p-2 dark:bg-blue-950' : 'rounded p-2'}>
            <span className="text-xs text-gray-500">{message.role === 'user' ? 'You or a member' : 'Cairn'}</span>
            <div className="prose dark:prose-invert">
              <Markdown remarkPlugins={[remarkGfm]}>{message.content}</Markdown>
            </div>
          </li>
        ))}
      </ol>
      {view.runs.map((run) => (
        <RunPanel key={run.id} run={run} />
      ))}
      <Alert message={error} />
      <form onSubmit={(e) => void send(e)} className="flex flex-col gap-2" aria-label="Message">
        <label htmlFor="composer" className="sr-only">
          {running?.status === 'waiting' ? 'Your answer' : 'Your message'}
        </label>
        <textarea
          id="composer"
          className="min-h-20 rounded border p-2"
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          onKeyDown={onKey}
          placeholder={running?.status === 'waiting' ? 'Answer the question…' : 'Ask Cairn… (Ctrl+Enter to send)'}
        />
        <div className="flex gap-2">
          <button type="submit" className="rounded bg-blue-600 px-3 py-1 text-white">
            {running?.status === 'waiting' ? 'Answer' : 'Send'}
          </button>
          {running && (
            <button type="button" className="rounded border px-3 py-1" onClick={() => void stop()}>
              Stop (Esc)
            </button>
          )}
        </div>
      </form>
    </section>
  );
}

function Output({ output }: { output: StepOutput }) {
  if (output.image) return <img alt="A figure the code made" src={`data:image/png;base64,${output.image}`} className="max-w-full" />;
  if (output.html) return <div className="overflow-x-auto text-sm" dangerouslySetInnerHTML={{ __html: output.html }} />;
  return <pre className={output.type === 'error' ? 'text-red-600' : 'text-sm'}>{output.text}</pre>;
}

function RunPanel({ run }: { run: RunView }) {
  return (
    <article aria-label={`Run ${run.status}`} className="rounded border p-2">
      <header className="flex justify-between text-sm text-gray-500">
        <span>Run: {run.status}</span>
        <span>
          {run.tokens} tokens · ${run.costUsd.toFixed(4)}
        </span>
      </header>
      {run.error && <p className="text-red-600">{run.error}</p>}
      {run.steps.map((step, index) => (
        <div key={index} className="mt-2">
          <pre className="overflow-x-auto rounded bg-gray-100 p-2 text-sm dark:bg-gray-800">
            <code>{step.code}</code>
          </pre>
          {step.outputs.map((output, n) => (
            <Output key={n} output={output} />
          ))}
        </div>
      ))}
      {run.streaming && <p className="mt-2 whitespace-pre-wrap text-gray-600">{run.streaming}</p>}
      {run.question && (
        <p role="status" className="mt-2 font-semibold">
          Cairn asks: {run.question}
        </p>
      )}
    </article>
  );
}
