// What a thread looks like, built from its event log: messages, and for
// each run its status, the reply streaming in, its steps (code, outputs,
// observation), a question waiting for an answer, and what it cost. A pure
// function of the events, so a reconnect that replays them gives the same view.

import type { EventResponse, ForkedFrom, MessageRole, Output, PathChanged, RunStatus, Task, UserId } from '../api/schema';

export interface ChatMessage {
  id: string;
  role: MessageRole;
  author?: UserId | null;
  content: string;
  /** Library files the member attached (paths in the thread's project). */
  attachments?: string[];
}

export interface StepOutput {
  type: 'stream' | 'display' | 'result' | 'error';
  text?: string;
  /** A PNG image, base64. */
  image?: string;
  /** An HTML table (a DataFrame). */
  html?: string;
}

/** A tool the step's code called. */
export interface ToolUse {
  name: string;
  args: string;
  result: string;
  ok: boolean;
  durationMs: number;
}

/** The page as the browser tool saw it after an action of the step. */
export interface BrowserShot {
  action: string;
  url: string;
  title: string;
  /** The screenshot's name among the thread's pictures. */
  screenshot?: string;
}

export interface RunStep {
  /** The plan's task whose sub-agent wrote it, if any. */
  task?: string;
  /** The model's reasoning before it wrote the step, where it shows it. */
  thinking?: string;
  code: string;
  outputs: StepOutput[];
  observation?: string;
  /** Tools the code called, in order. */
  tools?: ToolUse[];
  /** What the browser showed after each of its actions. */
  browser?: BrowserShot[];
  /** What the step changed in the workspace. */
  changes?: PathChanged[];
  /** The tokens and cost of the model call that wrote the step. */
  tokens?: number;
  costUsd?: number;
}

export interface RunView {
  id: string;
  status: RunStatus;
  error?: string | null;
  /** The model's reply streaming in now. */
  streaming: string;
  /** The model's reasoning streaming in now (it goes to the next step). */
  thinking?: string;
  steps: RunStep[];
  question?: string;
  /** The question is whether to follow the plan (which may be edited meanwhile). */
  planApproval?: boolean;
  /** Earlier turns were summarised to fit the model's context (how many). */
  summarised?: number;
  /** The run's plan as it stands, for a run that planned. */
  plan?: Task[];
  costUsd: number;
  tokens: number;
  /** What the provider's prompt cache saved on the run's model calls (US dollars). */
  savedUsd?: number;
  /** Tokens and cost of model calls not yet tied to a step (the next one's). */
  pending?: { tokens: number; costUsd: number };
  /** A branch: the run (and its step; 0: its start) it goes on from. */
  forkedFrom?: ForkedFrom;
  /** A retry of this failed or cancelled run. */
  retryOf?: string;
  /** The model it was asked to use. */
  model?: string;
}

/** What the conversation shows, in the log's order: a message, or a run. */
export type TimelineItem = { type: 'message'; id: string } | { type: 'run'; id: string };

export interface ThreadView {
  lastSeq: number;
  messages: ChatMessage[];
  runs: RunView[];
  /** Messages and runs in the order they began. */
  items: TimelineItem[];
}

export const emptyThread: ThreadView = { lastSeq: 0, messages: [], runs: [], items: [] };

function run(view: ThreadView, id: string): [RunView[], RunView, TimelineItem[]] {
  const existing = view.runs.find((r) => r.id === id);
  const current: RunView = existing ?? { id, status: 'queued', streaming: '', steps: [], costUsd: 0, tokens: 0 };
  const runs = existing ? view.runs : [...view.runs, current];
  const items: TimelineItem[] = existing ? view.items : [...view.items, { type: 'run', id }];
  return [runs, current, items];
}

/** The run with its last step changed by `change` (nothing without a step). */
function onLastStep(current: RunView, change: (step: RunStep) => RunStep): RunView {
  const last = current.steps.at(-1);
  if (!last) return current;
  return { ...current, steps: [...current.steps.slice(0, -1), change(last)] };
}

function replace(runs: RunView[], updated: RunView): RunView[] {
  return runs.map((r) => (r.id === updated.id ? updated : r));
}

/** How the page shows an output: a display or a result in the richest form it can
 * render; nothing for a type newer than the page. */
function shown(output: Output): StepOutput | undefined {
  switch (output.type) {
    case 'stream':
      return { type: 'stream', text: output.text };
    case 'error':
      return { type: 'error', text: `${output.ename}: ${output.evalue}` };
    case 'display':
    case 'result': {
      // A MIME bundle: its keys and values are the kernel's, so each is checked.
      const { 'image/png': image, 'text/html': html, 'text/plain': plain } = output.data;
      if (typeof image === 'string') return { type: output.type, image };
      if (typeof html === 'string') return { type: output.type, html };
      return { type: output.type, text: typeof plain === 'string' ? plain : '' };
    }
    default:
      output satisfies never;
      return undefined;
  }
}

/** The view after one more event; events already applied are ignored, and so
 * are kinds newer than the page (the server may have been upgraded under it). */
