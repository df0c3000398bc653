import { useEffect, useState } from 'react';
import { errorMessage } from './api/client';
import { getReadiness, getVersion, type Readiness, type VersionInfo } from './api.ts';

type Load<T> =
  | { state: 'loading' }
  | { state: 'done'; data: T }
  | { state: 'error'; message: string };

const LOADING = { state: 'loading' } as const;

export default function ServerStatus() {
  const [version, setVersion] = useState<Load<VersionInfo>>(LOADING);
  const [health, setHealth] = useState<Load<Readiness>>(LOADING);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    const controller = new AbortController();
    const { signal } = controller;

    getVersion(signal).then(
      (data) => setVersion({ state: 'done', data }),
      (err: unknown) => {
        if (!signal.aborted) setVersion({ state: 'error', message: errorMessage(err) });
      },
    );
    getReadiness(signal).then(
      (data) => setHealth({ state: 'done', data }),
      (err: unknown) => {
        if (!signal.aborted) setHealth({ state: 'error', message: errorMessage(err) });
      },
    );

    return () => controller.abort();
  }, [attempt]);

  function refresh() {
    setVersion(LOADING);
    setHealth(LOADING);
    setAttempt((n) => n + 1);
  }

  const busy = version.state === 'loading' || health.state === 'loading';

  return (
    <main className="page">
      <div className="card">
        <header className="card-header">
          <h1>Cairn</h1>
          <p className="tagline">Self-hostable AI agent platform</p>
        </header>

        <section aria-labelledby="server-heading">
          <h2 id="server-heading">Server</h2>
          <VersionView load={version} />
        </section>

        <section aria-labelledby="health-heading">
          <h2 id="health-heading">Health</h2>
          <HealthView load={health} />
        </section>

        <footer className="card-footer">
          <nav aria-label="API" className="links">
            <a href="/api/docs">API docs (Swagger UI)</a>
            <a href="/api/openapi.json">OpenAPI spec (JSON)</a>
          </nav>
          <button type="button" onClick={refresh} disabled={busy}>
            Refresh
          </button>
        </footer>
      </div>
    </main>
  );
}

function VersionView({ load }: { load: Load<VersionInfo> }) {
  if (load.state === 'loading') {
    return <p role="status" className="muted">Loading version…</p>;
  }
  if (load.state === 'error') {
    return (
      <p role="alert" className="error">
        Cannot load the server version: {load.message}
      </p>
    );
  }
  const { data } = load;
  return (
    <dl className="facts">
      <dt>Version</dt>
      <dd>{data.version}</dd>
      {data.role !== '' && (
        <>
          <dt>Role</dt>
          <dd>{data.role}</dd>
        </>
      )}
    </dl>
  );
}

function HealthView({ load }: { load: Load<Readiness> }) {
  if (load.state === 'loading') {
    return <p role="status" className="muted">Checking health…</p>;
  }
  if (load.state === 'error') {
    return (
      <p role="alert" className="error">
        Cannot check health: {load.message}
      </p>
    );
  }
  const { data } = load;
  const checks = Object.entries(data.checks);
  return (
    <>
      <p className={data.ready ? 'badge badge-ok' : 'badge badge-fail'}>
        {data.ready ? 'Ready' : 'Not ready'}
        {data.detail !== undefined && <span className="badge-detail"> — {data.detail}</span>}
      </p>
      {checks.length === 0 ? (
        <p className="muted">No dependency checks reported.</p>
      ) : (
        <ul className="checks">
          {checks.map(([name, check]) => (
            <li key={name} className={check.ok ? 'check check-ok' : 'check check-fail'}>
              <span className="check-name">{name}</span>
              <span className="check-state">{check.ok ? 'ok' : 'failing'}</span>
              {check.error !== undefined && <span className="check-error">{check.error}</span>}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
