import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { useState } from 'react';
import { Client } from './api/client';
import { ProjectPage, Projects } from './pages/Projects';
import SignIn from './pages/SignIn';
import ThreadPage from './pages/ThreadPage';
import ServerStatus from './ServerStatus';
import { SessionProvider, useRoute, useSession } from './session';

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
    <div className="mx-auto flex max-w-3xl flex-col gap-4 p-4">
      <header className="flex items-center justify-between">
        <a href="#/" className="text-2xl font-semibold">
          Cairn
        </a>
        <button type="button" className="rounded border px-3 py-1" onClick={() => void client.signOut()}>
          Sign out
        </button>
      </header>
      <main>
        {route.page === 'projects' && <Projects />}
        {route.page === 'project' && <ProjectPage id={route.id} />}
        {route.page === 'thread' && <ThreadPage id={route.id} />}
      </main>
    </div>
  );
}
