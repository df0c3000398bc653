import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { lazy, Suspense, useCallback, useEffect, useState } from 'react';
import { Client } from './api/client';
import Admin from './pages/Admin';
import { Account, ResetPassword } from './pages/Password';
import { ProjectPage, Projects } from './pages/Projects';
import SignIn from './pages/SignIn';
import ServerStatus from './ServerStatus';
import { ShortcutHelp, typingInField } from './components/Shortcuts';
import { SessionProvider, useRoute, useSession } from './session';
import { usePrefs } from './prefs';
import { applyTheme } from './theme';

// The thread page brings Markdown and code highlighting: loaded when first opened.
const ThreadPage = lazy(() => import('./pages/ThreadPage'));

/** The app: the session and the page the URL names. */
export default function App({ client }: { client?: Client }) {
  const [api] = useState(() => client ?? new Client());
  const [queries] = useState(() => new QueryClient({ defaultOptions: { queries: { retry: 1 } } }));
  return (
    <SessionProvider client={api}>
      <QueryClientProvider client={queries}>
        <Shell />
      </QueryClientProvider>
    </SessionProvider>
  );
}

function Shell() {
  const { client, signedIn } = useSession();
  const route = useRoute();
  const { theme, cycleTheme, shortcutsOpen: help, showShortcuts: setHelp } = usePrefs();
  const closeHelp = useCallback(() => setHelp(false), [setHelp]);
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
  if (!signedIn) {
    return (
      <>
        <SignIn />
        <details className="mx-auto mt-8 max-w-xl px-4">
          <summary>Server status</summary>
          <ServerStatus />
        </details>
      </>
    );
  }
  return (
    <div className="mx-auto flex min-h-screen max-w-5xl flex-col gap-4 p-4 text-gray-900 dark:text-gray-100">
      <header className="flex items-center justify-between">
        <a href="#/" className="text-2xl font-semibold">
          Cairn
        </a>
        <nav className="flex flex-wrap items-center justify-end gap-3">
          <button type="button" className="text-sm underline" onClick={cycleTheme} aria-label={`Theme: ${theme}; change it`}>
            Theme: {theme}
          </button>
          <button type="button" className="text-sm underline" onClick={() => setHelp(true)} aria-label="Keyboard shortcuts">
            Shortcuts (?)
          </button>
          <a href="#/account" className="text-blue-600 underline">
            Account
          </a>
          <a href="#/admin" className="text-blue-600 underline">
            Admin
          </a>
          <button type="button" className="rounded border px-3 py-1" onClick={() => void client.signOut()}>
            Sign out
          </button>
        </nav>
      </header>
      <main>
        {route.page === 'projects' && <Projects />}
        {route.page === 'project' && <ProjectPage key={route.id} id={route.id} />}
        {route.page === 'thread' && (
          <Suspense fallback={<p className="text-sm text-gray-500">Loading the thread…</p>}>
            <ThreadPage key={route.id} id={route.id} />
          </Suspense>
        )}
        {route.page === 'account' && <Account />}
        {route.page === 'admin' && <Admin />}
      </main>
      {help && <ShortcutHelp onClose={closeHelp} />}
    </div>
  );
}
