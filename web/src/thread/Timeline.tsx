// A run as a timeline of steps: the model's thinking (folded), the code it
// ran (highlighted, with a copy button), what it printed and showed, the
// tools it called, the pages its browser saw, the files it changed, and
// what each step cost; questions and approvals inline.

import type { ReactNode } from 'react';
import { CodeBlock } from '../components/Markdown';
import { SafeHtml } from '../components/SafeHtml';
import { copyText } from '../components/toast';
import { Badge, Button, cx } from '../components/ui';
import type { RunStep, RunView, StepOutput } from './view';

const STATUS_TONE = { queued: 'wait', running: 'busy', waiting: 'wait', succeeded: 'good', failed: 'bad', cancelled: 'neutral' } as const;

export function StatusBadge({ status }: { status: RunView['status'] }) {
  return <Badge tone={STATUS_TONE[status]}>{status}</Badge>;
}

export function Output({ output }: { output: StepOutput }) {
  if (output.image) return <img alt="A figure the code made" src={`data:image/png;base64,${output.image}`} className="max-w-full rounded-md bg-white" />;
  // HTML from the sandbox (a DataFrame, display(HTML(...))) is whatever the
  // code — and so whoever steered the model — chose to print.
  if (output.html) return <SafeHtml html={output.html} className="html-output overflow-x-auto text-sm" />;
  return <pre className={output.type === 'error' ? 'text-sm whitespace-pre-wrap text-red-700 dark:text-red-300' : 'text-sm whitespace-pre-wrap'}>{output.text}</pre>;
}

/** The model's reasoning, collapsed: it is not the answer. */
export function Thinking({ text }: { text: string }) {
  return (
    <details className="text-sm text-zinc-700 dark:text-zinc-300">
      <summary className="cursor-pointer select-none">Thinking</summary>
      <p className="whitespace-pre-wrap">{text}</p>
    </details>
  );
}

function money(usd: number): string {
  return `$${usd.toFixed(4)}`;
}

/** One step: its code, what came of it, and what it cost. */
export function StepView({
  step,
  index,
  pinned,
  onPin,
  actions,
}: {
  step: RunStep;
  index: number;
  pinned?: boolean;
  onPin?: () => void;
  actions?: ReactNode;
}) {
  return (
    <div
      aria-label={`Step ${String(index + 1)}`}
      className={cx('flex flex-col gap-2 border-l-2 py-1 pl-3', pinned ? 'border-indigo-600 dark:border-indigo-400' : 'border-zinc-200 dark:border-zinc-700')}
    >
      <div className="flex flex-wrap items-center gap-2 text-xs text-zinc-600 dark:text-zinc-400">
        <span className="font-medium text-zinc-800 dark:text-zinc-200">Step {index + 1}</span>
        {step.task && <Badge>task {step.task}</Badge>}
        {step.tokens !== undefined && (
          <span>
            {step.tokens.toLocaleString()} tokens · {money(step.costUsd ?? 0)}
          </span>
        )}
        <span className="ml-auto flex gap-1">
          {onPin && (
            <Button size="sm" variant="ghost" onClick={onPin} aria-pressed={pinned === true} aria-label={`${pinned ? 'Pinned' : 'Pin'}: the computer after step ${String(index + 1)}`}>
              {pinned ? 'Pinned' : 'Pin'}
            </Button>
          )}
          <Button size="sm" variant="ghost" onClick={() => void copyText(step.code, 'the code')} aria-label={`Copy the code of step ${String(index + 1)}`}>
            Copy
          </Button>
          {actions}
        </span>
      </div>
      {step.thinking && <Thinking text={step.thinking} />}
      <CodeBlock code={step.code} />
      {step.outputs.map((output, n) => (
        <Output key={n} output={output} />
      ))}
      {(step.tools?.length ?? 0) > 0 && (
        <ul aria-label={`Tools called in step ${String(index + 1)}`} className="flex flex-col gap-1">
          {step.tools?.map((tool, n) => (
            <li key={n}>
              <details className="rounded-md border border-zinc-200 px-2 py-1 text-xs dark:border-zinc-700">
                <summary className="cursor-pointer">
                  <span className="font-mono">{tool.name}</span> {tool.ok ? '✓' : '✗'} <span className="text-zinc-600 dark:text-zinc-400">{tool.durationMs} ms</span>
                </summary>
                <p className="font-mono break-all">{tool.args}</p>
                <p className={cx('mt-1 break-all', !tool.ok && 'text-red-700 dark:text-red-300')}>{tool.result}</p>
              </details>
            </li>
          ))}
        </ul>
      )}
      {(step.browser?.length ?? 0) > 0 && (
        <ul aria-label={`Pages visited in step ${String(index + 1)}`} className="flex flex-col gap-0.5 text-xs">
          {step.browser?.map((shot, n) => (
            <li key={n} className="truncate">
              Browser {shot.action.replace('browser_', '')}: <span className="font-mono">{shot.url}</span>
              {shot.title && ` — ${shot.title}`}
            </li>
          ))}
        </ul>
      )}
      {(step.changes?.length ?? 0) > 0 && (
        <p className="text-xs text-zinc-700 dark:text-zinc-300">
          Files:{' '}
          {step.changes?.map((c, n) => (
            <span key={n} className="mr-2 font-mono">
              {c.change === 'added' ? '+' : c.change === 'removed' ? '−' : '~'}
              {c.path}
            </span>
          ))}
        </p>
      )}
    </div>
  );
}

