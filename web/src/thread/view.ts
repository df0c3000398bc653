// What a thread looks like, built from its event log: messages, and for
// each run its status, the reply streaming in, its steps (code, outputs,
// observation), a question waiting for an answer, and what it cost. A pure
// function of the events, so a reconnect that replays them gives the same view.

import type { EventResponse, PlanTask } from '../api/schema';

export interface ChatMessage {
  id: string;
  role: 'user' | 'assistant' | 'system';
  author?: string | null;
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

export interface RunStep {
  /** The plan's task whose sub-agent wrote it, if any. */
  task?: string;
  /** The model's reasoning before it wrote the step, where it shows it. */
  thinking?: string;
  code: string;
  outputs: StepOutput[];
  observation?: string;
}

export interface RunView {
  id: string;
  status: string;
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
  plan?: PlanTask[];
  costUsd: number;
  tokens: number;
  /** What the provider's prompt cache saved on the run's model calls (US dollars). */
  savedUsd?: number;
}

export interface ThreadView {
  lastSeq: number;
  messages: ChatMessage[];
  runs: RunView[];
}

export const emptyThread: ThreadView = { lastSeq: 0, messages: [], runs: [] };

type Payload = Record<string, unknown>;

const text = (value: unknown): string => (typeof value === 'string' ? value : '');

function run(view: ThreadView, id: string): [RunView[], RunView] {
  const existing = view.runs.find((r) => r.id === id);
  const current: RunView = existing ?? { id, status: 'queued', streaming: '', steps: [], costUsd: 0, tokens: 0 };
  const runs = existing ? view.runs : [...view.runs, current];
  return [runs, current];
}

function replace(runs: RunView[], updated: RunView): RunView[] {
  return runs.map((r) => (r.id === updated.id ? updated : r));
}

function output(payload: Payload): StepOutput {
  const kind = text(payload.type) as StepOutput['type'];
  if (kind === 'stream') return { type: 'stream', text: text(payload.text) };
  if (kind === 'error') return { type: 'error', text: `${text(payload.ename)}: ${text(payload.evalue)}` };
  const data = (payload.data ?? {}) as Payload;
  const shown: StepOutput = { type: kind === 'result' ? 'result' : 'display' };
  if (typeof data['image/png'] === 'string') shown.image = data['image/png'];
  else if (typeof data['text/html'] === 'string') shown.html = data['text/html'];
  else shown.text = text(data['text/plain']);
  return shown;
}

/** The view after one more event; events already applied are ignored. */
export function applyEvent(view: ThreadView, event: EventResponse): ThreadView {
  if (event.seq <= view.lastSeq) return view;
  const payload = (event.payload ?? {}) as Payload;
  const next: ThreadView = { ...view, lastSeq: event.seq };
  if (event.kind === 'message.created') {
    const role = text(payload.role) as ChatMessage['role'];
    const message: ChatMessage = { id: text(payload.id), role, author: text(payload.author) || null, content: text(payload.content) };
    const attached = Array.isArray(payload.attachments) ? payload.attachments.filter((p): p is string => typeof p === 'string') : [];
    if (attached.length > 0) message.attachments = attached;
    return { ...next, messages: [...view.messages, message] };
  }
  const runId = event.run_id;
  if (!runId) return next;
  const [runs, current] = run(view, runId);
  let updated: RunView;
  switch (event.kind) {
    case 'run.status': {
      updated = { ...current, status: text(payload.status), error: (payload.error as string | null | undefined) ?? null };
      if (updated.status !== 'waiting') {
        delete updated.question;
        delete updated.planApproval;
      }
      // The reply streamed so far is now a message, a step, or nothing.
      if (updated.status !== 'waiting') updated.streaming = '';
      break;
    }
    case 'token':
      updated = { ...current, streaming: current.streaming + text(payload.text) };
      break;
    case 'reasoning':
      updated = { ...current, thinking: (current.thinking ?? '') + text(payload.text) };
      break;
    case 'code': {
      const step: RunStep = { code: text(payload.code), outputs: [] };
      if (payload.task) step.task = text(payload.task);
      if (current.thinking) step.thinking = current.thinking;
      updated = { ...current, streaming: '', steps: [...current.steps, step] };
      delete updated.thinking;
      break;
    }
    case 'plan': {
      const plan = (payload.plan ?? {}) as { tasks?: PlanTask[] };
      updated = { ...current, streaming: '', plan: plan.tasks ?? [] };
      break;
    }
    case 'output':
    case 'observation': {
      const steps = [...current.steps];
      const last = steps.at(-1);
      if (last && event.kind === 'output') {
        const shown = output(payload);
        const previous = last.outputs.at(-1);
        // Printed text arrives in pieces; consecutive pieces read as one.
        const outputs =
          shown.type === 'stream' && previous?.type === 'stream'
            ? [...last.outputs.slice(0, -1), { ...previous, text: (previous.text ?? '') + (shown.text ?? '') }]
            : [...last.outputs, shown];
        steps[steps.length - 1] = { ...last, outputs };
      } else if (last) {
        steps[steps.length - 1] = { ...last, observation: text(payload.text) };
      }
      updated = { ...current, steps };
      break;
    }
    case 'context.summarized':
      updated = { ...current, summarised: (current.summarised ?? 0) + (typeof payload.turns === 'number' ? payload.turns : 0) };
      break;
    case 'interrupt':
      updated = { ...current, question: text(payload.question), planApproval: payload.plan === true };
      break;
    case 'usage': {
      const count = (value: unknown) => (typeof value === 'number' ? value : 0);
      updated = {
        ...current,
        costUsd: current.costUsd + count(payload.cost_usd),
        // Every token of the prompt (cached or not) and of the reply.
        tokens:
          current.tokens +
          count(payload.input_tokens) +
          count(payload.cache_read_tokens) +
          count(payload.cache_write_tokens) +
          count(payload.output_tokens),
        savedUsd: (current.savedUsd ?? 0) + count(payload.saved_usd),
      };
      break;
    }
    default:
      return { ...next, runs };
  }
  return { ...next, runs: replace(runs, updated) };
}

/** The run still going, if any (one that is queued, running or waiting). */
export function activeRun(view: ThreadView): RunView | undefined {
  return [...view.runs].reverse().find((r) => ['queued', 'running', 'waiting'].includes(r.status));
}
