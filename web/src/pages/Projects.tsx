import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import type { ProjectTab } from '../session';
import type { ModelsResponse, ProjectResponse, ThreadResponse, UserResponse } from '../api/schema';
import { useSession } from '../session';
import Library from './Library';
import MemoryPanel from './MemoryPanel';
import Members from './Members';
import ProjectSettings from './ProjectSettings';
import Schedules from './Schedules';
import Webhooks from './Webhooks';
import McpServers from './McpServers';
import { Alert } from '../components/Alert';
import { Badge, Button, cx, EmptyState, Field, focusRing, Input, LoadingRows, PageHeader } from '../components/ui';
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
      <PageHeader title="Projects" id="projects-heading">
        A project holds its threads with the agent, a library of files, members and memory.
      </PageHeader>
      <NoModelNotice />
      {projects.isPending && <LoadingRows rows={3} label="Loading your projects…" />}
      <Alert message={projects.error?.message} />
      {projects.data?.length === 0 && (
        <EmptyState title="No project yet">
          Name your first project below: you can then upload files to its library, invite your team and ask the agent to
          work on them.
        </EmptyState>
      )}
      {projects.data && projects.data.length > 0 && (
        <ul className="grid gap-3 sm:grid-cols-2" aria-label="Your projects">
          {projects.data.map((project) => (
            <li key={project.id}>
              <a
                href={`#/projects/${project.id}`}
                className={cx('flex items-center justify-between rounded-lg border border-zinc-200 bg-white p-4 hover:border-indigo-400 dark:border-zinc-700 dark:bg-zinc-900', focusRing)}
              >
                <span className="font-medium">{project.name}</span>
                <Badge>{project.role}</Badge>
              </a>
            </li>
          ))}
        </ul>
      )}
      <form onSubmit={submit} className="flex max-w-md gap-2" aria-label="New project">
        <label className="sr-only" htmlFor="project-name">
          Project name
        </label>
        <Input id="project-name" placeholder="New project" value={name} onChange={(e) => setName(e.target.value)} />
        <Button type="submit" variant="primary" disabled={create.isPending}>
          Create
        </Button>
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

const TAB_NAMES: Record<ProjectTab, string> = {
  threads: 'Threads',
  library: 'Library',
  members: 'Members',
  memory: 'Memory',
  settings: 'Settings',
};

/** A project: its name, and one of its views (threads, library, members, memory, settings). */
export function ProjectView({ id, tab }: { id: string; tab: ProjectTab }) {
  const { client } = useSession();
  const queries = useQueryClient();
  const project = useQuery({ queryKey: ['project', id], queryFn: () => client.call<ProjectResponse>('GET', `/api/v1/projects/${id}`) });
  async function rename(name: string) {
    const renamed = await client.call<ProjectResponse>('PATCH', `/api/v1/projects/${id}`, { name });
    queries.setQueryData(['project', id], renamed);
    void queries.invalidateQueries({ queryKey: ['projects'] });
  }
  const role = project.data?.role;
  return (
    <section aria-labelledby="project-heading" className="flex flex-col gap-4">
      <EditableTitle id="project-heading" title={project.data?.name} label="Project name" canEdit={role === 'owner'} onSave={rename} />
      <Alert message={project.error?.message} />
      <nav aria-label="Project views" className="flex gap-1 overflow-x-auto border-b border-zinc-200 dark:border-zinc-700">
        {(Object.keys(TAB_NAMES) as ProjectTab[]).map((name) => (
          <a
            key={name}
            href={name === 'threads' ? `#/projects/${id}` : `#/projects/${id}/${name}`}
            aria-current={tab === name ? 'page' : undefined}
            className={cx(
              '-mb-px border-b-2 px-3 py-2 text-sm whitespace-nowrap',
              tab === name
                ? 'border-indigo-600 font-medium text-indigo-900 dark:border-indigo-400 dark:text-indigo-100'
                : 'border-transparent text-zinc-700 hover:text-zinc-950 dark:text-zinc-300 dark:hover:text-white',
              focusRing,
            )}
          >
            {TAB_NAMES[name]}
          </a>
        ))}
      </nav>
      {tab === 'threads' && <ProjectThreads id={id} canWrite={role !== undefined && role !== 'viewer'} />}
      {tab === 'library' && <Library projectId={id} />}
      {tab === 'members' && (
        <>
          <Members projectId={id} canManage={role === 'owner'} />
          {role === 'owner' && <MemberBudgets projectId={id} />}
        </>
      )}
      {tab === 'memory' && <MemoryPanel projectId={id} canWrite={role !== undefined && role !== 'viewer'} />}
      {tab === 'settings' && project.data && (
        <>
          <ProjectSettings project={project.data} />
          {role === 'owner' && <Schedules projectId={id} />}
          {role === 'owner' && <Webhooks projectId={id} />}
          {role === 'owner' && <McpServers projectId={id} />}
          <ProjectDangerZone project={project.data} />
        </>
      )}
    </section>
  );
}

