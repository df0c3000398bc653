// Usage and cost over time: a project's model spending day by day, split by
// member or by model, drawn as stacked bars (plain SVG: no chart library in
// the bundle) with the same figures in a table for screen readers and copying.

import { useQuery } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import type { DailyUsage, MemberResponse, ProjectResponse } from '../api/schema';
import { Alert } from '../components/Alert';
import { Card, EmptyState, Field, LoadingRows, PageHeader, ProjectSelect, Select } from '../components/ui';
import { useSession } from '../session';

const COLOURS = ['#4f46e5', '#0891b2', '#ca8a04', '#db2777', '#16a34a', '#9333ea', '#ea580c', '#64748b'];

type SplitBy = 'member' | 'model';

/** The last `days` UTC days, oldest first, as `YYYY-MM-DD`. */
export function lastDays(days: number, now: Date = new Date()): string[] {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  return Array.from({ length: days }, (_, i) => new Date(today - (days - 1 - i) * 86_400_000).toISOString().slice(0, 10));
}

/** Cost by day and series (a member's name, or a model), and the series by total, largest first. */
export function series(lines: DailyUsage[], split: SplitBy, name: (user: string) => string): { byDay: Map<string, Map<string, number>>; keys: string[] } {
  const byDay = new Map<string, Map<string, number>>();
  const totals = new Map<string, number>();
  for (const line of lines) {
    const key = split === 'member' ? name(line.user) : line.model;
    const day = byDay.get(line.day) ?? new Map<string, number>();
    day.set(key, (day.get(key) ?? 0) + line.cost_usd);
    byDay.set(line.day, day);
    totals.set(key, (totals.get(key) ?? 0) + line.cost_usd);
  }
  const keys = [...totals.entries()].sort((a, b) => b[1] - a[1]).map(([key]) => key);
  return { byDay, keys };
}

function money(usd: number): string {
  return `$${usd.toFixed(usd > 0 && usd < 0.01 ? 4 : 2)}`;
}

function Chart({ days, byDay, keys }: { days: string[]; byDay: Map<string, Map<string, number>>; keys: string[] }) {
  const width = 720;
  const height = 220;
  const pad = 32;
  const max = Math.max(0.0001, ...days.map((d) => [...(byDay.get(d)?.values() ?? [])].reduce((a, b) => a + b, 0)));
  const bar = (width - pad) / days.length;
  const total = days.reduce((sum, d) => sum + [...(byDay.get(d)?.values() ?? [])].reduce((a, b) => a + b, 0), 0);
  return (
    <figure className="flex flex-col gap-2">
      <svg viewBox={`0 0 ${width} ${height + 20}`} role="img" aria-label={`Cost per day over ${days.length} days: ${money(total)} in all`} className="w-full">
        <line x1={pad} x2={width} y1={height} y2={height} className="stroke-zinc-300 dark:stroke-zinc-600" />
        <text x={0} y={12} className="fill-zinc-600 text-[11px] dark:fill-zinc-400">
          {money(max)}
        </text>
        {days.map((day, i) => {
          let y = height;
          const values = byDay.get(day);
          return (
            <g key={day}>
              {keys.map((key, k) => {
                const value = values?.get(key) ?? 0;
                if (value <= 0) return null;
                const h = (value / max) * (height - 16);
                y -= h;
                return (
                  <rect key={key} x={pad + i * bar + 1} y={y} width={Math.max(1, bar - 2)} height={h} fill={COLOURS[k % COLOURS.length]}>
                    <title>{`${day} · ${key}: ${money(value)}`}</title>
                  </rect>
                );
              })}
              {(i === 0 || i === days.length - 1 || i % 7 === 0) && (
                <text x={pad + i * bar} y={height + 14} className="fill-zinc-600 text-[10px] dark:fill-zinc-400">
                  {day.slice(5)}
                </text>
              )}
            </g>
          );
        })}
      </svg>
      <figcaption>
        <ul aria-label="Legend" className="flex flex-wrap gap-3 text-sm">
          {keys.map((key, k) => (
            <li key={key} className="flex items-center gap-1">
              <span aria-hidden="true" className="inline-block h-3 w-3 rounded-sm" style={{ background: COLOURS[k % COLOURS.length] }} />
              {key}
            </li>
          ))}
        </ul>
      </figcaption>
    </figure>
  );
}

