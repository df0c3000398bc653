import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import type { AddMcpServerRequest, McpServerResponse } from '../api/schema';
import { useSession } from '../session';
import { Alert } from '../components/Alert';

type Transport = 'http' | 'stdio';

/** A project's MCP servers (owners): their tools become Python functions of
 * the agent. A streamable-HTTP endpoint, or a command the thread's sandbox
 * runs over stdio; with secrets (headers, or environment variables) that
 * are sealed and never shown again. */
export default function McpServers({ projectId }: { projectId: string }) {
  const { client } = useSession();
  const queries = useQueryClient();
  const base = `/api/v1/projects/${projectId}/mcp-servers`;
  const key = ['mcp-servers', projectId];
  const servers = useQuery({ queryKey: key, queryFn: () => client.call<McpServerResponse[]>('GET', base) });
  const [form, setForm] = useState({ name: '', transport: 'http' as Transport, url: '', command: '', secrets: '' });
  const [secretError, setSecretError] = useState<string>();
  const refresh = () => void queries.invalidateQueries({ queryKey: key });
  const add = useMutation({
    mutationFn: (body: AddMcpServerRequest) => client.call<McpServerResponse>('POST', base, body),
    onSuccess: () => {
      setForm((f) => ({ ...f, name: '', url: '', command: '', secrets: '' }));
      refresh();
    },
  });
  const remove = useMutation({ mutationFn: (id: string) => client.call('DELETE', `${base}/${id}`), onSuccess: refresh });
  const error = secretError ?? (servers.error ?? add.error ?? remove.error)?.message;
  const set = (field: keyof typeof form) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [field]: e.target.value }));

  function submit(event: FormEvent) {
    event.preventDefault();
    const secrets = parseSecrets(form.secrets);
    if (typeof secrets === 'string') {
      setSecretError(secrets);
      return;
    }
    setSecretError(undefined);
    const body: AddMcpServerRequest =
      form.transport === 'http'
        ? { name: form.name.trim(), url: form.url.trim(), secrets }
        : { name: form.name.trim(), command: form.command.split('\n').map((part) => part.trim()).filter(Boolean), secrets };
    add.mutate(body);
  }

  const secretsLabel =
    form.transport === 'http' ? 'Headers sent with every request (Name: value, one per line)' : 'Environment variables (NAME=value, one per line)';
  return (
    <section aria-labelledby="mcp-heading" className="flex flex-col gap-2">
      <h3 id="mcp-heading" className="text-lg font-semibold">
        MCP servers
      </h3>
      {servers.data?.length === 0 && (
        <p className="text-sm text-gray-500">No MCP servers: add one and its tools become functions the agent can call.</p>
      )}
      <ul className="flex flex-col gap-2" aria-label="MCP servers">
        {servers.data?.map((server) => (
          <li key={server.id} className="flex flex-col gap-1 rounded border p-2 text-sm">
            <div className="flex flex-wrap items-center gap-2">
              <span className="font-semibold">{server.name}</span>
              <span className="text-gray-500">{server.transport === 'stdio' ? 'stdio, in the sandbox' : 'HTTP'}</span>
            </div>
            <code className="break-all">{server.transport === 'stdio' ? (server.command ?? []).join(' ') : server.url}</code>
            {server.secrets.length > 0 && <p>Secrets: {server.secrets.join(', ')}</p>}
            {server.tools.length > 0 && <p>Tools: {server.tools.map((tool) => tool.name).join(', ')}</p>}
            <button type="button" className="self-start text-red-600 underline" onClick={() => remove.mutate(server.id)}>
              Remove {server.name}
            </button>
          </li>
        ))}
      </ul>
      <form onSubmit={submit} className="flex flex-col gap-2 text-sm" aria-label="Add an MCP server">
        <label className="flex flex-col gap-1">
          Name (its tools are mcp_name_tool)
          <input className="rounded border px-2 py-1" value={form.name} onChange={set('name')} />
        </label>
        <label className="flex flex-col gap-1">
          Reached by
          <select className="rounded border px-1" value={form.transport} onChange={set('transport')}>
            <option value="http">HTTP (a streamable-HTTP endpoint)</option>
            <option value="stdio">stdio (a command the sandbox runs)</option>
          </select>
        </label>
        {form.transport === 'http' ? (
          <label className="flex flex-col gap-1">
            URL
            <input className="rounded border px-2 py-1" value={form.url} onChange={set('url')} placeholder="https://mcp.example.com/mcp" />
          </label>
        ) : (
          <label className="flex flex-col gap-1">
            Command (the program, then each argument, one per line)
            <textarea className="rounded border px-2 py-1 font-mono" rows={3} value={form.command} onChange={set('command')} placeholder={'python\n-m\nmy_server'} />
          </label>
        )}
        <label className="flex flex-col gap-1">
          {secretsLabel}
          <textarea className="rounded border px-2 py-1 font-mono" rows={2} value={form.secrets} onChange={set('secrets')} autoComplete="off" />
        </label>
        <p className="text-xs text-gray-500">
          Secrets are sealed and never shown again.
          {form.transport === 'stdio' && ' A stdio server runs beside the agent’s code in its sandbox, which can read its environment.'}
        </p>
        <button type="submit" className="self-start rounded bg-blue-600 px-3 py-1 text-white" disabled={add.isPending}>
          Add server
        </button>
      </form>
      <Alert message={error} />
    </section>
  );
}

/** `NAME=value` or `Name: value` lines as a map; a line without either is
 * named in words. */
export function parseSecrets(text: string): Record<string, string> | string {
  const secrets: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const at = [line.indexOf('='), line.indexOf(':')].filter((i) => i > 0).sort((a, b) => a - b)[0];
    if (at === undefined) return `“${line.trim().slice(0, 40)}” is not NAME=value`;
    secrets[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return secrets;
}
