import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useReducer, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { ApiProblem, errorMessage, problemMessage } from '../api/client';
import type {
  MemberResponse,
  ModelsResponse,
  PostMessageRequest,
  PresenceSnapshot,
  ProjectResponse,
  RunResponse,
  ThreadResponse,
  UserResponse,
} from '../api/schema';
import { Alert } from '../components/Alert';
import { EditableTitle } from '../components/EditableTitle';
import { DeleteThread } from './Deletion';
import { CodeBlock, Markdown } from '../components/Markdown';
import { SafeHtml } from '../components/SafeHtml';
import { typingInField } from '../components/Shortcuts';
import { useSession } from '../session';
import { nobody, othersTyping, typingLine } from '../thread/presence';
import { activeRun, applyEvent, emptyThread, type RunView, type StepOutput } from '../thread/view';
import { AttachButton, MessageAttachments, PendingAttachments, useAttachments } from './Attachments';
import { ConnectModelLink } from './Connections';
import PlanPanel from './PlanPanel';

/** How often a member typing tells the others (the signal lasts five seconds). */
const TYPING_EVERY_MS = 3000;

/** One thread: its messages and runs, live, who is here, and the composer. */
export default function ThreadPage({ id }: { id: string }) {
  const { client } = useSession();
  const queries = useQueryClient();
  const thread = useQuery({ queryKey: ['thread', id], queryFn: () => client.call<ThreadResponse>('GET', `/api/v1/threads/${id}`) });
  const projectId = thread.data?.project_id;
  const project = useQuery({
    queryKey: ['project', projectId],
    queryFn: () => client.call<ProjectResponse>('GET', `/api/v1/projects/${projectId ?? ''}`),
    enabled: projectId !== undefined,
  });
  // Runs whose step details retention removed, and when.
  const pruned = useQuery({
    queryKey: ['runs', id],
    queryFn: () => client.call<RunResponse[]>('GET', `/api/v1/threads/${id}/runs`),
    select: (runs) => new Map(runs.flatMap((r) => (r.details_removed_at ? [[r.id, r.details_removed_at] as const] : []))),
  });
  const members = useQuery({
    queryKey: ['members', projectId],
    queryFn: () => client.call<MemberResponse[]>('GET', `/api/v1/projects/${projectId ?? ''}/members`),
    enabled: projectId !== undefined,
  });
  const me = useQuery({ queryKey: ['me'], queryFn: () => client.call<UserResponse>('GET', '/api/v1/me') });
  const [view, apply] = useReducer(applyEvent, emptyThread);
  const [presence, setPresence] = useState<PresenceSnapshot>(nobody);
  const [connected, setConnected] = useState(false);
  const [draft, setDraft] = useState('');
  const [planFirst, setPlanFirst] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const attachments = useAttachments(projectId, setError);
  // No run can start here (no model connected, or no sandboxes).
  const [unavailable, setUnavailable] = useState(false);
  const models = useQuery({
    queryKey: ['models'],
    queryFn: () => client.call<ModelsResponse>('GET', '/api/v1/models'),
    enabled: unavailable,
  });
  const lastTyping = useRef(0);
  const composer = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    const controller = new AbortController();
    // Out of touch, nobody is known to be here; the next stream says again.
    const onConnection = (live: boolean) => {
      setConnected(live);
      if (!live) setPresence(nobody);
    };
    client.followEvents(id, 0, apply, controller.signal, onConnection, setPresence).catch((err: unknown) => {
      if (!controller.signal.aborted) setError(errorMessage(err));
    });
    return () => controller.abort();
  }, [client, id]);

  // "/" goes to the message box.
  useEffect(() => {
    const onKey = (event: globalThis.KeyboardEvent) => {
      if (event.key === '/' && !typingInField(event) && composer.current) {
        event.preventDefault();
        composer.current.focus();
      }
    };
    globalThis.addEventListener('keydown', onKey);
    return () => globalThis.removeEventListener('keydown', onKey);
  }, []);

  const running = activeRun(view);
  const planned = [...view.runs].reverse().find((r) => r.plan !== undefined);
  const canWrite = project.data !== undefined && project.data.role !== 'viewer';
  const names = new Map((members.data ?? []).map((m) => [m.user_id, m.display_name]));
  const present = presence.here;
  const typingNow = typingLine(othersTyping(presence, me.data?.id));

  function author(user: string | null | undefined): string {
    if (!user) return 'A member';
    if (user === me.data?.id) return 'You';
    return names.get(user) ?? 'A former member';
  }

  function onDraft(text: string) {
    setDraft(text);
    const at = Date.now();
    if (text.trim() && at - lastTyping.current > TYPING_EVERY_MS) {
      lastTyping.current = at;
      void client.call('POST', `/api/v1/threads/${id}/typing`).catch(() => undefined);
    }
  }

  async function send(event?: FormEvent) {
    event?.preventDefault();
    const content = draft.trim();
    // A message sent mid-upload would go without the file.
    if (!content || attachments.uploads.length > 0) return;
    setError(null);
    setUnavailable(false);
    try {
      if (running?.status === 'waiting') {
        await client.call('POST', `/api/v1/runs/${running.id}/resume`, { answer: content });
      } else {
        // While a run works, a message reaches it at its next step.
        const request: PostMessageRequest = { content, run: !running, plan: !running && planFirst };
        if (attachments.attached.length > 0) request.attachments = attachments.attached.map((a) => a.path);
        await client.call('POST', `/api/v1/threads/${id}/messages`, request);
        attachments.clear();
      }
      setDraft('');
      lastTyping.current = 0;
    } catch (err) {
      setError(problemMessage(err));
      if (err instanceof ApiProblem && err.code === 'agent_unavailable') {
        setUnavailable(true);
        void queries.invalidateQueries({ queryKey: ['models'] });
      }
    }
  }

  async function answer(reply: string) {
    if (running?.status !== 'waiting') return;
    setError(null);
    await client.call('POST', `/api/v1/runs/${running.id}/resume`, { answer: reply }).catch((err: unknown) => {
      setError(errorMessage(err));
    });
  }

  async function stop() {
    if (running) await client.call('POST', `/api/v1/runs/${running.id}/cancel`).catch(() => undefined);
  }

  function onKey(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) void send();
    if (event.key === 'Escape') void stop();
  }

  async function rename(title: string) {
    const renamed = await client.call<ThreadResponse>('PATCH', `/api/v1/threads/${id}`, { title });
    queries.setQueryData(['thread', id], renamed);
    void queries.invalidateQueries({ queryKey: ['threads', renamed.project_id] });
  }

  return (
    <section aria-labelledby="thread-heading" className="flex flex-col gap-4">
      <a href={projectId ? `#/projects/${projectId}` : '#/'} className="text-sm text-blue-600 underline">
        ← Threads
      </a>
      <EditableTitle id="thread-heading" title={thread.data?.title} label="Thread title" canEdit={canWrite} onSave={rename} />
      {project.data?.role === 'owner' && projectId && <DeleteThread threadId={id} projectId={projectId} />}
      <div className="flex flex-wrap items-center justify-between gap-2 text-sm text-gray-500">
        <p aria-live="polite">{connected ? 'Live' : 'Connecting…'}</p>
        <ul aria-label="Here now" className="flex flex-wrap gap-1">
          {present.map((p) => (
            <li key={p.user} className="rounded-full bg-green-100 px-2 text-green-900 dark:bg-green-900 dark:text-green-100" title={`${p.name} is here`}>
              {p.user === me.data?.id ? `${p.name} (you)` : p.name}
            </li>
          ))}
        </ul>
      </div>
      <div className={planned ? 'grid gap-4 md:grid-cols-[minmax(0,1fr)_18rem]' : ''}>
      <div className="flex min-w-0 flex-col gap-4">
      <ol className="flex flex-col gap-3" aria-label="Messages">
        {view.messages.map((message) => (
          <li key={message.id} className={message.role === 'user' ? 'rounded bg-blue-50 p-2 dark:bg-blue-950' : 'rounded p-2'}>
            <span className="text-xs text-gray-500">{message.role === 'user' ? author(message.author) : 'Cairn'}</span>
            <Markdown text={message.content} />
            <MessageAttachments paths={message.attachments} />
          </li>
        ))}
      </ol>
      {view.runs.map((run) => (
        <RunPanel
          key={run.id}
          run={run}
          canAnswer={canWrite}
          onAnswer={(reply) => void answer(reply)}
          detailsRemovedAt={pruned.data?.get(run.id)}
        />
      ))}
      </div>
      {planned && <PlanPanel key={planned.id} run={planned} canEdit={canWrite} onApprove={() => void answer('yes')} />}
      </div>
      <p className="min-h-5 text-sm text-gray-500 italic" aria-live="polite">
        {typingNow}
      </p>
      <Alert message={error} />
      {unavailable && me.data?.role === 'admin' && !(models.data && models.data.models.length > 0) && (
        <p className="text-sm">
          <ConnectModelLink />
        </p>
      )}
      {project.data?.role === 'viewer' ? (
        <p className="rounded border p-2 text-sm text-gray-600 dark:text-gray-300">
          You are a viewer in this project: you can follow the thread live, but not post or steer the agent.
        </p>
      ) : (
        <form onSubmit={(e) => void send(e)} className="flex flex-col gap-2" aria-label="Message">
          <label htmlFor="composer" className="sr-only">
            {running?.status === 'waiting' ? 'Your answer' : 'Your message'}
          </label>
          <PendingAttachments attachments={attachments} />
          <textarea
            id="composer"
            ref={composer}
            className="min-h-20 rounded border p-2"
            value={draft}
            onChange={(e) => onDraft(e.target.value)}
            onKeyDown={onKey}
            placeholder={running?.status === 'waiting' ? 'Answer the question…' : 'Ask Cairn… (Ctrl+Enter to send)'}
          />
          <div className="flex flex-wrap items-center gap-2">
            <button type="submit" className="rounded bg-blue-600 px-3 py-1 text-white disabled:opacity-50" disabled={attachments.uploads.length > 0}>
              {running?.status === 'waiting' ? 'Answer' : 'Send'}
            </button>
            <AttachButton
              attachments={attachments}
              unavailable={running?.status === 'waiting' ? 'Files go with a message: answer the question first' : undefined}
            />
            {running && (
              <button type="button" className="rounded border px-3 py-1" onClick={() => void stop()}>
                Stop (Esc)
              </button>
            )}
            {!running && (
              <label className="flex items-center gap-1 text-sm">
                <input type="checkbox" checked={planFirst} onChange={(e) => setPlanFirst(e.target.checked)} />
                Plan first, with sub-agents
              </label>
            )}
          </div>
        </form>
      )}
    </section>
  );
}

