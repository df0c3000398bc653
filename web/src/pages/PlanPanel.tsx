import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { errorMessage } from '../api/client';
import type { AgentResponse, PlanBody, PlanTask, Task } from '../api/schema';
import { Alert } from '../components/Alert';
import { CodeBlock } from '../components/Markdown';
import { useSession } from '../session';
import type { RunView } from '../thread/view';

const BADGE: Record<string, string> = {
  pending: 'bg-gray-200 text-gray-800 dark:bg-gray-700 dark:text-gray-100',
  running: 'bg-blue-200 text-blue-900 dark:bg-blue-800 dark:text-blue-50',
  done: 'bg-green-200 text-green-900 dark:bg-green-800 dark:text-green-50',
  failed: 'bg-red-200 text-red-900 dark:bg-red-800 dark:text-red-50',
};

/** A task as the edit form holds it. */
type Draft = Pick<PlanTask, 'id' | 'title' | 'goal' | 'done_when' | 'agent'> & { depends: string };

const toDraft = (t: Task): Draft => ({ id: t.id, title: t.title, goal: t.goal, done_when: t.done_when, agent: t.agent, depends: (t.depends_on ?? []).join(', ') });

export function toPlan(drafts: Draft[]): PlanBody {
  return {
    tasks: drafts.map((d) => ({
      id: d.id.trim(),
      title: d.title.trim(),
      goal: d.goal.trim(),
      done_when: d.done_when.trim(),
      agent: d.agent,
      depends_on: d.depends
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    })),
  };
}

/** The run's plan beside the chat: each task's status, its sub-agent's
 * steps one click away, and — while the run waits for the plan's approval —
 * editing and approval for members with edit rights. */
export default function PlanPanel({ run, canEdit, onApprove }: { run: RunView; canEdit: boolean; onApprove: () => void }) {
  const { client } = useSession();
  const agents = useQuery({ queryKey: ['agents'], queryFn: () => client.call<AgentResponse[]>('GET', '/api/v1/agents') });
  const [open, setOpen] = useState<string | null>(null);
  const [drafts, setDrafts] = useState<Draft[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  const tasks = run.plan ?? [];
  const deciding = run.status === 'waiting' && run.planApproval === true && canEdit;

  async function save() {
    if (!drafts) return;
    setSaving(true);
    setError(null);
    try {
      await client.call<PlanBody>('PUT', `/api/v1/runs/${run.id}/plan`, toPlan(drafts));
      setDrafts(null);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setSaving(false);
    }
  }

  const change = (index: number, field: keyof Draft, value: string) =>
    setDrafts((current) => current?.map((d, i) => (i === index ? { ...d, [field]: value } : d)) ?? null);

  return (
    <aside aria-labelledby={`plan-${run.id}`} className="flex flex-col gap-2 rounded border p-2 md:sticky md:top-2 md:self-start">
      <h3 id={`plan-${run.id}`} className="font-semibold">
        Plan
      </h3>
      {drafts === null ? (
        <ol className="flex flex-col gap-2" aria-label="Tasks">
          {tasks.map((task) => {
            const steps = run.steps.filter((s) => s.task === task.id);
            const status = task.status ?? 'pending';
            return (
              <li key={task.id} className="flex flex-col gap-1 text-sm" aria-label={`Task ${task.id}: ${status}`}>
                <div className="flex flex-wrap items-center gap-2">
                  <span className={`rounded px-1 text-xs ${BADGE[status] ?? ''}`}>{status}</span>
                  <span className="font-medium">{task.title}</span>
                  <span className="text-xs text-gray-500">
                    {task.id} · {task.agent}
                    {(task.depends_on ?? []).length > 0 && ` · after ${(task.depends_on ?? []).join(', ')}`}
                  </span>
                </div>
                <p className="text-gray-700 dark:text-gray-300">{task.goal}</p>
                {task.result && <p className="line-clamp-3 text-xs text-gray-500">{task.result}</p>}
                {steps.length > 0 && (
                  <button type="button" className="self-start text-xs text-blue-600 underline" onClick={() => setOpen(open === task.id ? null : task.id)} aria-expanded={open === task.id}>
                    {open === task.id ? 'Hide' : 'Show'} its {steps.length} step{steps.length === 1 ? '' : 's'}
                  </button>
                )}
                {open === task.id && steps.map((step, n) => <CodeBlock key={n} code={step.code} />)}
              </li>
            );
          })}
        </ol>
      ) : (
        <form
          className="flex flex-col gap-3 text-sm"
          aria-label="Edit the plan"
          onSubmit={(e) => {
            e.preventDefault();
            void save();
          }}
        >
          {drafts.map((d, i) => (
            <fieldset key={i} className="flex flex-col gap-1 rounded border p-1">
              <legend className="text-xs text-gray-500">Task {i + 1}</legend>
              {(['id', 'title', 'goal', 'done_when', 'depends'] as const).map((field) => (
                <label key={field} className="flex flex-col text-xs">
                  {{ id: 'Id', title: 'Title', goal: 'Goal', done_when: 'Done when', depends: 'Depends on (ids, comma-separated)' }[field]}
                  <input className="rounded border px-1 text-sm" value={d[field]} onChange={(e) => change(i, field, e.target.value)} />
                </label>
              ))}
              <label className="flex flex-col text-xs">
                Agent
                <select className="rounded border text-sm" value={d.agent} onChange={(e) => change(i, 'agent', e.target.value)}>
                  {(agents.data ?? [{ name: d.agent }]).map((a) => (
                    <option key={a.name} value={a.name}>
                      {a.name}
                    </option>
                  ))}
                </select>
              </label>
              <button type="button" className="self-start text-xs text-red-600 underline" onClick={() => setDrafts(drafts.filter((_, j) => j !== i))}>
                Remove task {i + 1}
              </button>
            </fieldset>
          ))}
          <button
            type="button"
            className="self-start text-xs underline"
            onClick={() =>
              setDrafts([...drafts, { id: `t${String(drafts.length + 1)}`, title: '', goal: '', done_when: '', agent: agents.data?.[0]?.name ?? 'analyst', depends: '' }])
            }
          >
            Add a task
          </button>
          <div className="flex gap-2">
            <button type="submit" className="rounded bg-blue-600 px-2 py-1 text-white" disabled={saving}>
              Save the plan
            </button>
            <button type="button" className="rounded border px-2 py-1" onClick={() => setDrafts(null)}>
              Cancel
            </button>
          </div>
        </form>
      )}
      <Alert message={error} />
      {deciding && drafts === null && (
        <div className="flex flex-wrap gap-2">
          <button type="button" className="rounded bg-green-700 px-2 py-1 text-sm text-white" onClick={onApprove}>
            Approve the plan
          </button>
          <button type="button" className="rounded border px-2 py-1 text-sm" onClick={() => setDrafts(tasks.map(toDraft))}>
            Edit the plan
          </button>
        </div>
      )}
    </aside>
  );
}
