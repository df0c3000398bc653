import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { Client, type SessionMarker } from '../api/client';
import { SessionProvider } from '../session';
import type { RunView } from '../thread/view';
import PlanPanel from './PlanPanel';

const run: RunView = {
  id: 'r1',
  status: 'waiting',
  planApproval: true,
  streaming: '',
  costUsd: 0,
  tokens: 0,
  steps: [{ task: 't1', code: 'x = 1', outputs: [] }],
  plan: [
    { id: 't1', title: 'Load', goal: 'load the data', done_when: 'loaded', agent: 'analyst', depends_on: [], status: 'done', result: 'loaded 3 rows' },
    { id: 't2', title: 'Chart', goal: 'draw it', done_when: 'a chart', agent: 'analyst', depends_on: ['t1'], status: 'pending' },
  ],
};

function renderPanel(canEdit: boolean, onApprove: () => void = () => undefined, shown: RunView = run) {
  const sent: Array<{ method: string; url: string; body: unknown }> = [];
  const fetcher = ((input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    sent.push({ method: init?.method ?? 'GET', url, body: typeof init?.body === 'string' ? (JSON.parse(init.body) as unknown) : null });
    const body = url.endsWith('/agents') ? [{ name: 'analyst' }, { name: 'writer' }] : { tasks: [] };
    return Promise.resolve(new Response(JSON.stringify(body), { status: 200, headers: { 'Content-Type': 'application/json' } }));
  }) as typeof fetch;
  const client = new Client('', { get: () => false, set: () => undefined } satisfies SessionMarker, fetcher);
  (client as unknown as { accessToken: string }).accessToken = 'a';
  render(
    <SessionProvider client={client}>
      <QueryClientProvider client={new QueryClient()}>
        <PlanPanel run={shown} canEdit={canEdit} onApprove={onApprove} />
      </QueryClientProvider>
    </SessionProvider>,
  );
  return sent;
}

describe('PlanPanel', () => {
  it("shows each task's status, and its sub-agent's steps one click away", () => {
    renderPanel(false);
    expect(screen.getByRole('listitem', { name: 'Task t1: done' })).toBeTruthy();
    expect(screen.getByRole('listitem', { name: 'Task t2: pending' }).textContent).toContain('after t1');
    const code = (_: string, element: Element | null) => element?.tagName === 'CODE' && element.textContent === 'x = 1';
    expect(screen.queryByText(code)).toBeNull();
    fireEvent.click(screen.getByRole('button', { name: 'Show its 1 step' }));
    expect(screen.getByText(code)).toBeTruthy();
    expect(screen.queryByRole('button', { name: 'Edit the plan' })).toBeNull();
  });

  it('lets an editor change the plan and approve it', async () => {
    let approved = 0;
    const sent = renderPanel(true, () => (approved += 1));
    fireEvent.click(screen.getByRole('button', { name: 'Edit the plan' }));
    const goals = screen.getAllByLabelText('Goal');
    fireEvent.change(goals[1] as HTMLElement, { target: { value: 'draw a bar chart' } });
    fireEvent.click(screen.getByRole('button', { name: 'Save the plan' }));
    await waitFor(() => expect(sent.some((s) => s.method === 'PUT')).toBe(true));
    const put = sent.find((s) => s.method === 'PUT');
    expect(put?.url).toBe('/api/v1/runs/r1/plan');
    expect(put?.body).toEqual({
      tasks: [
        { id: 't1', title: 'Load', goal: 'load the data', done_when: 'loaded', agent: 'analyst', depends_on: [] },
        { id: 't2', title: 'Chart', goal: 'draw a bar chart', done_when: 'a chart', agent: 'analyst', depends_on: ['t1'] },
      ],
    });
    await screen.findByRole('button', { name: 'Approve the plan' });
    fireEvent.click(screen.getByRole('button', { name: 'Approve the plan' }));
    expect(approved).toBe(1);
  });

  it("shows a plan's text as text, whatever the model wrote", () => {
    const hostile = '<img src=x onerror="alert(1)">';
    const task = { id: 't1', title: hostile, goal: `<script>alert(1)</script>`, done_when: 'x', agent: 'analyst', result: `<a href="javascript:alert(1)">r</a>` };
    renderPanel(false, undefined, { ...run, plan: [task] });
    expect(document.querySelector('aside img, aside script, aside a')).toBeNull();
    expect(screen.getByText(hostile)).toBeTruthy();
    expect(screen.getByText('<script>alert(1)</script>')).toBeTruthy();
  });
});
