// The sidebar: search across threads (on the server), the caller's projects
// with their threads (most recently active first), a new thread in one
// click, and the pages beyond projects. The same content serves the
// desktop's collapsible column and the phone's drawer.

import { useQuery } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import type { ProjectResponse, ThreadMatchResponse, ThreadResponse, UserResponse } from '../api/schema';
import { cx, focusRing, Input, Skeleton } from '../components/ui';
import { toast } from '../components/toast';
import { usePrefs } from '../prefs';
import { useSession, type Route } from '../session';

/** Threads listed under a project before "All threads". */
const THREADS_SHOWN = 8;

/** The project the page is about, if any (a thread's is looked up). */
export function useCurrentProject(route: Route): string | undefined {
  const { client } = useSession();
  const threadId = route.page === 'thread' ? route.id : undefined;
  const thread = useQuery({
    queryKey: ['thread', threadId],
    queryFn: () => client.call<ThreadResponse>('GET', `/api/v1/threads/${threadId ?? ''}`),
    enabled: threadId !== undefined,
  });
  if (route.page === 'project') return route.id;
  return thread.data?.project_id;
}

function NavLink({ href, current, children, className }: { href: string; current: boolean; children: React.ReactNode; className?: string }) {
  return (
    <a
      href={href}
      aria-current={current ? 'page' : undefined}
      className={cx(
        'block truncate rounded-md px-2 py-1 text-sm',
        current ? 'bg-indigo-100 font-medium text-indigo-950 dark:bg-indigo-950 dark:text-indigo-100' : 'text-zinc-800 hover:bg-zinc-200 dark:text-zinc-200 dark:hover:bg-zinc-800',
        focusRing,
        className,
      )}
    >
      {children}
    </a>
  );
}

function ProjectThreads({ project, route, onNavigate }: { project: ProjectResponse; route: Route; onNavigate: () => void }) {
  const { client } = useSession();
  const threads = useQuery({
    queryKey: ['threads', project.id],
    queryFn: () => client.call<ThreadResponse[]>('GET', `/api/v1/projects/${project.id}/threads`),
  });
  const [busy, setBusy] = useState(false);
  async function newThread() {
    setBusy(true);
    try {
      const thread = await client.call<ThreadResponse>('POST', `/api/v1/projects/${project.id}/threads`, { title: '' });
      onNavigate();
      globalThis.location.hash = `#/threads/${thread.id}`;
    } catch (err) {
      toast(err instanceof Error ? err.message : 'The thread could not be made', 'error');
    } finally {
      setBusy(false);
    }
  }
  const list = threads.data ?? [];
  return (
    <ul className="ml-2 flex flex-col gap-0.5 border-l border-zinc-200 pl-2 dark:border-zinc-700" aria-label={`Threads of ${project.name}`}>
      {project.role !== 'viewer' && (
        <li>
          <button
            type="button"
            disabled={busy}
            onClick={() => void newThread()}
            className={cx('w-full rounded-md px-2 py-1 text-left text-sm text-indigo-800 hover:bg-zinc-200 dark:text-indigo-300 dark:hover:bg-zinc-800', focusRing)}
          >
            + New thread
          </button>
        </li>
      )}
      {threads.isPending && (
        <li>
          <Skeleton className="h-6 w-full" />
        </li>
      )}
      {list.slice(0, THREADS_SHOWN).map((thread) => (
        <li key={thread.id} onClick={onNavigate}>
          <NavLink href={`#/threads/${thread.id}`} current={route.page === 'thread' && route.id === thread.id}>
            {thread.title || 'Untitled thread'}
          </NavLink>
        </li>
      ))}
      {list.length > THREADS_SHOWN && (
        <li onClick={onNavigate}>
          <NavLink href={`#/projects/${project.id}`} current={false} className="text-zinc-600 dark:text-zinc-400">
            All {list.length} threads…
          </NavLink>
        </li>
      )}
    </ul>
  );
}

