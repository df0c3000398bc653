import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { ModelsResponse, ProjectResponse } from '../api/schema';
import { useSession } from '../session';
import { Alert } from '../components/Alert';

/** The project's default model (owners choose; everyone sees it). */
export default function ProjectSettings({ project }: { project: ProjectResponse }) {
  const { client } = useSession();
  const queries = useQueryClient();
  const models = useQuery({ queryKey: ['models'], queryFn: () => client.call<ModelsResponse>('GET', '/api/v1/models') });
  const save = useMutation({
    mutationFn: (model: string | null) => client.call<ProjectResponse>('PUT', `/api/v1/projects/${project.id}/model`, { model }),
    onSuccess: () => void queries.invalidateQueries({ queryKey: ['project', project.id] }),
  });
  const owner = project.role === 'owner';
  const fallback = models.data?.default ? `the deployment's default (${models.data.default})` : "the deployment's default";
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
          onChange={(e) => save.mutate(e.target.value === '' ? null : e.target.value)}
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
        <p className="text-sm text-gray-500">No language model is configured on this server yet (llm.providers).</p>
      )}
      <Alert message={save.error?.message} />
    </section>
  );
}