export default function Usage() {
  const { client } = useSession();
  const projects = useQuery({ queryKey: ['projects'], queryFn: () => client.call<ProjectResponse[]>('GET', '/api/v1/projects') });
  const [project, setProject] = useState('');
  const [split, setSplit] = useState<SplitBy>('member');
  const [span, setSpan] = useState(30);
  const chosen = projects.data?.find((p) => p.id === project) ?? projects.data?.[0];
  const id = chosen?.id;
  const daily = useQuery({
    queryKey: ['usage-daily', id, span],
    queryFn: () => client.call<DailyUsage[]>('GET', `/api/v1/projects/${id ?? ''}/usage/daily?days=${span}`),
    enabled: id !== undefined,
  });
  const members = useQuery({
    queryKey: ['members', id],
    queryFn: () => client.call<MemberResponse[]>('GET', `/api/v1/projects/${id ?? ''}/members`),
    enabled: id !== undefined,
  });
  const days = useMemo(() => lastDays(span), [span]);
  const names = new Map((members.data ?? []).map((m) => [m.user_id, m.display_name]));
  const { byDay, keys } = series(daily.data ?? [], split, (user) => names.get(user) ?? 'A former member');
  const totals = keys.map((key) => [key, days.reduce((sum, d) => sum + (byDay.get(d)?.get(key) ?? 0), 0)] as const);
  const tokens = (daily.data ?? []).reduce((sum, l) => sum + l.input_tokens + l.output_tokens + l.cache_read_tokens + l.cache_write_tokens, 0);
  const calls = (daily.data ?? []).reduce((sum, l) => sum + l.model_calls, 0);
  return (
    <section aria-labelledby="usage-heading" className="flex flex-col gap-4">
      <PageHeader title="Usage and cost" id="usage-heading">
        What the agent&apos;s model calls cost, day by day, by member or by model.
      </PageHeader>
      <div className="flex flex-wrap gap-4">
        <ProjectSelect id="usage-project" projects={projects.data} value={id} onChange={setProject} />
        <Field label="Split by" htmlFor="usage-split">
          <Select id="usage-split" value={split} onChange={(e) => setSplit(e.target.value as SplitBy)}>
            <option value="member">member</option>
            <option value="model">model</option>
          </Select>
        </Field>
        <Field label="Over" htmlFor="usage-span">
          <Select id="usage-span" value={span} onChange={(e) => setSpan(Number(e.target.value))}>
            <option value={7}>7 days</option>
            <option value={30}>30 days</option>
            <option value={90}>90 days</option>
          </Select>
        </Field>
      </div>
      <Alert message={daily.error?.message ?? projects.error?.message} />
      {projects.data?.length === 0 && <EmptyState title="No project yet">Usage shows here once a project&apos;s agent has run.</EmptyState>}
      {daily.isPending && id !== undefined && <LoadingRows rows={4} label="Loading the usage…" />}
      {daily.data && daily.data.length === 0 && (
        <EmptyState title="No model calls in this time">When the agent works in this project, its cost shows here day by day.</EmptyState>
      )}
      {daily.data && daily.data.length > 0 && (
        <Card className="flex flex-col gap-4">
          <p className="text-sm">
            {calls} model calls, {tokens.toLocaleString()} tokens, {money(totals.reduce((s, [, v]) => s + v, 0))} in all.
          </p>
          <Chart days={days} byDay={byDay} keys={keys} />
          <table className="text-sm" aria-label={`Cost by ${split}`}>
            <thead>
              <tr className="text-left">
                <th className="pr-4 font-medium">{split === 'member' ? 'Member' : 'Model'}</th>
                <th className="font-medium">Cost</th>
              </tr>
            </thead>
            <tbody>
              {totals.map(([key, value]) => (
                <tr key={key}>
                  <td className="pr-4">{key}</td>
                  <td>{money(value)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Card>
      )}
    </section>
  );
}
