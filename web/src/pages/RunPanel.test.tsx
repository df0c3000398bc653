import { fireEvent, render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { RunView } from '../thread/view';
import { RunPanel } from './ThreadPage';

const run = (over: Partial<RunView>): RunView => ({ id: 'r1', status: 'running', streaming: '', steps: [], costUsd: 0.0123, tokens: 420, ...over });

describe('RunPanel', () => {
  it('answers an approval question in place: approve or reject', () => {
    const answers: string[] = [];
    render(
      <RunPanel
        run={run({ status: 'waiting', question: 'May the agent run shell(command="ls")?' })}
        canAnswer
        onAnswer={(reply) => answers.push(reply)}
      />,
    );
    fireEvent.click(screen.getByRole('button', { name: 'Approve' }));
    fireEvent.click(screen.getByRole('button', { name: 'Reject' }));
    expect(answers).toEqual(['yes', 'no']);
  });

  it('offers no buttons to a viewer, nor for a plain question', () => {
    const waiting = run({ status: 'waiting', question: 'May the agent run shell(command="ls")?' });
    const { unmount } = render(<RunPanel run={waiting} canAnswer={false} onAnswer={() => undefined} />);
    expect(screen.queryByRole('button', { name: 'Approve' })).toBeNull();
    unmount();
    render(<RunPanel run={run({ status: 'waiting', question: 'Which quarter?' })} canAnswer onAnswer={() => undefined} />);
    expect(screen.getByText('Cairn asks: Which quarter?')).toBeTruthy();
    expect(screen.queryByRole('button', { name: 'Approve' })).toBeNull();
  });

  it('says when retention removed a run\'s step details', () => {
    const { unmount } = render(<RunPanel run={run({ status: 'succeeded' })} canAnswer onAnswer={() => undefined} />);
    expect(screen.queryByText(/retention policy/)).toBeNull();
    unmount();
    render(<RunPanel run={run({ status: 'succeeded' })} canAnswer onAnswer={() => undefined} detailsRemovedAt="2026-11-30T09:00:00Z" />);
    expect(screen.getByText(/were removed on .* by the project's retention policy; its answer and files stay/)).toBeTruthy();
  });

  it('shows the status, the cost and why a run stopped', () => {
    render(<RunPanel run={run({ status: 'failed', error: "the project's budget of $5.00 is spent" })} canAnswer onAnswer={() => undefined} />);
    expect(screen.getByRole('article', { name: 'Run failed' }).querySelector('header')?.textContent).toMatch(/^Runfailed/);
    expect(screen.getByText(/420 tokens · \$0\.0123/)).toBeTruthy();
    expect(screen.queryByText(/caching saved/)).toBeNull();
    expect(screen.getByRole('alert').textContent).toBe("The run stopped: the project's budget of $5.00 is spent");
  });

  it("shows the model's reasoning collapsed, as text", () => {
    const step = { thinking: '<b>plan</b> first', code: 'x = 1', outputs: [] };
    const { container } = render(<RunPanel run={run({ steps: [step] })} canAnswer onAnswer={() => undefined} />);
    const details = container.querySelector('details');
    expect(details?.open).toBe(false);
    expect(details?.textContent).toContain('<b>plan</b> first');
    expect(details?.querySelector('b')).toBeNull();
  });

  it('shows what prompt caching saved', () => {
    render(<RunPanel run={run({ savedUsd: 0.0211 })} canAnswer onAnswer={() => undefined} />);
    expect(screen.getByText(/caching saved \$0\.0211/)).toBeTruthy();
  });

  it('shows HTML from the sandbox sanitised: the table stays, the script does not', () => {
    const html = '<table class="dataframe"><tr><td>100</td></tr></table><img src=x onerror="alert(1)"><script>alert(1)</script><a href="javascript:alert(1)">x</a>';
    const { container } = render(
      <RunPanel run={run({ steps: [{ code: 'df', outputs: [{ type: 'result', html }] }] })} canAnswer={false} onAnswer={() => undefined} />,
    );
    expect(screen.getByRole('cell', { name: '100' })).toBeTruthy();
    expect(container.querySelector('script, [onerror], [href]')).toBeNull();
  });

  it('shows what the model, the code and the run say as text', () => {
    const hostile = '<img src=x onerror="alert(1)">';
    const outputs = [
      { type: 'stream' as const, text: hostile },
      { type: 'error' as const, text: `ValueError: ${hostile}` },
    ];
    const { container } = render(
      <RunPanel
        run={run({ status: 'waiting', error: hostile, question: hostile, streaming: hostile, steps: [{ code: hostile, outputs }] })}
        canAnswer
        onAnswer={() => undefined}
      />,
    );
    expect(container.querySelector('img')).toBeNull();
    expect(screen.getByRole('alert').textContent).toBe(`The run stopped: ${hostile}`);
    expect(screen.getByText(`Cairn asks: ${hostile}`)).toBeTruthy();
    expect(screen.getByText(`ValueError: ${hostile}`)).toBeTruthy();
    expect(screen.getAllByText(hostile).length).toBeGreaterThanOrEqual(2);
  });

  it('shows a planned run\'s tasks inline with their statuses, and says when the plan waits for approval', () => {
    const plan = [
      { id: 't1', title: 'Gather', goal: 'g', done_when: 'd', agent: 'researcher', status: 'done' as const },
      { id: 't2', title: '<b>Write</b>', goal: 'g', done_when: 'd', agent: 'writer' },
    ];
    render(<RunPanel run={run({ status: 'waiting', plan, planApproval: true, question: 'Follow this plan?' })} canAnswer onAnswer={() => undefined} />);
    const card = screen.getByRole('region', { name: "The run's plan" });
    expect(card.textContent).toContain('Plan: 1 of 2 tasks done — waiting for approval (see the Plan tab)');
    expect(card.textContent).toContain('pending<b>Write</b>');
    expect(card.querySelector('b')).toBeNull();
  });
});
