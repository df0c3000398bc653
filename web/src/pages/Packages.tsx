import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import type { ProjectResponse } from '../api/schema';
import { useSession } from '../session';
import { Alert } from '../components/Alert';

/**
 * Whether the project's sandboxes may install Python packages, and the
 * requirements their environment starts from (owners change them; everyone
 * sees them).
 */
export default function Packages({ project }: { project: ProjectResponse }) {
  const { client } = useSession();
  const queries = useQueryClient();
  const [enabled, setEnabled] = useState<boolean | null>(null);
  const [requirements, setRequirements] = useState<string | null>(null);
  const save = useMutation({
    mutationFn: (changes: { packages: boolean; requirements: string }) =>
      client.call<ProjectResponse>('PATCH', `/api/v1/projects/${project.id}`, changes),
    onSuccess: (saved) => {
      queries.setQueryData(['project', project.id], saved);
      void queries.invalidateQueries({ queryKey: ['projects'] });
      setEnabled(null);
      setRequirements(null);
    },
  });
  const owner = project.role === 'owner';
  const checked = enabled ?? project.packages;
  const text = requirements ?? project.requirements;
  const changed = enabled !== null || requirements !== null;

  function submit(event: FormEvent) {
    event.preventDefault();
    save.mutate({ packages: checked, requirements: text });
  }

  return (
    <form onSubmit={submit} aria-label="Packages" className="flex flex-col gap-1 text-sm">
      <label className="flex items-center gap-2">
        <input type="checkbox" checked={checked} disabled={!owner} onChange={(e) => setEnabled(e.target.checked)} />
        Let the agent install Python packages (pip, from the deployment's package index only)
      </label>
      <label htmlFor="requirements">Requirements the project's environment starts from (one per line, as in requirements.txt)</label>
      <textarea
        id="requirements"
        className="h-24 rounded border px-1 font-mono"
        spellCheck={false}
        disabled={!owner}
        placeholder={'polars>=1\nrich'}
        value={text}
        onChange={(e) => setRequirements(e.target.value)}
      />
      <p className="text-xs text-gray-500">
        Installed once, before the next sandbox starts; what runs install with pip is kept for the project's next
        sandboxes. Names and versions only: no options, URLs or paths.
      </p>
      {owner && (
        <div>
          <button type="submit" className="rounded border px-2" disabled={save.isPending || !changed}>
            {save.isPending ? 'Saving…' : 'Save packages'}
          </button>
        </div>
      )}
      <Alert message={save.error?.message} />
    </form>
  );
}
