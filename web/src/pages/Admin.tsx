import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import type { AuditEntryResponse, GlobalRole, SandboxHostResponse, UserResponse } from '../api/schema';
import { Badge } from '../components/ui';
import { useSession } from '../session';
import { Alert } from '../components/Alert';
import Connections from './Connections';

/** Administration: the model connections, every account (disable, make admin) and the audit log. */
export default function Admin() {
  const { client } = useSession();
  const queries = useQueryClient();
  const users = useQuery({ queryKey: ['admin', 'users'], queryFn: () => client.call<UserResponse[]>('GET', '/api/v1/admin/users?limit=200') });
  const [action, setAction] = useState('');
  const [outcome, setOutcome] = useState('');
  const filter = new URLSearchParams();
  if (action.trim()) filter.set('action', action.trim());
  if (outcome) filter.set('outcome', outcome);
  const audit = useQuery({
    queryKey: ['admin', 'audit', filter.toString()],
    queryFn: () => client.call<AuditEntryResponse[]>('GET', `/api/v1/admin/audit?limit=100&${filter.toString()}`),
  });
  const exported = useMutation({
    mutationFn: (format: 'csv' | 'json') =>
      client.saveAs(`/api/v1/admin/audit/export?format=${format}&${filter.toString()}`, `cairn-audit.${format}`),
  });
  const update = useMutation({
    mutationFn: ({ id, change }: { id: string; change: { disabled?: boolean; role?: GlobalRole } }) =>
      client.call('PATCH', `/api/v1/admin/users/${id}`, change),
    onSuccess: () => void queries.invalidateQueries({ queryKey: ['admin'] }),
  });
  const budget = useMutation({
    mutationFn: ({ id, usd }: { id: string; usd: number | null }) =>
      client.call('PUT', `/api/v1/admin/users/${id}/budget`, { monthly_usd: usd }),
  });
  function askBudget(user: UserResponse) {
    const answer = globalThis.prompt(`Monthly budget of ${user.display_name} across all projects (US $; empty for none)`);
    if (answer === null) return;
    budget.mutate({ id: user.id, usd: answer.trim() === '' ? null : Number(answer) });
  }
  const remove = useMutation({
    mutationFn: (id: string) => client.call('DELETE', `/api/v1/admin/users/${id}`, {}),
    onSuccess: () => void queries.invalidateQueries({ queryKey: ['admin'] }),
  });
  const error = users.error ?? audit.error ?? update.error ?? remove.error ?? exported.error ?? budget.error;
  return (
    <section aria-labelledby="admin-heading" className="flex flex-col gap-4">
      <a href="#/" className="text-sm text-blue-600 underline">
        ← Projects
      </a>
      <h2 id="admin-heading" className="text-xl font-semibold">
        Administration
      </h2>
      <Alert message={error?.message} />
      <Connections />
      <h3 className="text-lg font-semibold">Accounts</h3>
      <table className="text-left text-sm" aria-label="Accounts">
        <thead>
          <tr>
            <th className="pr-3">Name</th>
            <th className="pr-3">E-mail</th>
            <th className="pr-3">Role</th>
            <th className="pr-3">State</th>
            <th className="pr-3">Budget</th>
            <th className="pr-3">Delete</th>
          </tr>
        </thead>
        <tbody>
          {users.data?.map((user) => (
            <tr key={user.id}>
              <td className="pr-3">{user.display_name}</td>
              <td className="pr-3">{user.email}</td>
              <td className="pr-3">
                <button
                  type="button"
                  className="underline"
                  onClick={() => update.mutate({ id: user.id, change: { role: user.role === 'admin' ? 'member' : 'admin' } })}
                >
                  {user.role} (change)
                </button>
              </td>
              <td className="pr-3">
                <button type="button" className="underline" onClick={() => update.mutate({ id: user.id, change: { disabled: !user.disabled } })}>
                  {user.disabled ? 'disabled (enable)' : 'active (disable)'}
                </button>
              </td>
              <td className="pr-3">
                <button type="button" className="underline" aria-label={`Set monthly limit of ${user.display_name}`} onClick={() => askBudget(user)}>
                  set monthly limit
                </button>
              </td>
              <td className="pr-3">
                {user.display_name !== 'Deleted user' && (
                  <button
                    type="button"
                    className="text-red-700 underline"
                    aria-label={`Delete the account of ${user.display_name}`}
                    onClick={() => {
                      if (globalThis.confirm(`Delete the account of ${user.display_name}? It cannot be undone.`)) remove.mutate(user.id);
                    }}
                  >
                    delete
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3 className="text-lg font-semibold">Audit log</h3>
      <div className="flex flex-wrap items-end gap-2 text-sm" role="group" aria-label="Filter the audit log">
        <label className="flex flex-col">
          Action (or a family: run.)
          <input className="rounded border px-1" value={action} onChange={(e) => setAction(e.target.value)} />
        </label>
        <label className="flex flex-col">
          Outcome
          <select className="rounded border px-1" value={outcome} onChange={(e) => setOutcome(e.target.value)}>
            <option value="">any</option>
            <option value="succeeded">succeeded</option>
            <option value="refused">refused</option>
            <option value="failed">failed</option>
          </select>
        </label>
        <button type="button" className="rounded border px-2" onClick={() => exported.mutate('csv')}>
          Export CSV
        </button>
        <button type="button" className="rounded border px-2" onClick={() => exported.mutate('json')}>
          Export JSON
        </button>
      </div>
      <ol className="flex flex-col gap-1 text-sm" aria-label="Audit log">
        {audit.data?.map((entry) => (
          <li key={entry.id}>
            <span className="text-gray-500">{new Date(entry.created_at).toLocaleString()}</span> {entry.action}
            {entry.target ? ` on ${entry.target}` : ''}
            {entry.outcome !== 'succeeded' ? ` (${entry.outcome})` : ''}
            {entry.client_addr ? ` from ${entry.client_addr}` : ''}
          </li>
        ))}
      </ol>
      <Sandboxes />
    </section>
  );
}

/** The sandbox hosts and the sandboxes on each, with their state. */
function Sandboxes() {
  const { client } = useSession();
  const hosts = useQuery({
    queryKey: ['admin', 'sandboxes'],
    queryFn: () => client.call<SandboxHostResponse[]>('GET', '/api/v1/admin/sandboxes'),
    refetchInterval: 10_000,
  });
  return (
    <section aria-labelledby="sandboxes-heading" className="flex flex-col gap-2">
      <h3 id="sandboxes-heading" className="text-lg font-semibold">
        Sandboxes
      </h3>
      <Alert message={hosts.error?.message} />
      {hosts.data?.length === 0 && <p className="text-sm text-zinc-600 dark:text-zinc-400">This server runs no sandboxes.</p>}
      <ul aria-label="Sandbox hosts" className="flex flex-col gap-2">
        {hosts.data?.map((host) => (
          <li key={host.host} aria-label={`Host ${host.host}`} className="rounded-lg border border-zinc-200 p-3 text-sm dark:border-zinc-700">
            <p className="flex flex-wrap items-center gap-2">
              <span className="font-mono">{host.host === 'local' ? 'this process' : host.host}</span>
              <Badge tone={host.live ? 'good' : 'bad'}>{host.live ? 'live' : 'no heartbeat'}</Badge>
              {host.draining && <Badge tone="wait">draining</Badge>}
              <span className="text-zinc-600 dark:text-zinc-400">
                {host.sandboxes.filter((s) => s.running).length} running
                {host.capacity != null ? ` of ${String(host.capacity)}` : ''}, {host.sandboxes.filter((s) => !s.running).length} paused
              </span>
            </p>
            {host.sandboxes.length > 0 && (
              <table className="mt-2 w-full text-left text-xs" aria-label={`Sandboxes on ${host.host}`}>
                <thead>
                  <tr>
                    <th className="font-medium">Sandbox</th>
                    <th className="font-medium">Thread</th>
                    <th className="font-medium">State</th>
                    <th className="font-medium">Last active</th>
                  </tr>
                </thead>
                <tbody>
                  {host.sandboxes.map((sandbox) => (
                    <tr key={sandbox.id}>
                      <td className="font-mono">{sandbox.id.slice(0, 8)}</td>
                      <td>{sandbox.thread ? <a className="underline" href={`#/threads/${sandbox.thread}`}>open</a> : '—'}</td>
                      <td>{sandbox.busy ? 'executing' : sandbox.running ? 'running' : 'paused'}</td>
                      <td>{new Date(sandbox.active_at).toLocaleString()}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}
