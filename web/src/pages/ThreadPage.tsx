import { useVirtualizer } from '@tanstack/react-virtual';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useCallback, useEffect, useMemo, useReducer, useRef, useState, type FormEvent, type KeyboardEvent, type ReactNode } from 'react';
import { ApiProblem, errorMessage, problemMessage } from '../api/client';
import type {
  EventResponse,
  ForkResponse,
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
import { Markdown } from '../components/Markdown';
import { typingInField } from '../components/Shortcuts';
import { toast } from '../components/toast';
import { Badge, Button, cx, EmptyState, Select, Textarea } from '../components/ui';
import { useSession } from '../session';
import { Computer } from '../thread/Computer';
import { nobody, othersTyping, typingLine } from '../thread/presence';
import { ReplayBar } from '../thread/Replay';
import { ShareRun } from '../thread/Share';
import { RunFooter, RunHeader, StepView } from '../thread/Timeline';
import { activeRun, applyEvent, emptyThread, runEvents, viewAt, type ChatMessage, type RunView, type ThreadView } from '../thread/view';
import { AttachButton, MessageAttachments, PendingAttachments, useAttachments } from './Attachments';
import { ConnectModelLink } from './Connections';
import { DeleteThread } from './Deletion';
import PlanPanel from './PlanPanel';

/** How often a member typing tells the others (the signal lasts five seconds). */
const TYPING_EVERY_MS = 3000;
/** Rows of a conversation rendered all at once; a longer one is virtualised. */
const VIRTUALISE_AFTER = 80;

/** The events seen so far (for replays) and the view they make. */
interface Log {
  events: EventResponse[];
  view: ThreadView;
}

function addEvent(log: Log, event: EventResponse): Log {
  if (event.seq <= log.view.lastSeq) return log;
  // Appended in place (a copy per event would make a long log's loading
  // quadratic); once only, should React call this twice with the same log.
  if ((log.events.at(-1)?.seq ?? 0) < event.seq) log.events.push(event);
  return { events: log.events, view: applyEvent(log.view, event) };
}

/** Whether the page is wide enough for the computer beside the conversation. */
function useWide(): boolean {
  const query = '(min-width: 1024px)';
  const [wide, setWide] = useState(() => globalThis.matchMedia?.(query).matches ?? true);
  useEffect(() => {
    const list = globalThis.matchMedia?.(query);
    if (!list) return undefined;
    const update = () => setWide(list.matches);
    list.addEventListener('change', update);
    return () => list.removeEventListener('change', update);
  }, []);
  return wide;
}

/** One row of the conversation: a message, or a run's header, step or end. */
type Row =
  | { kind: 'message'; key: string; message: ChatMessage; startedRun?: string | undefined }
  | { kind: 'head'; key: string; run: RunView }
  | { kind: 'step'; key: string; run: RunView; index: number }
  | { kind: 'foot'; key: string; run: RunView };

export function conversationRows(view: ThreadView): Row[] {
  const rows: Row[] = [];
  const messages = new Map(view.messages.map((m) => [m.id, m]));
  const runs = new Map(view.runs.map((r) => [r.id, r]));
  view.items.forEach((item, i) => {
    if (item.type === 'message') {
      const message = messages.get(item.id);
      if (!message) return;
      const next = view.items[i + 1];
      rows.push({ kind: 'message', key: `m${item.id}`, message, startedRun: message.role === 'user' && next?.type === 'run' ? next.id : undefined });
      return;
    }
    const run = runs.get(item.id);
    if (!run) return;
    rows.push({ kind: 'head', key: `h${run.id}`, run });
    run.steps.forEach((_, index) => rows.push({ kind: 'step', key: `s${run.id}-${String(index)}`, run, index }));
    rows.push({ kind: 'foot', key: `f${run.id}`, run });
  });
  return rows;
}

/** Rows grouped for a conversation shown whole: a message alone, a run's rows together. */
function grouped(rows: Row[]): { key: string; run?: RunView; rows: Row[] }[] {
  const groups: { key: string; run?: RunView; rows: Row[] }[] = [];
  for (const row of rows) {
    if (row.kind === 'message') groups.push({ key: row.key, rows: [row] });
    else if (row.kind === 'head') groups.push({ key: row.key, run: row.run, rows: [row] });
    else groups.at(-1)?.rows.push(row);
  }
  return groups;
}

/** A run's box in the conversation, named by its status. */
function RunArticle({ run, children }: { run: RunView; children: ReactNode }) {
  return (
    <article aria-label={`Run ${run.status}`} className="flex flex-col gap-2 rounded-lg border border-zinc-200 bg-white p-3 dark:border-zinc-700 dark:bg-zinc-900">
      {children}
    </article>
  );
}

/** A run's panel, whole: its header, its steps and its end (a shared run, tests). */
export function RunPanel({
  run,
  canAnswer,
  onAnswer,
  detailsRemovedAt,
  actions,
}: {
  run: RunView;
  canAnswer: boolean;
  onAnswer: (reply: string) => void;
  /** When retention removed the run's step details, if it did. */
  detailsRemovedAt?: string | undefined;
  actions?: ReactNode;
}) {
  return (
    <RunArticle run={run}>
      <RunHeader run={run} detailsRemovedAt={detailsRemovedAt} actions={actions} />
      {run.steps.map((step, index) => (
        <StepView key={index} step={step} index={index} />
      ))}
      <RunFooter run={run} canAnswer={canAnswer} onAnswer={onAnswer} />
    </RunArticle>
  );
}

/** A member's message, with "edit and regenerate" for its author. */
function MessageRow({
  message,
  author,
  canEdit,
  onRegenerate,
}: {
  message: ChatMessage;
  author: string;
  canEdit: boolean;
  onRegenerate: (text: string) => Promise<void>;
}) {
  const [editing, setEditing] = useState<string | null>(null);
  const user = message.role === 'user';
  return (
    <article
      aria-label={user ? `Message from ${author}` : 'Answer from Cairn'}
      className={cx('flex flex-col gap-1 rounded-lg p-3', user ? 'bg-indigo-50 dark:bg-indigo-950' : 'bg-white dark:bg-zinc-900')}
    >
      <div className="flex items-center gap-2">
        <span className="text-xs font-medium text-zinc-700 dark:text-zinc-300">{user ? author : 'Cairn'}</span>
        {canEdit && editing === null && (
          <Button size="sm" variant="ghost" className="ml-auto" onClick={() => setEditing(message.content)} aria-label="Edit this message and regenerate">
            Edit
          </Button>
        )}
      </div>
      {editing === null ? (
        <Markdown text={message.content} />
      ) : (
        <form
          className="flex flex-col gap-2"
          onSubmit={(e) => {
            e.preventDefault();
            if (editing.trim()) void onRegenerate(editing.trim()).then(() => setEditing(null));
          }}
        >
          <label className="sr-only" htmlFor={`edit-${message.id}`}>
            Your edited message
          </label>
          <Textarea id={`edit-${message.id}`} value={editing} onChange={(e) => setEditing(e.target.value)} className="min-h-20" />
          <p className="text-xs text-zinc-600 dark:text-zinc-400">The edit starts a branch: a new thread from here, with a new answer. This thread stays as it is.</p>
          <div className="flex gap-2">
            <Button type="submit" variant="primary" size="sm">
              Regenerate in a branch
            </Button>
            <Button size="sm" onClick={() => setEditing(null)}>
              Cancel
            </Button>
          </div>
        </form>
      )}
      <MessageAttachments paths={message.attachments} />
    </article>
  );
}

/** One thread: its conversation, live, the agent's computer beside it, who is here, and the composer. */
export default function ThreadPage({ id }: { id: string }) {
  const { client } = useSession();
  const queries = useQueryClient();
  const wide = useWide();
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
  const models = useQuery({ queryKey: ['models'], queryFn: () => client.call<ModelsResponse>('GET', '/api/v1/models') });
  const [log, dispatch] = useReducer(addEvent, undefined, () => ({ events: [], view: emptyThread }));
  const view = log.view;
  const [presence, setPresence] = useState<PresenceSnapshot>(nobody);
  const [connected, setConnected] = useState(false);
  const [draft, setDraft] = useState('');
  const [planFirst, setPlanFirst] = useState(false);
  const [model, setModel] = useState('');
  const [error, setError] = useState<string | null>(null);
  const attachments = useAttachments(projectId, setError);
  // No run can start here (no model connected, or no sandboxes).
  const [unavailable, setUnavailable] = useState(false);
  // The computer pinned to a run's step; a replay of a run.
  const [pinned, setPinned] = useState<{ run: string; step: number } | null>(null);
  const [replay, setReplay] = useState<{ run: string; at: number } | null>(null);
  const lastTyping = useRef(0);
  const composer = useRef<HTMLTextAreaElement>(null);
  const scroller = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const controller = new AbortController();
    // Out of touch, nobody is known to be here; the next stream says again.
    const onConnection = (live: boolean) => {
      setConnected(live);
      if (!live) setPresence(nobody);
    };
    client.followEvents(id, 0, dispatch, controller.signal, onConnection, setPresence).catch((err: unknown) => {
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

  // A replay shows the view of the run's events up to its position.
  const replayEvents = useMemo(() => (replay ? runEvents(log.events, replay.run) : []), [replay, log.events, view.lastSeq]); // eslint-disable-line react-hooks/exhaustive-deps
  const shown = useMemo(() => (replay ? viewAt(replayEvents, replay.at) : view), [replay, replayEvents, view]);
  const rows = useMemo(() => conversationRows(shown), [shown]);

  const running = activeRun(view);
  const planned = [...shown.runs].reverse().find((r) => r.plan !== undefined);
  const role = project.data?.role;
  const canWrite = role !== undefined && role !== 'viewer';
  const names = new Map((members.data ?? []).map((m) => [m.user_id, m.display_name]));
  const present = presence.here;
  const typingNow = typingLine(othersTyping(presence, me.data?.id));
  const computerRun = pinned ? shown.runs.find((r) => r.id === pinned.run) : replay ? shown.runs.find((r) => r.id === replay.run) : (running ?? shown.runs.at(-1));
  const workspaceTick = view.runs.reduce((n, r) => n + r.steps.reduce((m, s) => m + (s.changes?.length ?? 0), 0), 0);

  // Keeps the newest content in sight until the member scrolls away from it
  // (scrolling back to the end follows it again). Only a scroll the member
  // made stops following: the page's own, and the virtual list's as it
  // measures its rows, do not.
  const atBottom = useRef(true);
  const lastInput = useRef(0);
  const onInput = useCallback(() => {
    lastInput.current = Date.now();
  }, []);
  const onScroll = useCallback(() => {
    const el = scroller.current;
    if (!el) return;
    if (el.scrollHeight - el.scrollTop - el.clientHeight < 120) atBottom.current = true;
    else if (Date.now() - lastInput.current < 1000) atBottom.current = false;
  }, []);
  const virtual = rows.length > VIRTUALISE_AFTER;
  // TanStack Virtual's measurements live outside React; the compiler leaves this component alone.
  // eslint-disable-next-line react-hooks/incompatible-library
  const virtualizer = useVirtualizer({
    count: virtual ? rows.length : 0,
    getScrollElement: () => scroller.current,
    estimateSize: (i) => (rows[i]?.kind === 'step' ? 130 : 60),
    overscan: 6,
    getItemKey: (i) => rows[i]?.key ?? i,
  });
  useEffect(() => {
    if (!atBottom.current || replay) return undefined;
    // Again over a few frames: a virtualised list's height settles as its rows are measured.
    let frames = 0;
    let frame = 0;
    const toEnd = () => {
      const el = scroller.current;
      if (!el || !atBottom.current) return;
      el.scrollTop = el.scrollHeight;
      frames += 1;
      if (virtual && frames < 4) frame = requestAnimationFrame(toEnd);
    };
    toEnd();
    return () => cancelAnimationFrame(frame);
  }, [rows, virtual, replay]);

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
        if (!running && model) request.model = model;
        if (attachments.attached.length > 0) request.attachments = attachments.attached.map((a) => a.path);
        await client.call('POST', `/api/v1/threads/${id}/messages`, request);
        attachments.clear();
      }
      setDraft('');
      lastTyping.current = 0;
      atBottom.current = true;
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

  async function retry(run: RunView) {
    try {
      await client.call('POST', `/api/v1/runs/${run.id}/retry`, model ? { model } : {});
      atBottom.current = true;
    } catch (err) {
      toast(problemMessage(err), 'error');
    }
  }

  async function fork(runId: string, body: { step: number; content?: string }) {
    try {
      const forked = await client.call<ForkResponse>('POST', `/api/v1/runs/${runId}/fork`, body);
      void queries.invalidateQueries({ queryKey: ['threads', projectId] });
      toast(`A new branch: “${forked.thread.title}”.`);
      globalThis.location.hash = `#/threads/${forked.thread.id}`;
    } catch (err) {
      toast(problemMessage(err), 'error');
    }
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

  function runActions(run: RunView): ReactNode {
    const ended = ['succeeded', 'failed', 'cancelled'].includes(run.status);
    return (
      <>
        {ended && !replay && (
          <Button size="sm" variant="ghost" onClick={() => setReplay({ run: run.id, at: 0 })}>
            Replay
          </Button>
        )}
        {role === 'owner' && ended && <ShareRun runId={run.id} />}
        {canWrite && (run.status === 'failed' || run.status === 'cancelled') && !running && (
          <Button size="sm" variant="secondary" onClick={() => void retry(run)}>
            Retry
          </Button>
        )}
        {run === running && canWrite && (
          <Button size="sm" variant="secondary" onClick={() => void stop()}>
            Stop
          </Button>
        )}
      </>
    );
  }

  function renderRow(row: Row): ReactNode {
    switch (row.kind) {
      case 'message':
        return (
          <MessageRow
            message={row.message}
            author={author(row.message.author)}
            canEdit={canWrite && row.message.author === me.data?.id && row.startedRun !== undefined && !replay}
            onRegenerate={(text) => (row.startedRun ? fork(row.startedRun, { step: 0, content: text }) : Promise.resolve())}
          />
        );
      case 'head':
        return <RunHeader run={row.run} detailsRemovedAt={pruned.data?.get(row.run.id)} actions={runActions(row.run)} />;
      case 'step': {
        const step = row.run.steps[row.index];
        if (!step) return null;
        const isPinned = pinned?.run === row.run.id && pinned.step === row.index;
        return (
          <StepView
            step={step}
            index={row.index}
            pinned={isPinned}
            onPin={() => setPinned(isPinned ? null : { run: row.run.id, step: row.index })}
            actions={
              canWrite && !replay && ['succeeded', 'failed', 'cancelled'].includes(row.run.status) ? (
                <Button size="sm" variant="ghost" onClick={() => void fork(row.run.id, { step: row.index + 1 })} aria-label={`Fork from step ${String(row.index + 1)}`}>
                  Fork
                </Button>
              ) : undefined
            }
          />
        );
      }
      case 'foot':
        return <RunFooter run={row.run} canAnswer={canWrite && !replay} onAnswer={(reply) => void answer(reply)} />;
    }
  }

  const computer = (
    <Computer
      run={computerRun}
      upTo={pinned && computerRun?.id === pinned.run ? pinned.step : undefined}
      source={{ kind: 'thread', threadId: id }}
      live={workspaceTick}
      canSave={canWrite}
      plan={planned ? <PlanPanel key={planned.id} run={planned} canEdit={canWrite && !replay} onApprove={() => void answer('yes')} /> : undefined}
      pinnedNote={
        pinned ? (
          <p className="flex items-center gap-2 text-xs text-zinc-700 dark:text-zinc-300">
            <Badge tone="busy">Pinned</Badge> after step {pinned.step + 1}
            <Button size="sm" variant="ghost" onClick={() => setPinned(null)}>
              Follow live
            </Button>
          </p>
        ) : running ? (
          <p className="text-xs text-zinc-700 dark:text-zinc-300">
            <Badge tone="busy">Live</Badge> the current run
          </p>
        ) : undefined
      }
    />
  );

  return (
    <div className="flex h-full min-h-0">
      <section aria-labelledby="thread-heading" className="flex min-w-0 flex-1 flex-col">
        <div className="flex flex-col gap-2 border-b border-zinc-200 px-4 py-2 dark:border-zinc-800">
          <div className="flex flex-wrap items-center gap-2">
            <a href={projectId ? `#/projects/${projectId}` : '#/'} className="text-sm text-indigo-800 underline dark:text-indigo-300">
              ← Threads
            </a>
            <div className="min-w-0 flex-1">
              <EditableTitle id="thread-heading" title={thread.data?.title || 'Untitled thread'} label="Thread title" canEdit={canWrite} onSave={rename} />
            </div>
            {role === 'owner' && projectId && <DeleteThread threadId={id} projectId={projectId} />}
          </div>
          <div className="flex flex-wrap items-center justify-between gap-2 text-sm text-zinc-600 dark:text-zinc-400">
            <p aria-live="polite">{connected ? 'Live' : 'Connecting…'}</p>
            <ul aria-label="Here now" className="flex flex-wrap gap-1">
              {present.map((p) => (
                <li key={p.user} className="rounded-full bg-green-100 px-2 text-green-900 dark:bg-green-900 dark:text-green-100" title={`${p.name} is here`}>
                  {p.user === me.data?.id ? `${p.name} (you)` : p.name}
                </li>
              ))}
            </ul>
          </div>
          {!wide && (
            <details className="rounded-md border border-zinc-200 p-2 dark:border-zinc-700">
              <summary className="cursor-pointer text-sm font-medium">The agent&apos;s computer</summary>
              {computer}
            </details>
          )}
        </div>
        <div
          ref={scroller}
          onScroll={onScroll}
          onWheel={onInput}
          onTouchMove={onInput}
          onKeyDown={onInput}
          onPointerDown={onInput}
          className="min-h-0 flex-1 overflow-y-auto px-4 py-3"
          aria-label="Conversation"
          role="region"
        >
          {rows.length === 0 && thread.isSuccess && (
            <EmptyState title="Ask Cairn something">
              Say what you need in plain words: the agent plans, writes and runs Python in its own sandbox, browses the web
              and saves files to the project&apos;s library. Attach files it should read.
            </EmptyState>
          )}
          {virtual ? (
            <div style={{ height: virtualizer.getTotalSize(), position: 'relative' }}>
              {virtualizer.getVirtualItems().map((item) => {
                const row = rows[item.index];
                return (
                  <div key={item.key} data-index={item.index} ref={virtualizer.measureElement} className="absolute top-0 left-0 w-full pb-3" style={{ transform: `translateY(${String(item.start)}px)` }}>
                    {row && renderRow(row)}
                  </div>
                );
              })}
            </div>
          ) : (
            <div className="flex flex-col gap-3">
              {grouped(rows).map((group) =>
                group.run ? (
                  <RunArticle key={group.key} run={group.run}>
                    {group.rows.map((row) => (
                      <div key={row.key}>{renderRow(row)}</div>
                    ))}
                  </RunArticle>
                ) : (
                  <div key={group.key}>{group.rows.map((row) => renderRow(row))}</div>
                ),
              )}
            </div>
          )}
        </div>
        <div className="flex flex-col gap-2 border-t border-zinc-200 px-4 py-3 dark:border-zinc-800">
          {replay && (
            <ReplayBar at={replay.at} total={replayEvents.length} onSeek={(at) => setReplay({ run: replay.run, at })} onClose={() => setReplay(null)} />
          )}
          <p className="min-h-5 text-sm text-zinc-600 italic dark:text-zinc-400" aria-live="polite">
            {typingNow}
          </p>
          <Alert message={error} />
          {unavailable && me.data?.role === 'admin' && !(models.data && models.data.models.length > 0) && (
            <p className="text-sm">
              <ConnectModelLink />
            </p>
          )}
          {role === 'viewer' ? (
            <p className="rounded-md border border-zinc-200 p-2 text-sm text-zinc-700 dark:border-zinc-700 dark:text-zinc-300">
              You are a viewer in this project: you can follow the thread live, but not post or steer the agent.
            </p>
          ) : (
            <form onSubmit={(e) => void send(e)} className="flex flex-col gap-2" aria-label="Message">
              <label htmlFor="composer" className="sr-only">
                {running?.status === 'waiting' ? 'Your answer' : 'Your message'}
              </label>
              <PendingAttachments attachments={attachments} />
              <Textarea
                id="composer"
                ref={composer}
                className="min-h-20"
                value={draft}
                onChange={(e) => onDraft(e.target.value)}
                onKeyDown={onKey}
                placeholder={running?.status === 'waiting' ? 'Answer the question…' : 'Ask Cairn… (Ctrl+Enter to send)'}
              />
              <div className="flex flex-wrap items-center gap-2">
                <Button type="submit" variant="primary" disabled={attachments.uploads.length > 0}>
                  {running?.status === 'waiting' ? 'Answer' : 'Send'}
                </Button>
                <AttachButton attachments={attachments} unavailable={running?.status === 'waiting' ? 'Files go with a message: answer the question first' : undefined} />
                {running && (
                  <Button onClick={() => void stop()}>Stop (Esc)</Button>
                )}
                {!running && (
                  <>
                    <label className="flex items-center gap-1 text-sm">
                      <input type="checkbox" checked={planFirst} onChange={(e) => setPlanFirst(e.target.checked)} />
                      Plan first, with sub-agents
                    </label>
                    <label htmlFor="run-model" className="sr-only">
                      Model for this run
                    </label>
                    <Select id="run-model" value={model} onChange={(e) => setModel(e.target.value)} className="ml-auto max-w-56">
                      <option value="">Model: the thread&apos;s default</option>
                      {models.data?.models.map((m) => (
                        <option key={m.id} value={m.id}>
                          {m.id}
                        </option>
                      ))}
                    </Select>
                  </>
                )}
              </div>
            </form>
          )}
        </div>
      </section>
      {wide && <aside className="flex w-[26rem] shrink-0 flex-col overflow-y-auto border-l border-zinc-200 p-3 xl:w-[32rem] dark:border-zinc-800">{computer}</aside>}
    </div>
  );
}
