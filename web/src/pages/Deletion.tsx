import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { problemMessage } from '../api/client';
import type {
  AccountDeletedResponse,
  DeletionResponse,
  MemberResponse,
  ProjectResponse,
  SoleOwnedChoice,
  UserResponse,
} from '../api/schema';
import { useSession } from '../session';
import { Alert } from '../components/Alert';
import { PasswordField } from './Password';

/** A deletion's progress, polled until its background job is done. */
export function DeletionProgress({ deletion, what }: { deletion: DeletionResponse; what: string }) {
  const { client } = useSession();
  const seen = useQuery({
    queryKey: ['deletion', deletion.id],
    queryFn: () => client.call<DeletionResponse>('GET', `/api/v1/deletions/${deletion.id}`),
    initialData: deletion,
    refetchInterval: (query) => (query.state.data?.status === 'done' ? false : 1000),
  });
  const d = seen.data;
  if (d.status === 'done') return <p role="status">{what} is deleted: nothing of it is left.</p>;
  return (
    <div role="status" className="flex flex-col gap-1 text-sm">
      <span>
        Deleting {what}… it is already gone for everyone; removing its data
        {d.steps_total > 0 ? ` (step ${d.steps_done} of ${d.steps_total})` : ''}.
      </span>
      <progress max={Math.max(d.steps_total, 1)} value={d.steps_done} aria-label={`Deleting ${what}`} />
      {d.last_error && <span className="text-amber-700">Retrying after: {d.last_error}</span>}
    </div>
  );
}

/** Asks once more before something destructive: the button, then a
 * confirmation with its consequences. */
function Confirm(props: { action: string; consequence: string; onConfirm: () => void; disabled?: boolean }) {
  const [asking, setAsking] = useState(false);
  if (!asking) {
    return (
      <button type="button" className="self-start rounded border border-red-600 px-2 text-sm text-red-700" onClick={() => setAsking(true)}>
        {props.action}
      </button>
    );
  }
  return (
    <div role="alertdialog" aria-label={props.action} className="flex flex-wrap items-center gap-2 rounded border border-red-600 p-2 text-sm">
      <span>{props.consequence}</span>
      <button type="button" className="rounded bg-red-600 px-2 text-white" disabled={props.disabled} onClick={props.onConfirm}>
        {props.action}
      </button>
      <button type="button" className="underline" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </div>
  );
}

/** Deletes a thread (project owners). */
export function DeleteThread({ threadId, projectId }: { threadId: string; projectId: string }) {
  const { client } = useSession();
  const queries = useQueryClient();
  const remove = useMutation({
    mutationFn: () => client.call<DeletionResponse>('DELETE', `/api/v1/threads/${threadId}`),
    onSuccess: () => void queries.invalidateQueries({ queryKey: ['threads', projectId] }),
  });
  if (remove.data) {
    return (
      <div className="flex flex-col gap-1">
        <DeletionProgress deletion={remove.data} what="The thread" />
        <a className="text-sm text-blue-600 underline" href={`#/projects/${projectId}`}>
          Back to the project
        </a>
      </div>
    );
  }
  return (
    <div className="flex flex-col gap-1">
      <Confirm
        action="Delete thread"
        consequence="Its messages, runs, workspace and what its runs remembered go, for everyone. Files it saved stay in the library."
        onConfirm={() => remove.mutate()}
        disabled={remove.isPending}
      />
      <Alert message={remove.error?.message} />
    </div>
  );
}

/** Leaving a project (any member) and deleting it (owners). */
export function ProjectDangerZone({ project }: { project: ProjectResponse }) {
  const { client } = useSession();
  const queries = useQueryClient();
  const me = useQuery({ queryKey: ['me'], queryFn: () => client.call<UserResponse>('GET', '/api/v1/me') });
  const [typed, setTyped] = useState('');
  const leave = useMutation({
    mutationFn: (user: string) => client.call('DELETE', `/api/v1/projects/${project.id}/members/${user}`),
    onSuccess: () => {
      void queries.invalidateQueries({ queryKey: ['projects'] });
      globalThis.location.hash = '#/';
    },
  });
  const remove = useMutation({
    mutationFn: () => client.call<DeletionResponse>('DELETE', `/api/v1/projects/${project.id}`),
    onSuccess: () => void queries.invalidateQueries({ queryKey: ['projects'] }),
  });
  const exported = useMutation({
    mutationFn: () => client.saveAs(`/api/v1/projects/${project.id}/export`, `cairn-${project.name}.zip`),
  });
  function submit(event: FormEvent) {
    event.preventDefault();
    if (typed === project.name) remove.mutate();
  }
  return (
    <section aria-labelledby="danger-heading" className="flex flex-col gap-2 rounded border border-red-300 p-3">
      <h3 id="danger-heading" className="text-lg font-semibold">
        Export, leave or delete
      </h3>
      {project.role === 'owner' && (
        <button type="button" className="self-start rounded border px-2 text-sm" disabled={exported.isPending} onClick={() => exported.mutate()}>
          {exported.isPending ? 'Exporting…' : 'Export the project (zip: threads, library with versions, memory)'}
        </button>
      )}
      {me.data && (
        <Confirm
          action="Leave project"
          consequence="You lose access to its threads and library; an owner can add you again."
          onConfirm={() => leave.mutate(me.data.id)}
          disabled={leave.isPending}
        />
      )}
      {project.role === 'owner' &&
        (remove.data ? (
          <DeletionProgress deletion={remove.data} what="The project" />
        ) : (
          <form onSubmit={submit} className="flex flex-wrap items-end gap-2 text-sm" aria-label="Delete project">
            <label className="flex flex-col gap-1">
              Type the project's name to delete it with its threads, library, memory, keys and schedules
              <input className="rounded border px-2 py-1" value={typed} onChange={(e) => setTyped(e.target.value)} />
            </label>
            <button type="submit" className="rounded bg-red-600 px-2 py-1 text-white" disabled={typed !== project.name || remove.isPending}>
              Delete project
            </button>
          </form>
        ))}
      <Alert message={(leave.error ?? remove.error ?? exported.error)?.message} />
    </section>
  );
}