const TASK_TONE = { pending: 'neutral', running: 'busy', done: 'good', failed: 'bad' } as const;

/** A planned run's plan in brief, inline in the conversation (the Plan tab edits it). */
export function PlanCard({ run }: { run: RunView }) {
  if (!run.plan || run.plan.length === 0) return null;
  const done = run.plan.filter((t) => t.status === 'done').length;
  return (
    <section aria-label="The run's plan" className="rounded-md border border-zinc-200 p-2 text-sm dark:border-zinc-700">
      <p className="font-medium">
        Plan: {done} of {run.plan.length} tasks done
        {run.planApproval && run.status === 'waiting' ? ' — waiting for approval (see the Plan tab)' : ''}
      </p>
      <ol className="mt-1 flex flex-col gap-0.5">
        {run.plan.map((task) => (
          <li key={task.id} className="flex items-center gap-2">
            <Badge tone={TASK_TONE[task.status ?? 'pending']}>{task.status ?? 'pending'}</Badge>
            <span>{task.title}</span>
          </li>
        ))}
      </ol>
    </section>
  );
}

/** A run's header: status, what it is (a branch, a retry), what it cost, and its actions. */
export function RunHeader({ run, actions, detailsRemovedAt }: { run: RunView; actions?: ReactNode; detailsRemovedAt?: string | undefined }) {
  return (
    <div className="flex flex-col gap-1">
      <header className="flex flex-wrap items-center gap-2 text-sm">
        <span className="font-medium">Run</span>
        <StatusBadge status={run.status} />
        {run.forkedFrom && <Badge tone="busy">{run.forkedFrom.step === 0 ? 'branch' : `fork at step ${String(run.forkedFrom.step)}`}</Badge>}
        {run.retryOf && <Badge tone="busy">retry</Badge>}
        <span className="text-xs text-zinc-600 dark:text-zinc-400">
          {run.steps.length} steps · {run.tokens.toLocaleString()} tokens · ${run.costUsd.toFixed(4)}
          {run.savedUsd !== undefined && run.savedUsd > 0 && ` (caching saved $${run.savedUsd.toFixed(4)})`}
        </span>
        <span className="ml-auto flex flex-wrap gap-1">{actions}</span>
      </header>
      {detailsRemovedAt && (
        <p className="text-xs text-zinc-600 dark:text-zinc-400">
          Its step details (code and outputs) were removed on {new Date(detailsRemovedAt).toLocaleDateString()} by the project&apos;s retention policy; its
          answer and files stay.
        </p>
      )}
      {run.summarised !== undefined && <p className="text-xs text-zinc-600 dark:text-zinc-400">{run.summarised} earlier turns were summarised to fit the model&apos;s context.</p>}
      <PlanCard run={run} />
    </div>
  );
}

/** What a run says at its end: a failure, the text streaming in, a question. */
export function RunFooter({ run, canAnswer, onAnswer }: { run: RunView; canAnswer: boolean; onAnswer: (reply: string) => void }) {
  const approval = run.question?.startsWith('May the agent run') === true && run.planApproval !== true;
  return (
    <div className="flex flex-col gap-2">
      {run.thinking && <Thinking text={run.thinking} />}
      {run.streaming && <p className="whitespace-pre-wrap text-zinc-700 dark:text-zinc-300">{run.streaming}</p>}
      {run.status === 'running' && !run.streaming && <p className="animate-pulse text-sm text-zinc-600 dark:text-zinc-400">Working…</p>}
      {run.error && (
        <p role="alert" className="text-red-700 dark:text-red-300">
          The run stopped: {run.error}
        </p>
      )}
      {run.question && (
        <div role="status" className="flex flex-wrap items-center gap-2 rounded-md border border-amber-300 bg-amber-50 p-2 dark:border-amber-700 dark:bg-amber-950">
          <p className="font-semibold">Cairn asks: {run.question}</p>
          {approval && canAnswer && run.status === 'waiting' && (
            <>
              <Button variant="primary" size="sm" onClick={() => onAnswer('yes')}>
                Approve
              </Button>
              <Button size="sm" onClick={() => onAnswer('no')}>
                Reject
              </Button>
            </>
          )}
        </div>
      )}
    </div>
  );
}
