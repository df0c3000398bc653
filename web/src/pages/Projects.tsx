import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import type { ModelsResponse, ProjectResponse, ThreadResponse, UserResponse } from '../api/schema';
import { useSession } from '../session';
import Library from './Library';
import MemoryPanel from './MemoryPanel';
import Members from './Members';
import ProjectSettings from './ProjectSettings';
import Schedules from './Schedules';
import Webhooks from './Webhooks';
import { Alert } from '../components/Alert';
import { EditableTitle } from '../components/EditableTitle';
import { ConnectModelLink } from './Connections';
import { ProjectDangerZone } from './Deletion';
import MemberBudgets from './MemberBudgets';

/** The caller's projects, and a form to make one. */
export function Projects() {
  const { client } = useSession();
  const queries = useQueryClient();
  const projects = useQuery({ queryKey: ['projects'], queryFn: () => client.call<ProjectResponse[]>('GET', '/api/v1/projects') });
  const [name, setName] = useState('');
  const create = useMutation({
    mutationFn: (projectName: string) => client.call<ProjectResponse>('POST', '/api/v1/projects', { name: projectName }),
    onSuccess: (project) => {
      setName('');
      void queries.invalidateQueries({ queryKey: ['projects'] });
      globalThis.location.hash = `#/projects/${project.id}`;
    },
  });
  function submit(event: FormEvent) {
    event.preventDefault();
    if (name.trim()) create.mutate(name.trim());
  }
  return (
    <section aria-labelledby="projects-heading" className="flex flex-col gap-4">
      <h2 id="projects-heading" className="text-xl font-semibold">
        Projects
      </h2>
      <NoModelNotice />
      {projects.isPending && <p>Loading…</p>}
      <Alert message={projects.error?.message} />
      <ul className="flex flex-col gap-1">
        {projects.data?.map((project) => (
          <li key={project.id}>
            <a className="text-blue-600 underline" href={`#/projects/${project.id}`}>
              {project.name}
            </a>{' '}
            <span className="text-sm text-gray-500">({project.role})</span>
          </li>
        ))}
      </ul>
      <form onSubmit={submit} className="flex gap-2" aria-label="New project">
        <label className="sr-only" htmlFor="project-name">
          Project name
        </label>
        <input id="project-name" className="rounded border px-2 py-1" placeholder="New project" value={name} onChange={(e) => setName(e.target.value)} />
        <button type="submit" className="rounded bg-blue-600 px-3 py-1 text-white" disabled={create.isPending}>
          Create
        </button>
      </form>
      <Alert message={create.error?.message} />
    </section>
  );
}

/** A first run: no language model is connected, so no agent can answer. An
 * administrator gets the way to connect one, a member whom to ask. */
export function NoModelNotice() {
  const { client } = useSession();
  const me = useQuery({ queryKey: ['me'], queryFn: () => client.call<UserResponse>('GET', '/api/v1/me') });
  const models = useQuery({ queryKey: ['models'], queryFn: () => client.call<ModelsResponse>('GET', '/api/v1/models') });
  if (!models.data || models.data.models.length > 0 || me.isPending) return null;
  return (
    <p className="rounded border border-amber-400 bg-amber-50 p-2 text-sm text-amber-950 dark:bg-amber-950 dark:text-amber-100">
      {me.data?.role === 'admin' ? (
        <>
          No language model is connected yet. <ConnectModelLink />
        </>
      ) : (
        'No language model is connected yet: ask an administrator to connect one.'
      )}
    </p>
  );
}

/** A project's threads, and a form to start one. */
export function ProjectPage({ id }: { id: string }) {
  const { client } = useSession();
  const queries = useQueryClient();
  const project = useQuery({ queryKey: ['project', id], queryFn: () => client.call<ProjectResponse>('GET', `/api/v1/projects/${id}`) });
  const threads = useQuery({ queryKey: ['threads', id], queryFn: () => client.call<ThreadResponse[]>('GET', `/api/v1/projects/${id}/threads`) });
  const [title, setTitle] = useState('');
  const [search, setSearch] = useState('');
  const create = useMutation({
    mutationFn: (threadTitle: string) => client.call<ThreadResponse>('POST', `/api/v1/projects/${id}/threads`, { title: threadTitle }),
    onSuccess: (thread) => {
      globalThis.location.hash = `#/threads/${thread.id}`;
    },
  });
  async function rename(name: string) {
    const renamed = await client.call<ProjectResponse>('PATCH', `/api/v1/projects/${id}`, { name });
    queries.setQueryData(['project', id], renamed);
    void queries.invalidateQueries({ queryKey: ['projects'] });
  }
  function submit(event: FormEvent) {
    event.preventDefault();
    create.mutate(title.trim());
  }
  return (
    <section aria-labelledby="project-heading" className="flex flex-col gap-4">
      <a href="#/" className="text-sm text-blue-600 underline">
        ← Projects
      </a>
      <EditableTitle
        id="project-heading"
        title={project.data?.name}
        label="Project name"
        canEdit={project.data?.role === 'owner'}
        onSave={rename}
      />
      <Alert message={threads.error?.message} />
      <label className="flex flex-col gap-1 text-sm">
        Search threads
        <input className="rounded border px-2 py-1" type="search" value={search} onChange={(e) => setSearch(e.target.value)} />
      </label>
      <ul className="flex flex-col gap-1" aria-label="Threads">
        {threads.data
          ?.filter((thread) => thread.title.toLowerCase().includes(search.trim().toLowerCase()))
          .map((thread) => (
          <li key={thread.id}>
            <a className="text-blue-600 underline" href={`#/threads/${thread.id}`}>
              {thread.title}
            </a>
          </li>
        ))}
      </ul>
      <form onSubmit={submit} className="flex gap-2" aria-label="New thread">
        <label className="sr-only" htmlFor="thread-title">
          Thread title
        </label>
        <input id="thread-title" className="rounded border px-2 py-1" placeholder="New thread" value={title} onChange={(e) => setTitle(e.target.value)} />
        <button type="submit" className="rounded bg-blue-600 px-3 py-1 text-white" disabled={create.isPending}>
          Start
        </button>
      </form>
      <Alert message={create.error?.message} />
      <Library projectId={id} />
      <MemoryPanel projectId={id} canWrite={project.data !== undefined && project.data.role !== 'viewer'} />
      <Members projectId={id} canManage={project.data?.role === 'owner'} />
      {project.data && <ProjectSettings project={project.data} />}
      {project.data?.role === 'owner' && <MemberBudgets projectId={id} />}
      {project.data?.role === 'owner' && <Schedules projectId={id} />}
      {project.data?.role === 'owner' && <Webhooks projectId={id} />}
      {project.data && <ProjectDangerZone project={project.data} />}
    </section>
  );
}