/** A project the account owns, and the choice made for it. */
function OwnedProject({ project, choice, onChoose }: { project: ProjectResponse; choice: string; onChoose: (value: string) => void }) {
  const { client } = useSession();
  const members = useQuery({
    queryKey: ['members', project.id],
    queryFn: () => client.call<MemberResponse[]>('GET', `/api/v1/projects/${project.id}/members`),
  });
  const me = useQuery({ queryKey: ['me'], queryFn: () => client.call<UserResponse>('GET', '/api/v1/me') });
  const others = (members.data ?? []).filter((m) => m.user_id !== me.data?.id);
  if (others.some((m) => m.role === 'owner')) {
    return <li className="text-sm">{project.name}: another owner keeps it.</li>;
  }
  return (
    <li className="text-sm">
      <label className="flex flex-wrap items-center gap-2">
        {project.name}
        <select className="rounded border px-1" value={choice} onChange={(e) => onChoose(e.target.value)}>
          <option value="delete">delete it</option>
          {others.map((m) => (
            <option key={m.user_id} value={m.user_id}>
              hand it over to {m.display_name}
            </option>
          ))}
        </select>
      </label>
    </li>
  );
}

/** Deleting one's own account, deciding what becomes of projects owned alone. */
export function DeleteAccount() {
  const { client } = useSession();
  const projects = useQuery({ queryKey: ['projects'], queryFn: () => client.call<ProjectResponse[]>('GET', '/api/v1/projects') });
  const owned = (projects.data ?? []).filter((p) => p.role === 'owner');
  const [choices, setChoices] = useState<Record<string, string>>({});
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<AccountDeletedResponse | null>(null);
  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    const decided: Record<string, SoleOwnedChoice> = {};
    for (const project of owned) {
      const choice = choices[project.id] ?? 'delete';
      decided[project.id] = choice === 'delete' ? 'delete' : { hand_over_to: choice };
    }
    try {
      setDone(await client.call<AccountDeletedResponse>('DELETE', '/api/v1/me', { password, projects: decided }));
    } catch (err) {
      setError(problemMessage(err));
    }
  }
  const exported = useMutation({ mutationFn: () => client.saveAs('/api/v1/me/export', 'cairn-my-data.json') });
  if (done) {
    return (
      <p role="status">
        Your account is deleted.{' '}
        <button type="button" className="text-blue-600 underline" onClick={() => void client.signOut()}>
          Close
        </button>
      </p>
    );
  }
  return (
    <form onSubmit={(e) => void submit(e)} className="flex max-w-md flex-col gap-2 rounded border border-red-300 p-3" aria-label="Delete account">
      <h3 className="text-lg font-semibold">Your data</h3>
      <button type="button" className="self-start rounded border px-2 text-sm" onClick={() => exported.mutate()}>
        Download my data (JSON)
      </button>
      <Alert message={exported.error?.message} />
      <h3 className="text-lg font-semibold">Delete your account</h3>
      <p className="text-sm">
        Your e-mail, name and password are erased and your sessions and keys end. What you wrote in projects stays, by
        “Deleted user”.
      </p>
      {owned.length > 0 && (
        <ul className="flex flex-col gap-1" aria-label="Projects you own">
          {owned.map((project) => (
            <OwnedProject
              key={project.id}
              project={project}
              choice={choices[project.id] ?? 'delete'}
              onChoose={(value) => setChoices({ ...choices, [project.id]: value })}
            />
          ))}
        </ul>
      )}
      <PasswordField label="Your password" autoComplete="current-password" value={password} onChange={setPassword} />
      <Alert message={error} />
      <button type="submit" className="self-start rounded bg-red-600 px-3 py-1 text-white">
        Delete my account
      </button>
    </form>
  );
}
