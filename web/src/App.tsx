import * as Dialog from '@radix-ui/react-dialog';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { lazy, Suspense, useCallback, useEffect, useState, type ReactNode } from 'react';
import { Client } from './api/client';
import { ShortcutHelp, typingInField } from './components/Shortcuts';
import { Toaster } from './components/toast';
import { Button, LoadingRows } from './components/ui';
import { SidebarContent } from './layout/Sidebar';
import { Account, ResetPassword } from './pages/Password';
import { ProjectView, Projects } from './pages/Projects';
import SignIn from './pages/SignIn';
import { usePrefs } from './prefs';
import ServerStatus from './ServerStatus';
import { SessionProvider, useRoute, useSession, type Route } from './session';
import { applyTheme } from './theme';

// The thread page brings Markdown and code highlighting: loaded when first
// opened, like the pages few open first (administration, keys, usage).
const ThreadPage = lazy(() => import('./pages/ThreadPage'));
const Admin = lazy(() => import('./pages/Admin'));
const ApiKeys = lazy(() => import('./pages/ApiKeys'));
const Usage = lazy(() => import('./pages/Usage'));
const SharedRun = lazy(() => import('./pages/SharedRun'));

/** The app: the session and the page the URL names. */
export default function App({ client }: { client?: Client }) {
  const [api] = useState(() => client ?? new Client());
  const [queries] = useState(() => new QueryClient({ defaultOptions: { queries: { retry: 1 } } }));
  return (
    <SessionProvider client={api}>
      <QueryClientProvider client={queries}>
        <Shell />
        <Toaster />
      </QueryClientProvider>
    </SessionProvider>
  );
}

const pageLoading = <LoadingRows rows={4} label="Loading the page…" />;

function Page({ route }: { route: Route }): ReactNode {
  switch (route.page) {
    case 'projects':
      return <Projects />;
    case 'project':
      return <ProjectView key={route.id} id={route.id} tab={route.tab} />;
    case 'account':
      return <Account />;
    case 'admin':
      return <Admin />;
    case 'keys':
      return <ApiKeys />;
    case 'usage':
      return <Usage />;
    default:
      return null;
  }
}

function Shell() {
  const { signedIn } = useSession();
  const route = useRoute();
  const { shortcutsOpen: help, showShortcuts: setHelp, sidebarHidden, toggleSidebar } = usePrefs();
  const [drawer, setDrawer] = useState(false);
  const closeHelp = useCallback(() => setHelp(false), [setHelp]);
  const closeDrawer = useCallback(() => setDrawer(false), []);
  useEffect(() => applyTheme(usePrefs.getState().theme), []);
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (event.key === '?' && !typingInField(event)) setHelp(true);
    };
    globalThis.addEventListener('keydown', onKey);
    return () => globalThis.removeEventListener('keydown', onKey);
  }, [setHelp]);
  // The e-mailed recovery link: /reset-password#token=…
  if (globalThis.location?.pathname === '/reset-password') {
    const token = new URLSearchParams(globalThis.location.hash.replace(/^#/, '')).get('token') ?? '';
    return <ResetPassword token={token} />;
  }
  // A shared run opens without signing in, and shows that run only.
  if (route.page === 'shared') {
    return (
      <Suspense fallback={<main className="p-4">{pageLoading}</main>}>
        <SharedRun token={route.token} />
      </Suspense>
    );
  }
  if (!signedIn) {
    return (
      <main>
        <SignIn />
        <details className="mx-auto mt-8 max-w-xl px-4">
          <summary>Server status</summary>
          <ServerStatus />
        </details>
      </main>
    );
  }
  const thread = route.page === 'thread';
  return (
    <div className="flex h-dvh bg-zinc-50 text-zinc-900 dark:bg-zinc-950 dark:text-zinc-100">
      {!sidebarHidden && (
        <aside className="hidden w-72 shrink-0 border-r border-zinc-200 bg-zinc-100 md:block dark:border-zinc-800 dark:bg-zinc-900">
          <SidebarContent route={route} />
        </aside>
      )}
      <div className="flex min-w-0 flex-1 flex-col">
        <header className="flex h-12 shrink-0 items-center gap-2 border-b border-zinc-200 px-3 dark:border-zinc-800">
          <Button variant="ghost" size="sm" className="md:hidden" onClick={() => setDrawer(true)} aria-label="Open the menu">
            ☰
          </Button>
          <Button variant="ghost" size="sm" className="hidden md:inline-flex" onClick={toggleSidebar} aria-label={sidebarHidden ? 'Show the sidebar' : 'Hide the sidebar'}>
            {sidebarHidden ? '☰' : '⇤'}
          </Button>
          <a href="#/" className="font-semibold md:hidden">
            Cairn
          </a>
        </header>
        <main className={thread ? 'min-h-0 flex-1' : 'min-h-0 flex-1 overflow-y-auto'}>
          {thread ? (
            <Suspense fallback={<div className="p-4">{pageLoading}</div>}>
              <ThreadPage key={route.id} id={route.id} />
            </Suspense>
          ) : (
            <div className="mx-auto flex max-w-5xl flex-col gap-4 p-4">
              <Suspense fallback={pageLoading}>
                <Page route={route} />
              </Suspense>
            </div>
          )}
        </main>
      </div>
      <Dialog.Root open={drawer} onOpenChange={setDrawer}>
        <Dialog.Portal>
          <Dialog.Overlay className="fixed inset-0 z-30 bg-black/40 md:hidden" />
          <Dialog.Content className="fixed inset-y-0 left-0 z-40 w-80 max-w-[85vw] bg-zinc-100 shadow-xl md:hidden dark:bg-zinc-900" aria-describedby={undefined}>
            <Dialog.Title className="sr-only">Menu</Dialog.Title>
            <SidebarContent route={route} onNavigate={closeDrawer} />
          </Dialog.Content>
        </Dialog.Portal>
      </Dialog.Root>
      {help && <ShortcutHelp onClose={closeHelp} />}
    </div>
  );
}