/** Threads found by the server, as the person types (after a pause). */
function Search({ onNavigate }: { onNavigate: () => void }) {
  const { client } = useSession();
  const [text, setText] = useState('');
  const [query, setQuery] = useState('');
  useEffect(() => {
    const timer = setTimeout(() => setQuery(text.trim()), 250);
    return () => clearTimeout(timer);
  }, [text]);
  const found = useQuery({
    queryKey: ['search', query],
    queryFn: () => client.call<ThreadMatchResponse[]>('GET', `/api/v1/search?q=${encodeURIComponent(query)}`),
    enabled: query.length > 0,
  });
  return (
    <div className="flex flex-col gap-1">
      <label htmlFor="sidebar-search" className="sr-only">
        Search threads and messages
      </label>
      <Input id="sidebar-search" type="search" placeholder="Search threads…" value={text} onChange={(e) => setText(e.target.value)} />
      {query && (
        <ul aria-label="Search results" className="flex flex-col gap-0.5 rounded-md border border-zinc-200 bg-white p-1 dark:border-zinc-700 dark:bg-zinc-900">
          {found.isPending && <li className="px-2 py-1 text-sm text-zinc-600 dark:text-zinc-400">Searching…</li>}
          {found.data?.length === 0 && <li className="px-2 py-1 text-sm text-zinc-600 dark:text-zinc-400">No thread holds “{query}”.</li>}
          {found.data?.map((match) => (
            <li key={match.thread.id} onClick={onNavigate}>
              <a
                href={`#/threads/${match.thread.id}`}
                className={cx('block rounded px-2 py-1 text-sm hover:bg-zinc-100 dark:hover:bg-zinc-800', focusRing)}
              >
                <span className="block truncate font-medium text-zinc-900 dark:text-zinc-100">{match.thread.title || 'Untitled thread'}</span>
                <span className="block truncate text-xs text-zinc-600 dark:text-zinc-400">
                  {match.project_name}
                  {match.snippet ? ` · ${match.snippet}` : ''}
                </span>
              </a>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function SidebarContent({ route, onNavigate = () => undefined }: { route: Route; onNavigate?: () => void }) {
  const { client } = useSession();
  const projects = useQuery({ queryKey: ['projects'], queryFn: () => client.call<ProjectResponse[]>('GET', '/api/v1/projects') });
  const me = useQuery({ queryKey: ['me'], queryFn: () => client.call<UserResponse>('GET', '/api/v1/me') });
  const current = useCurrentProject(route);
  const [open, setOpen] = useState<Set<string>>(new Set());
  const { theme, cycleTheme, showShortcuts } = usePrefs();
  const isOpen = (id: string) => id === current || open.has(id);
  function toggle(id: string) {
    setOpen((was) => {
      const now = new Set(was);
      if (now.has(id)) now.delete(id);
      else now.add(id);
      return now;
    });
  }
  return (
    <nav aria-label="Main" className="flex h-full flex-col gap-4 overflow-y-auto p-3">
      <a href="#/" onClick={onNavigate} className={cx('rounded-md px-2 text-lg font-semibold text-zinc-900 dark:text-zinc-50', focusRing)}>
        Cairn
      </a>
      <Search onNavigate={onNavigate} />
      <div className="flex flex-col gap-1">
        <div className="flex items-center justify-between px-2">
          <p className="text-xs font-semibold tracking-wide text-zinc-600 uppercase dark:text-zinc-400">Projects</p>
          <a href="#/" onClick={onNavigate} className={cx('rounded text-xs text-indigo-800 dark:text-indigo-300', focusRing)}>
            + New
          </a>
        </div>
        {projects.isPending && <Skeleton className="h-7 w-full" />}
        {projects.data?.length === 0 && <p className="px-2 text-sm text-zinc-600 dark:text-zinc-400">No project yet: make one to begin.</p>}
        <ul className="flex flex-col gap-0.5" aria-label="Projects">
          {projects.data?.map((project) => (
            <li key={project.id}>
              <div className="flex items-center gap-0.5">
                <button
                  type="button"
                  aria-expanded={isOpen(project.id)}
                  aria-label={`${isOpen(project.id) ? 'Hide' : 'Show'} the threads of ${project.name}`}
                  onClick={() => toggle(project.id)}
                  className={cx('h-7 w-6 shrink-0 rounded text-xs text-zinc-600 hover:bg-zinc-200 dark:text-zinc-300 dark:hover:bg-zinc-800', focusRing)}
                >
                  {isOpen(project.id) ? '▾' : '▸'}
                </button>
                <div className="min-w-0 flex-1" onClick={onNavigate}>
                  <NavLink href={`#/projects/${project.id}`} current={route.page === 'project' && route.id === project.id}>
                    {project.name}
                  </NavLink>
                </div>
              </div>
              {isOpen(project.id) && <ProjectThreads project={project} route={route} onNavigate={onNavigate} />}
            </li>
          ))}
        </ul>
      </div>
      <div className="mt-auto flex flex-col gap-0.5 border-t border-zinc-200 pt-3 dark:border-zinc-700" onClick={onNavigate}>
        <NavLink href="#/keys" current={route.page === 'keys'}>
          API keys
        </NavLink>
        <NavLink href="#/usage" current={route.page === 'usage'}>
          Usage and cost
        </NavLink>
        {me.data?.role === 'admin' && (
          <NavLink href="#/admin" current={route.page === 'admin'}>
            Administration
          </NavLink>
        )}
        <NavLink href="#/account" current={route.page === 'account'}>
          Account{me.data ? ` (${me.data.display_name})` : ''}
        </NavLink>
      </div>
      <div className="flex flex-wrap gap-1">
        <button type="button" onClick={cycleTheme} aria-label={`Theme: ${theme}; change it`} className={cx('rounded-md px-2 py-1 text-xs text-zinc-700 hover:bg-zinc-200 dark:text-zinc-300 dark:hover:bg-zinc-800', focusRing)}>
          Theme: {theme}
        </button>
        <button type="button" onClick={() => showShortcuts(true)} aria-label="Keyboard shortcuts" className={cx('rounded-md px-2 py-1 text-xs text-zinc-700 hover:bg-zinc-200 dark:text-zinc-300 dark:hover:bg-zinc-800', focusRing)}>
          Shortcuts (?)
        </button>
        <button type="button" onClick={() => void client.signOut()} className={cx('rounded-md px-2 py-1 text-xs text-zinc-700 hover:bg-zinc-200 dark:text-zinc-300 dark:hover:bg-zinc-800', focusRing)}>
          Sign out
        </button>
      </div>
    </nav>
  );
}