function Output({ output }: { output: StepOutput }) {
  if (output.image) return <img alt="A figure the code made" src={`data:image/png;base64,${output.image}`} className="max-w-full" />;
  // HTML from the sandbox (a DataFrame, display(HTML(...))) is whatever the
  // code — and so whoever steered the model — chose to print.
  if (output.html) return <SafeHtml html={output.html} className="html-output overflow-x-auto text-sm" />;
  return <pre className={output.type === 'error' ? 'whitespace-pre-wrap text-red-600' : 'whitespace-pre-wrap text-sm'}>{output.text}</pre>;
}

/** The model's reasoning, collapsed: it is not the answer. */
function Thinking({ text }: { text: string }) {
  return (
    <details className="mt-1 text-sm text-gray-600">
      <summary className="cursor-pointer">Thinking</summary>
      <p className="whitespace-pre-wrap">{text}</p>
    </details>
  );
}

export function RunPanel({
  run,
  canAnswer,
  onAnswer,
  detailsRemovedAt,
}: {
  run: RunView;
  canAnswer: boolean;
  onAnswer: (reply: string) => void;
  /** When retention removed the run's step details, if it did. */
  detailsRemovedAt?: string | undefined;
}) {
  const approval = run.question?.startsWith('May the agent run') === true && run.planApproval !== true;
  return (
    <article aria-label={`Run ${run.status}`} className="rounded border p-2">
      <header className="flex justify-between text-sm text-gray-500">
        <span>Run: {run.status}</span>
        <span>
          {run.tokens} tokens · ${run.costUsd.toFixed(4)}
          {run.savedUsd !== undefined && run.savedUsd > 0 && ` (caching saved $${run.savedUsd.toFixed(4)})`}
        </span>
      </header>
      {detailsRemovedAt && (
        <p className="text-xs text-gray-500">
          Its step details (code and outputs) were removed on {new Date(detailsRemovedAt).toLocaleDateString()} by the
          project&apos;s retention policy; its answer and files stay.
        </p>
      )}
      {run.summarised !== undefined && (
        <p className="text-xs text-gray-500">
          {run.summarised} earlier turns were summarised to fit the model&apos;s context.
        </p>
      )}
      {run.error && (
        <p role="alert" className="text-red-600">
          The run stopped: {run.error}
        </p>
      )}
      {run.steps.map((step, index) => (
        <div key={index} className="mt-2" aria-label={`Step ${String(index + 1)}`}>
          {step.thinking && <Thinking text={step.thinking} />}
          <CodeBlock code={step.code} />
          {step.outputs.map((output, n) => (
            <Output key={n} output={output} />
          ))}
        </div>
      ))}
      {run.thinking && <Thinking text={run.thinking} />}
      {run.streaming && <p className="mt-2 whitespace-pre-wrap text-gray-600">{run.streaming}</p>}
      {run.question && (
        <div role="status" className="mt-2 flex flex-wrap items-center gap-2">
          <p className="font-semibold">Cairn asks: {run.question}</p>
          {approval && canAnswer && run.status === 'waiting' && (
            <>
              <button type="button" className="rounded bg-green-700 px-3 py-1 text-white" onClick={() => onAnswer('yes')}>
                Approve
              </button>
              <button type="button" className="rounded border px-3 py-1" onClick={() => onAnswer('no')}>
                Reject
              </button>
            </>
          )}
        </div>
      )}
    </article>
  );
}
