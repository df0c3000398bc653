import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import type { ScheduleResponse, ServiceAccountResponse } from '../api/schema';
import { useSession } from '../session';
import { Alert } from '../components/Alert';

/** A project's scheduled runs (owners): a cron expression in a time zone
 * that posts a message as one of the project's service accounts. */
export default function Schedules({ projectId }: { projectId: string }) {
  const { client } = useSession();
  const queries = useQueryClient();
  const base = `/api/v1/projects/${projectId}/schedules`;
  const key = ['schedules', projectId];
  const schedules = useQuery({ queryKey: key, queryFn: () => client.call<ScheduleResponse[]>('GET', base) });
  const accounts = useQuery({
    queryKey: ['service-accounts', projectId],
    queryFn: () => client.call<ServiceAccountResponse[]>('GET', `/api/v1/projects/${projectId}/service-accounts`),
  });
  const editors = accounts.data?.filter((a) => a.role === 'editor') ?? [];
  const [form, setForm] = useState({ name: '', cron: '0 9 * * MON-FRI', timezone: browserZone(), message: '', account: '' });
  const refresh = () => void queries.invalidateQueries({ queryKey: key });
  const create = useMutation({
    mutationFn: () =>
      client.call<ScheduleResponse>('POST', base, {
        name: form.name,
        cron: form.cron,
        timezone: form.timezone,
        message: form.message,
        service_account_id: form.account || editors[0]?.id,
      }),
    onSuccess: () => {
      setForm((f) => ({ ...f, name: '', message: '' }));
      refresh();
    },
  });
  const pause = useMutation({
    mutationFn: ({ id, paused }: { id: string; paused: boolean }) => client.call('PATCH', `${base}/${id}`, { paused }),
    onSuccess: refresh,
  });
  const remove = useMutation({ mutationFn: (id: string) => client.call('DELETE', `${base}/${id}`), onSuccess: refresh });
  const error = schedules.error ?? create.error ?? pause.error ?? remove.error;
  const set = (field: keyof typeof form) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [field]: e.target.value }));

  function submit(event: FormEvent) {
    event.preventDefault();
    create.mutate();
  }

  return (
    <section aria-labelledby="schedules-heading" className="flex flex-col gap-2">
      <h3 id="schedules-heading" className="text-lg font-semibold">
        Scheduled runs
      </h3>
      {schedules.data?.length === 0 && <p className="text-sm text-gray-500">Nothing scheduled: a schedule posts a task to the agent at the times you set.</p>}
      <ul className="flex flex-col gap-2" aria-label="Schedules">
        {schedules.data?.map((schedule) => (
          <li key={schedule.id} className="flex flex-col gap-1 rounded border p-2 text-sm">
            <div className="flex flex-wrap items-center gap-2">
              <span className="font-semibold">{schedule.name}</span>
              <code>{schedule.cron}</code>
              <span className="text-gray-500">{schedule.timezone}</span>
              {schedule.paused && <span className="text-orange-700 dark:text-orange-300">paused</span>}
            </div>
            <p className="whitespace-pre-wrap">{schedule.message}</p>
            {schedule.next_runs.length > 0 && (
              <p>
                Next: <span aria-label={`Next runs of ${schedule.name}`}>{schedule.next_runs.slice(0, 3).map(local).join(' · ')}</span>
              </p>
            )}
            {schedule.last_error && <p className="text-red-700 dark:text-red-300">Last tick: {schedule.last_error}</p>}
            <div className="flex gap-3">
              <button type="button" className="underline" onClick={() => pause.mutate({ id: schedule.id, paused: !schedule.paused })}>
                {schedule.paused ? 'Resume' : 'Pause'}
              </button>
              <button type="button" className="text-red-600 underline" onClick={() => remove.mutate(schedule.id)}>
                Delete
              </button>
            </div>
          </li>
        ))}
      </ul>
      {accounts.data && editors.length === 0 ? (
        <p className="text-sm text-gray-500">Schedules run as a service account: make an editor service account first (the API's /service-accounts).</p>
      ) : (
        <form onSubmit={submit} className="flex flex-col gap-2 text-sm" aria-label="Schedule a run">
          <label className="flex flex-col gap-1">
            Name
            <input className="rounded border px-2 py-1" value={form.name} onChange={set('name')} />
          </label>
          <label className="flex flex-col gap-1">
            When (cron: minute hour day month weekday)
            <input className="rounded border px-2 py-1 font-mono" value={form.cron} onChange={set('cron')} />
          </label>
          <label className="flex flex-col gap-1">
            Time zone
            <input className="rounded border px-2 py-1" value={form.timezone} onChange={set('timezone')} />
          </label>
          <label className="flex flex-col gap-1">
            Task to post
            <textarea className="rounded border px-2 py-1" rows={2} value={form.message} onChange={set('message')} />
          </label>
          <label className="flex flex-col gap-1">
            Run as
            <select className="rounded border px-1" value={form.account || editors[0]?.id || ''} onChange={set('account')}>
              {editors.map((account) => (
                <option key={account.id} value={account.id}>
                  {account.name}
                </option>
              ))}
            </select>
          </label>
          <button type="submit" className="self-start rounded bg-blue-600 px-3 py-1 text-white" disabled={create.isPending}>
            Schedule
          </button>
        </form>
      )}
      <Alert message={error?.message} />
    </section>
  );
}

function browserZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

function local(at: string): string {
  return new Date(at).toLocaleString();
}
