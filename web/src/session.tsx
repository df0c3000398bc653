// The signed-in session for the whole app: one API client, and whether a
// session exists (it ends by itself when it can no longer be refreshed).

import { createContext, useContext, useEffect, useState, type ReactNode } from 'react';
import { Client } from './api/client';

interface Session {
  client: Client;
  signedIn: boolean;
}

const SessionContext = createContext<Session | null>(null);

export function SessionProvider({ client, children }: { client: Client; children: ReactNode }) {
  const [signedIn, setSignedIn] = useState(client.hasSession);
  useEffect(() => client.onSessionChange(setSignedIn), [client]);
  return <SessionContext.Provider value={{ client, signedIn }}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside SessionProvider');
  return session;
}

/** A project's views, each its own page. */
export type ProjectTab = 'threads' | 'library' | 'members' | 'memory' | 'settings';
const TABS: readonly ProjectTab[] = ['threads', 'library', 'members', 'memory', 'settings'];

/** The page the URL's hash names: `#/`, `#/projects/ID[/library|members|memory|settings]`,
 * `#/threads/ID`, `#/keys`, `#/usage`, `#/account`, `#/admin`, `#/shared/TOKEN`. */
export type Route =
  | { page: 'projects' }
  | { page: 'account' }
  | { page: 'admin' }
  | { page: 'keys' }
  | { page: 'usage' }
  | { page: 'project'; id: string; tab: ProjectTab }
  | { page: 'thread'; id: string }
  | { page: 'shared'; token: string };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  if (parts[0] === 'projects' && parts[1]) {
    const tab = TABS.find((t) => t === parts[2]) ?? 'threads';
    return { page: 'project', id: parts[1], tab };
  }
  if (parts[0] === 'threads' && parts[1]) return { page: 'thread', id: parts[1] };
  if (parts[0] === 'shared' && parts[1]) return { page: 'shared', token: parts[1] };
  if (parts[0] === 'account') return { page: 'account' };
  if (parts[0] === 'admin') return { page: 'admin' };
  if (parts[0] === 'keys') return { page: 'keys' };
  if (parts[0] === 'usage') return { page: 'usage' };
  return { page: 'projects' };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(globalThis.location?.hash ?? ''));
  useEffect(() => {
    const update = () => setRoute(parseRoute(globalThis.location.hash));
    globalThis.addEventListener('hashchange', update);
    return () => globalThis.removeEventListener('hashchange', update);
  }, []);
  return route;
}