export function applyEvent(view: ThreadView, event: EventResponse): ThreadView {
  if (event.seq <= view.lastSeq) return view;
  const next: ThreadView = { ...view, lastSeq: event.seq };
  if (event.kind === 'message.created') {
    const { id, role, author, content, attachments } = event.payload;
    const message: ChatMessage = { id, role, author: author ?? null, content };
    if (attachments && attachments.length > 0) message.attachments = attachments;
    return { ...next, messages: [...view.messages, message], items: [...view.items, { type: 'message', id }] };
  }
  const runId = event.run_id;
  if (!runId) return next;
  const [runs, current, items] = run(view, runId);
  next.items = items;
  let updated: RunView;
  switch (event.kind) {
    case 'run.status': {
      updated = { ...current, status: event.payload.status, error: event.payload.error ?? null };
      const { forked_from: forkedFrom, retry_of: retryOf, model } = event.payload;
      if (forkedFrom) updated.forkedFrom = forkedFrom;
      if (retryOf) updated.retryOf = retryOf;
      if (model) updated.model = model;
      if (updated.status !== 'waiting') {
        delete updated.question;
        delete updated.planApproval;
      }
      // The reply streamed so far is now a message, a step, or nothing.
      if (updated.status !== 'waiting') updated.streaming = '';
      break;
    }
    case 'token':
      updated = { ...current, streaming: current.streaming + event.payload.text };
      break;
    case 'reasoning':
      updated = { ...current, thinking: (current.thinking ?? '') + event.payload.text };
      break;
    case 'code': {
      const step: RunStep = { code: event.payload.code, outputs: [] };
      if (event.payload.task) step.task = event.payload.task;
      if (current.thinking) step.thinking = current.thinking;
      if (current.pending) {
        step.tokens = current.pending.tokens;
        step.costUsd = current.pending.costUsd;
      }
      updated = { ...current, streaming: '', steps: [...current.steps, step] };
      delete updated.thinking;
      delete updated.pending;
      break;
    }
    case 'plan':
      updated = { ...current, streaming: '', plan: event.payload.plan.tasks };
      break;
    case 'output': {
      const steps = [...current.steps];
      const last = steps.at(-1);
      const output = shown(event.payload);
      if (last && output) {
        const previous = last.outputs.at(-1);
        // Printed text arrives in pieces; consecutive pieces read as one.
        const outputs =
          output.type === 'stream' && previous?.type === 'stream'
            ? [...last.outputs.slice(0, -1), { ...previous, text: (previous.text ?? '') + (output.text ?? '') }]
            : [...last.outputs, output];
        steps[steps.length - 1] = { ...last, outputs };
      }
      updated = { ...current, steps };
      break;
    }
    case 'observation': {
      const steps = [...current.steps];
      const last = steps.at(-1);
      if (last) steps[steps.length - 1] = { ...last, observation: event.payload.text };
      updated = { ...current, steps };
      break;
    }
    case 'context.summarized':
      updated = { ...current, summarised: (current.summarised ?? 0) + event.payload.turns };
      break;
    case 'interrupt':
      updated = { ...current, question: event.payload.question, planApproval: event.payload.plan === true };
      break;
    case 'usage': {
      const usage = event.payload;
      // Every token of the prompt (cached or not) and of the reply.
      const tokens = usage.input_tokens + (usage.cache_read_tokens ?? 0) + (usage.cache_write_tokens ?? 0) + usage.output_tokens;
      updated = {
        ...current,
        costUsd: current.costUsd + usage.cost_usd,
        tokens: current.tokens + tokens,
        savedUsd: (current.savedUsd ?? 0) + (usage.saved_usd ?? 0),
        pending: { tokens: (current.pending?.tokens ?? 0) + tokens, costUsd: (current.pending?.costUsd ?? 0) + usage.cost_usd },
      };
      break;
    }
    case 'tool': {
      const { name, args, result, ok, duration_ms: durationMs } = event.payload;
      updated = onLastStep(current, (step) => ({ ...step, tools: [...(step.tools ?? []), { name, args, result, ok, durationMs }] }));
      break;
    }
    case 'browser': {
      const { action, url, title, screenshot } = event.payload;
      const shot: BrowserShot = { action, url, title: title ?? '' };
      if (screenshot) shot.screenshot = screenshot;
      updated = onLastStep(current, (step) => ({ ...step, browser: [...(step.browser ?? []), shot] }));
      break;
    }
    case 'workspace':
      updated = onLastStep(current, (step) => ({ ...step, changes: [...(step.changes ?? []), ...event.payload.changes] }));
      break;
    // The library lists a saved file, and a budget's stop comes as a failed status.
    case 'artifact':
    case 'run.budget':
      return { ...next, runs };
    default:
      // A kind newer than the page. `never` here makes the compiler insist every kind it knows has a case above.
      event satisfies never;
      return next;
  }
  return { ...next, runs: replace(runs, updated) };
}

/** The view of a thread's first `count` events: what a replay shows at that point. */
export function viewAt(events: EventResponse[], count: number): ThreadView {
  return events.slice(0, count).reduce(applyEvent, emptyThread);
}

/** A run's events, with the messages among them (the one that started it, its answer). */
export function runEvents(events: EventResponse[], runId: string): EventResponse[] {
  const first = events.findIndex((e) => e.run_id === runId);
  if (first < 0) return [];
  let last = first;
  events.forEach((e, i) => {
    if (e.run_id === runId) last = i;
  });
  let start = first;
  for (let i = first - 1; i >= 0; i -= 1) {
    if (events[i]?.kind === 'message.created') {
      start = i;
      break;
    }
  }
  return events.slice(start, last + 1).filter((e) => e.run_id === runId || e.kind === 'message.created');
}

/** The run still going, if any (one that is queued, running or waiting). */
export function activeRun(view: ThreadView): RunView | undefined {
  return [...view.runs].reverse().find((r) => ['queued', 'running', 'waiting'].includes(r.status));
}
