import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import type { ModelsResponse, ProjectResponse, ProjectUsage } from '../api/schema';
import { useSession } from '../session';
import { Alert } from '../components/Alert';
import Packages from './Packages';

/** The project's default model, budget, retention and packages (owners change them; everyone sees them). */
export default function ProjectSettings({ project }: { project: ProjectResponse }) {
  const { client } = useSession();
  const queries = useQueryClient();
  const models = useQuery({ queryKey: ['models'], queryFn: () => client.call<ModelsResponse>('GET', '/api/v1/models') });
  const usage = useQuery({
    queryKey: ['usage', project.id],
    queryFn: () => client.call<ProjectUsage>('GET', `/api/v1/projects/${project.id}/usage`),
  });
  const save = useMutation({
    mutationFn: (changes: { model?: string | null; budget_usd?: number | null; retention_days?: number | null }) =>
      client.call<ProjectResponse>('PATCH', `/api/v1/projects/${project.id}`, changes),
    onSuccess: (saved) => {
      queries.setQueryData(['project', project.id], saved);
      void queries.invalidateQueries({ queryKey: ['projects'] });
    },
  });
  const [budget, setBudget] = useState<string | null>(null);
  const [retention, setRetention] = useState<string | null>(null);
  const owner = project.role === 'owner';
  const fallback = models.data?.default ? `the deployment's default (${models.data.default})` : "the deployment's default";
  const spent = usage.data?.total.cost_usd ?? 0;

  function saveBudget(event: FormEvent) {
    event.preventDefault();
    const text = (budget ?? '').trim();
    save.mutate({ budget_usd: text === '' ? null : Number(text) }, { onSuccess: () => setBudget(null) });
  }

  return (
    <section aria-labelledby="settings-heading" className="flex flex-col gap-2">
      <h3 id="settings-heading" className="text-lg font-semibold">
        Settings
      </h3>
      <label className="flex flex-wrap items-center gap-2 text-sm">
        Model for this project's runs
        <select
          className="rounded border px-1"
          disabled={!owner || save.isPending}
          value={project.model ?? ''}
          onChange={(e) => save.mutate({ model: e.target.value === '' ? null : e.target.value })}
        >
          <option value="">{fallback}</option>
          {models.data?.models.map((model) => (
            <option key={model.id} value={model.id}>
              {model.id}
            </option>
          ))}
        </select>
      </label>
      {models.data && models.data.models.length === 0 && (
        <p className="text-sm text-gray-500">No language model is connected yet: an administrator connects one on the administration page.</p>
      )}
      <form onSubmit={saveBudget} className="flex flex-wrap items-center gap-2 text-sm" aria-label="Budget">
        <label htmlFor="budget">Budget for model costs (US $, empty for none)</label>
        <input
          id="budget"
          className="w-28 rounded border px-1"
          type="number"
          min="0"
          step="0.01"
          disabled={!owner}
          value={budget ?? (project.budget_usd == null ? '' : String(project.budget_usd))}
          onChange={(e) => setBudget(e.target.value)}
        />
        {owner && (
          <button type="submit" className="rounded border px-2" disabled={save.isPending || budget === null}>
            Save budget
          </button>
        )}
      </form>
      <p className="text-sm text-gray-600 dark:text-gray-300">
        Spent so far: ${spent.toFixed(2)}
        {project.budget_usd != null && ` of $${project.budget_usd.toFixed(2)}`}
        {project.budget_usd != null && spent >= project.budget_usd && ' — the budget is spent; new runs are refused until an owner raises it.'}
      </p>
      <form
        className="flex flex-wrap items-center gap-2 text-sm"
        aria-label="Retention"
        onSubmit={(event) => {
          event.preventDefault();
          const text = (retention ?? '').trim();
          save.mutate({ retention_days: text === '' ? null : Number(text) }, { onSuccess: () => setRetention(null) });
        }}
      >
        <label htmlFor="retention">Keep finished runs' step details for (days; 0 for ever, empty for the deployment's setting)</label>
        <input
          id="retention"
          className="w-24 rounded border px-1"
          type="number"
          min="0"
          step="1"
          disabled={!owner}
          value={retention ?? (project.retention_days == null ? '' : String(project.retention_days))}
          onChange={(e) => setRetention(e.target.value)}
        />
        {owner && (
          <button type="submit" className="rounded border px-2" disabled={save.isPending || retention === null}>
            Save retention
          </button>
        )}
      </form>
      <p className="text-xs text-gray-500">Answers, messages and library files are never removed by retention.</p>
      <Alert message={save.error?.message} />
      <Packages project={project} />
    </section>
  );
}
