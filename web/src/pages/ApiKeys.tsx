// API keys: made for one project with a role and an optional expiry, the
// secret shown once to copy, listed afterwards without it, revoked in a click.

import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import type { ApiKeyResponse, CreatedApiKeyResponse, ProjectResponse, Role } from '../api/schema';
import { Alert } from '../components/Alert';
import { copyText, toast } from '../components/toast';
import { Badge, Button, Card, EmptyState, Field, Input, LoadingRows, PageHeader, ProjectSelect, Select } from '../components/ui';
import { useSession } from '../session';

const ROLES: Role[] = ['viewer', 'editor', 'owner'];
const RANK: Record<Role, number> = { viewer: 0, editor: 1, owner: 2 };

/** The key's state in words, and its tone. */
function keyState(key: ApiKeyResponse, now: number): [string, 'good' | 'bad' | 'neutral'] {
  if (key.revoked_at) return [`revoked ${new Date(key.revoked_at).toLocaleDateString()}`, 'bad'];
  if (key.expires_at && Date.parse(key.expires_at) <= now) return ['expired', 'bad'];
  if (key.expires_at) return [`until ${new Date(key.expires_at).toLocaleDateString()}`, 'good'];
  return ['no expiry', 'neutral'];
}

export default function ApiKeys() {
  const { client } = useSession();
  const queries = useQueryClient();
  const keys = useQuery({ queryKey: ['api-keys'], queryFn: () => client.call<ApiKeyResponse[]>('GET', '/api/v1/api-keys') });
  const projects = useQuery({ queryKey: ['projects'], queryFn: () => client.call<ProjectResponse[]>('GET', '/api/v1/projects') });
  const [name, setName] = useState('');
  const [project, setProject] = useState('');
  const [role, setRole] = useState<Role>('editor');
  const [days, setDays] = useState('90');
  const [created, setCreated] = useState<CreatedApiKeyResponse | null>(null);
  const [now] = useState(() => Date.now());
  const chosen = projects.data?.find((p) => p.id === project) ?? projects.data?.[0];
  const create = useMutation({
    mutationFn: () => {
      const body: Record<string, unknown> = { name: name.trim(), project_id: chosen?.id, role };
      const n = Number(days);
      if (days.trim() && n > 0) body.expires_at = new Date(Date.now() + n * 86_400_000).toISOString();
      return client.call<CreatedApiKeyResponse>('POST', '/api/v1/api-keys', body);
    },
    onSuccess: (made) => {
      setCreated(made);
      setName('');
      void queries.invalidateQueries({ queryKey: ['api-keys'] });
    },
  });
  const revoke = useMutation({
    mutationFn: (id: string) => client.call('DELETE', `/api/v1/api-keys/${id}`),
    onSuccess: () => {
      toast('The key was revoked: it no longer works.');
      void queries.invalidateQueries({ queryKey: ['api-keys'] });
    },
  });
  function submit(event: FormEvent) {
    event.preventDefault();
    if (name.trim() && chosen) create.mutate();
  }
  const names = new Map((projects.data ?? []).map((p) => [p.id, p.name]));
  return (
    <section aria-labelledby="keys-heading" className="flex flex-col gap-4">
      <PageHeader title="API keys" id="keys-heading">
        A key lets a program act in one project with a role no higher than yours: the OpenAI-compatible API, MCP, the CLI,
        scripts.
      </PageHeader>
      <Card>
        <form onSubmit={submit} aria-label="New API key" className="grid gap-3 sm:grid-cols-2">
          <Field label="What it is for" htmlFor="key-name">
            <Input id="key-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. nightly report" required />
          </Field>
          <ProjectSelect id="key-project" projects={projects.data} value={chosen?.id} onChange={setProject} />
          <Field label="Role" htmlFor="key-role" hint="At most your own role in the project.">
            <Select id="key-role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
              {ROLES.filter((r) => !chosen || RANK[r] <= RANK[chosen.role]).map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </Select>
          </Field>
          <Field label="Expires after (days, empty for never)" htmlFor="key-days">
            <Input id="key-days" type="number" min={1} value={days} onChange={(e) => setDays(e.target.value)} />
          </Field>
          <div className="sm:col-span-2">
            <Button type="submit" variant="primary" disabled={create.isPending || !chosen}>
              Create the key
            </Button>
          </div>
        </form>
        <Alert message={create.error?.message} />
      </Card>
      {created && (
        <Card className="border-green-400 dark:border-green-700" role="status">
          <p className="font-medium">Your new key “{created.name}”: copy it now, it is shown only once.</p>
          <div className="mt-2 flex gap-2">
            <Input readOnly aria-label="The new key" value={created.token} onFocus={(e) => e.currentTarget.select()} className="font-mono" />
            <Button variant="primary" onClick={() => void copyText(created.token, 'the key')}>
              Copy
            </Button>
            <Button variant="ghost" onClick={() => setCreated(null)}>
              Done
            </Button>
          </div>
        </Card>
      )}
      {keys.isPending && <LoadingRows rows={3} label="Loading your keys…" />}
      <Alert message={keys.error?.message ?? revoke.error?.message} />
      {keys.data?.length === 0 && <EmptyState title="No key yet">Create one above for a program that works with Cairn.</EmptyState>}
      {keys.data && keys.data.length > 0 && (
        <ul aria-label="Your keys" className="flex flex-col divide-y divide-zinc-200 rounded-lg border border-zinc-200 bg-white dark:divide-zinc-700 dark:border-zinc-700 dark:bg-zinc-900">
          {keys.data.map((key) => {
            const [state, tone] = keyState(key, now);
            const live = tone !== 'bad';
            return (
              <li key={key.id} aria-label={key.name} className="flex flex-wrap items-center justify-between gap-2 px-4 py-3">
                <div className="flex min-w-0 flex-col">
                  <span className="font-medium">{key.name}</span>
                  <span className="text-xs text-zinc-600 dark:text-zinc-400">
                    {names.get(key.project_id) ?? 'a project you left'} · {key.role} · made {new Date(key.created_at).toLocaleDateString()}
                  </span>
                </div>
                <div className="flex items-center gap-2">
                  <Badge tone={tone}>{state}</Badge>
                  {live && (
                    <Button size="sm" variant="danger" onClick={() => revoke.mutate(key.id)} aria-label={`Revoke ${key.name}`}>
                      Revoke
                    </Button>
                  )}
                </div>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
