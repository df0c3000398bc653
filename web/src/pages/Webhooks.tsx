import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import type { DeliveryResponse, WebhookResponse, WebhookWithSecret } from '../api/schema';
import { useSession } from '../session';
import { Alert } from '../components/Alert';

const EVENTS = ['run.succeeded', 'run.failed', 'run.waiting', 'artifact.saved', 'member.added'] as const;

/** A project's webhooks (owners): endpoints subscribed to its events, their
 * signing secrets (shown once), and each endpoint's delivery log. */
export default function Webhooks({ projectId }: { projectId: string }) {
  const { client } = useSession();
  const queries = useQueryClient();
  const base = `/api/v1/projects/${projectId}/webhooks`;
  const key = ['webhooks', projectId];
  const hooks = useQuery({ queryKey: key, queryFn: () => client.call<WebhookResponse[]>('GET', base) });
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState<string[]>(['run.succeeded', 'run.failed']);
  const [secret, setSecret] = useState<{ url: string; secret: string } | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const refresh = () => void queries.invalidateQueries({ queryKey: key });
  const create = useMutation({
    mutationFn: () => client.call<WebhookWithSecret>('POST', base, { url: url.trim(), events }),
    onSuccess: (made) => {
      setSecret({ url: made.url, secret: made.secret });
      setUrl('');
      refresh();
    },
  });
  const update = useMutation({
    mutationFn: ({ id, enabled }: { id: string; enabled: boolean }) => client.call('PATCH', `${base}/${id}`, { enabled }),
    onSuccess: refresh,
  });
  const rotate = useMutation({
    mutationFn: (id: string) => client.call<WebhookWithSecret>('POST', `${base}/${id}/secret`),
    onSuccess: (made) => {
      setSecret({ url: made.url, secret: made.secret });
      refresh();
    },
  });
  const remove = useMutation({
    mutationFn: (id: string) => client.call('DELETE', `${base}/${id}`),
    onSuccess: refresh,
  });
  const error = hooks.error ?? create.error ?? update.error ?? rotate.error ?? remove.error;

  function submit(event: FormEvent) {
    event.preventDefault();
    if (url.trim() && events.length > 0) create.mutate();
  }

  function toggle(name: string, on: boolean) {
    setEvents((current) => (on ? [...current, name] : current.filter((e) => e !== name)));
  }

  return (
    <section aria-labelledby="webhooks-heading" className="flex flex-col gap-2">
      <h3 id="webhooks-heading" className="text-lg font-semibold">
        Webhooks
      </h3>
      <p className="text-sm text-gray-600 dark:text-gray-300">
        Cairn POSTs the events you choose to your endpoints, signed the Standard Webhooks way, and retries failures for about a day.
      </p>
      {hooks.data?.length === 0 && <p className="text-sm text-gray-500">No endpoint yet: add one below to hear when runs end.</p>}
      <ul className="flex flex-col gap-2" aria-label="Webhook endpoints">
        {hooks.data?.map((hook) => (
          <li key={hook.id} className="flex flex-col gap-1 rounded border p-2">
            <div className="flex flex-wrap items-center gap-2">
              <span className="break-all font-mono text-sm">{hook.url}</span>
              <span className="text-xs text-gray-500">{hook.events.join(', ')}</span>
              {!hook.enabled && <span className="text-xs text-orange-700 dark:text-orange-300">disabled</span>}
            </div>
            <div className="flex flex-wrap gap-3 text-sm">
              <button type="button" className="underline" onClick={() => setOpen(open === hook.id ? null : hook.id)}>
                {open === hook.id ? 'Hide deliveries' : 'Deliveries'}
              </button>
              <button type="button" className="underline" onClick={() => update.mutate({ id: hook.id, enabled: !hook.enabled })}>
                {hook.enabled ? 'Disable' : 'Enable'}
              </button>
              <button type="button" className="underline" onClick={() => rotate.mutate(hook.id)}>
                Rotate secret
              </button>
              <button type="button" className="text-red-600 underline" onClick={() => remove.mutate(hook.id)}>
                Delete
              </button>
            </div>
            {open === hook.id && <Deliveries base={`${base}/${hook.id}`} />}
          </li>
        ))}
      </ul>
      {secret && (
        <div role="status" className="rounded border border-green-600 p-2 text-sm">
          <p>
            The signing secret for <span className="font-mono">{secret.url}</span>, shown only now:
          </p>
          <code className="block break-all">{secret.secret}</code>
          <button type="button" className="underline" onClick={() => setSecret(null)}>
            I have stored it
          </button>
        </div>
      )}
      <form onSubmit={submit} className="flex flex-col gap-2" aria-label="Add a webhook endpoint">
        <label className="flex flex-col gap-1 text-sm">
          Endpoint URL
          <input
            type="url"
            className="rounded border px-2 py-1"
            placeholder="https://example.com/cairn-hook"
            value={url}
            onChange={(e) => setUrl(e.target.value)}
          />
        </label>
        <fieldset className="flex flex-wrap gap-3 text-sm">
          <legend className="sr-only">Events</legend>
          {EVENTS.map((name) => (
            <label key={name} className="flex items-center gap-1">
              <input type="checkbox" checked={events.includes(name)} onChange={(e) => toggle(name, e.target.checked)} />
              {name}
            </label>
          ))}
        </fieldset>
        <button type="submit" className="self-start rounded bg-blue-600 px-3 py-1 text-white" disabled={create.isPending}>
          Add endpoint
        </button>
      </form>
      <Alert message={error?.message} />
    </section>
  );
}

/** One endpoint's delivery log, newest first, with redelivery. */
function Deliveries({ base }: { base: string }) {
  const { client } = useSession();
  const queries = useQueryClient();
  const key = ['deliveries', base];
  const deliveries = useQuery({
    queryKey: key,
    queryFn: () => client.call<DeliveryResponse[]>('GET', `${base}/deliveries?limit=50`),
    refetchInterval: 5_000,
  });
  const redeliver = useMutation({
    mutationFn: (id: string) => client.call('POST', `${base}/deliveries/${id}/redeliver`),
    onSuccess: () => void queries.invalidateQueries({ queryKey: key }),
  });
  if (deliveries.data?.length === 0) return <p className="text-sm text-gray-500">Nothing sent yet.</p>;
  return (
    <>
      <table className="text-left text-sm" aria-label="Deliveries">
        <thead>
          <tr>
            <th className="pr-3">Event</th>
            <th className="pr-3">Status</th>
            <th className="pr-3">Attempts</th>
            <th className="pr-3">Response</th>
            <th className="pr-3">Time</th>
            <th className="pr-3">Sent</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {deliveries.data?.map((delivery) => (
            <tr key={delivery.id} title={delivery.last_error ?? undefined}>
              <td className="pr-3">{delivery.event_type}</td>
              <td className="pr-3">{delivery.status}</td>
              <td className="pr-3">{delivery.attempts}</td>
              <td className="pr-3">{delivery.response_code ?? (delivery.last_error ? 'no answer' : '—')}</td>
              <td className="pr-3">{delivery.duration_ms == null ? '—' : `${delivery.duration_ms} ms`}</td>
              <td className="pr-3">{new Date(delivery.created_at).toLocaleString()}</td>
              <td>
                <button type="button" className="underline" onClick={() => redeliver.mutate(delivery.id)}>
                  Redeliver
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Alert message={(deliveries.error ?? redeliver.error)?.message} />
    </>
  );
}