/** A project's threads, most recently active first, and a form to start one. */
function ProjectThreads({ id, canWrite }: { id: string; canWrite: boolean }) {
  const { client } = useSession();
  const threads = useQuery({ queryKey: ['threads', id], queryFn: () => client.call<ThreadResponse[]>('GET', `/api/v1/projects/${id}/threads`) });
  const [title, setTitle] = useState('');
  const [search, setSearch] = useState('');
  const create = useMutation({
    mutationFn: (threadTitle: string) => client.call<ThreadResponse>('POST', `/api/v1/projects/${id}/threads`, { title: threadTitle }),
    onSuccess: (thread) => {
      globalThis.location.hash = `#/threads/${thread.id}`;
    },
  });
  function submit(event: FormEvent) {
    event.preventDefault();
    create.mutate(title.trim());
  }
  const shown = threads.data?.filter((thread) => thread.title.toLowerCase().includes(search.trim().toLowerCase())) ?? [];
  return (
    <div className="flex flex-col gap-4">
      {canWrite && (
        <form onSubmit={submit} className="flex max-w-xl gap-2" aria-label="New thread">
          <label className="sr-only" htmlFor="thread-title">
            Thread title
          </label>
          <Input id="thread-title" placeholder="What should the agent work on?" value={title} onChange={(e) => setTitle(e.target.value)} />
          <Button type="submit" variant="primary" disabled={create.isPending}>
            Start
          </Button>
        </form>
      )}
      <Alert message={create.error?.message ?? threads.error?.message} />
      {threads.isPending && <LoadingRows rows={4} label="Loading the threads…" />}
      {threads.data?.length === 0 && (
        <EmptyState title="No thread yet">
          {canWrite
            ? 'Start one above: give it a title, then ask the agent in plain words. Upload the files it needs to the Library first.'
            : 'When an editor starts a thread, it appears here.'}
        </EmptyState>
      )}
      {threads.data && threads.data.length > 0 && (
        <>
          <Field label="Search threads" htmlFor="thread-filter">
            <Input id="thread-filter" type="search" value={search} onChange={(e) => setSearch(e.target.value)} />
          </Field>
          <ul className="flex flex-col divide-y divide-zinc-200 rounded-lg border border-zinc-200 bg-white dark:divide-zinc-700 dark:border-zinc-700 dark:bg-zinc-900" aria-label="Threads">
            {shown.map((thread) => (
              <li key={thread.id} className="flex items-center gap-2 px-4 py-3 hover:bg-zinc-50 dark:hover:bg-zinc-800">
                <a href={`#/threads/${thread.id}`} className={cx('min-w-0 flex-1 truncate font-medium', focusRing)}>
                  {thread.title || 'Untitled thread'}
                </a>
                <span className="shrink-0 text-xs text-zinc-600 dark:text-zinc-400">started {new Date(thread.created_at).toLocaleDateString()}</span>
              </li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}
