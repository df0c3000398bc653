import { describe, expect, it } from 'vitest';
import type { EventResponse, RunEvent, TaskStatus } from '../api/schema';
import { activeRun, applyEvent, emptyThread, type ThreadView } from './view';

type Payloads = { [E in RunEvent as E['kind']]: E['payload'] };
/** The event of kind `K`, spelled so that TypeScript pairs each kind with its own payload. */
type Typed<K extends keyof Payloads> = { [P in K]: { kind: P; payload: Payloads[P] } }[K];

let seq = 0;
function event<K extends keyof Payloads>(kind: K, payload: Payloads[K], run_id: string | null = 'run-1'): Typed<K> & Omit<EventResponse, 'kind' | 'payload'> {
  seq += 1;
  const typed: Typed<K> = { kind, payload };
  return { ...typed, seq, run_id, created_at: '2026-11-26T00:00:00Z' };
}

function replay(events: EventResponse[], from: ThreadView = emptyThread): ThreadView {
  return events.reduce(applyEvent, from);
}

describe('the thread view', () => {
  it('builds messages, the streaming reply, steps with outputs, and the run status', () => {
    seq = 0;
    const events = [
      event('message.created', { id: 'm1', role: 'user', author: 'ada', content: 'Chart it' }, null),
      event('run.status', { status: 'queued' }),
      event('run.status', { status: 'running' }),
      event('reasoning', { text: 'They want ' }),
      event('reasoning', { text: 'the answer.' }),
      event('token', { text: 'Let me ' }),
      event('token', { text: 'look.' }),
      event('usage', { model: 'openai/gpt-5', user: 'ada', input_tokens: 100, output_tokens: 20, cost_usd: 0.001 }),
      event('usage', { model: 'openai/gpt-5', user: 'ada', input_tokens: 5, cache_read_tokens: 900, cache_write_tokens: 10, output_tokens: 15, cost_usd: 0.002, saved_usd: 0.0025 }),
      event('code', { code: 'print(41 + 1)' }),
      event('output', { type: 'stream', name: 'stdout', text: '4' }),
      event('output', { type: 'stream', name: 'stdout', text: '2\n' }),
      event('output', { type: 'display', data: { 'image/png': 'iVBOR', 'text/plain': '<Figure>' } }),
      event('observation', { text: 'stdout:\n42\n' }),
      event('message.created', { id: 'm2', role: 'assistant', content: 'It is **42**.' }, null),
      event('run.status', { status: 'succeeded' }),
    ];
    const view = replay(events);
    expect(view.messages.map((m) => [m.role, m.content])).toEqual([
      ['user', 'Chart it'],
      ['assistant', 'It is **42**.'],
    ]);
    const run = view.runs[0];
    if (!run) throw new Error('no run');
    expect(run.status).toBe('succeeded');
    expect(run.steps).toEqual([
      {
        thinking: 'They want the answer.',
        code: 'print(41 + 1)',
        outputs: [{ type: 'stream', text: '42\n' }, { type: 'display', image: 'iVBOR' }],
        observation: 'stdout:\n42\n',
        tokens: 1050,
        costUsd: 0.003,
      },
    ]);
    expect(view.items).toEqual([
      { type: 'message', id: 'm1' },
      { type: 'run', id: 'run-1' },
      { type: 'message', id: 'm2' },
    ]); // the answer comes after the run that wrote it
    expect(run.streaming).toBe(''); // the streamed text became a step
    expect(run.thinking).toBeUndefined(); // and the reasoning went with it
    expect([run.tokens, run.costUsd, run.savedUsd]).toEqual([1050, 0.003, 0.0025]);
    expect(activeRun(view)).toBeUndefined();
  });

  it("keeps a message's attachments, and none when it had none", () => {
    seq = 0;
    const view = replay([
      event('message.created', { id: 'm1', role: 'user', content: 'Look', attachments: ['uploads/a.png', 'data/b.csv'] }, null),
      event('message.created', { id: 'm2', role: 'user', content: 'Plain' }, null),
    ]);
    expect(view.messages.map((m) => m.attachments)).toEqual([['uploads/a.png', 'data/b.csv'], undefined]);
  });

  it('ignores events it has already applied, so a replay after a reconnect changes nothing', () => {
    seq = 0;
    const events = [event('run.status', { status: 'running' }), event('token', { text: 'once' })];
    const view = replay(events);
    expect(replay([...events, ...events]).runs).toEqual(view.runs);
    expect(activeRun(view)?.streaming).toBe('once');
  });

  it('skips kinds and outputs newer than the page, without a phantom run, and goes on', () => {
    seq = 0;
    const newer = (kind: string, payload: unknown, run_id = 'run-1'): EventResponse => {
      seq += 1;
      // Cast on purpose: a server upgraded under an open page sends what its types do not know.
      return { seq, kind, payload, run_id, created_at: '2026-11-26T00:00:00Z' } as EventResponse;
    };
    const known = replay([event('run.status', { status: 'running' }), event('code', { code: 'x = 1' })]);
    const view = replay([newer('tool.call', { tool: 'web_fetch' }), newer('output', { type: 'clear', wait: true }), newer('tool.call', null, 'run-2')], known);
    expect(view.lastSeq).toBe(5);
    expect(view.runs).toEqual(known.runs);
    expect(activeRun(applyEvent(view, event('token', { text: 'still here' })))?.streaming).toBe('still here');
  });

  it('keeps a waiting run question until the run goes on', () => {
    seq = 0;
    const waiting = replay([
      event('run.status', { status: 'running' }),
      event('interrupt', { question: 'Which year?' }),
      event('run.status', { status: 'waiting' }),
    ]);
    expect(activeRun(waiting)?.question).toBe('Which year?');
    const resumed = applyEvent(waiting, event('run.status', { status: 'queued' }));
    expect(activeRun(resumed)?.question).toBeUndefined();
  });

  it('follows a plan: its tasks, their steps, the approval question, and no leftover streamed JSON', () => {
    seq = 0;
    const task = (status: TaskStatus) => ({ id: 't1', title: 'Sum', goal: 'add', done_when: 'a number', agent: 'analyst', depends_on: [], status });
    const waiting = replay([
      event('run.status', { status: 'running' }),
      event('token', { text: '{"tasks": [' }),
      event('plan', { plan: { tasks: [task('pending')], version: 1 } }),
      event('interrupt', { question: 'May the agent follow this plan of 1 task?', plan: true }),
      event('run.status', { status: 'waiting' }),
    ]);
    const run = activeRun(waiting);
    expect(run?.plan?.map((t) => t.status)).toEqual(['pending']);
    expect([run?.planApproval, run?.streaming]).toEqual([true, '']);
    const done = replay([
      event('run.status', { status: 'running' }),
      event('code', { code: 'x = 1', task: 't1' }),
      event('plan', { plan: { tasks: [task('done')], version: 1 } }),
      event('token', { text: 'The answer' }),
      event('run.status', { status: 'succeeded' }),
    ], waiting);
    const finished = done.runs[0];
    expect(finished?.steps[0]?.task).toBe('t1');
    expect(finished?.plan?.[0]?.status).toBe('done');
    expect([finished?.planApproval, finished?.streaming]).toEqual([undefined, '']);
  });

  it("puts a step's tool calls, browser views and workspace changes on it, and tells a branch", () => {
    seq = 0;
    const events = [
      event('message.created', { id: 'm1', role: 'user', author: 'ada', content: 'Look it up' }, null),
      event('run.status', { status: 'queued', forked_from: { run: 'run-0', step: 0 }, model: 'p/m' }),
      event('code', { code: "browser_open('https://example.com')" }),
      event('tool', { name: 'browser_open', args: '{"url":"https://example.com"}', result: '{"title":"Example"}', ok: true, duration_ms: 12 }),
      event('browser', { action: 'browser_open', url: 'https://example.com/', title: 'Example', screenshot: 'run-1-1-1.jpg' }),
      event('workspace', { changes: [{ path: 'notes.txt', change: 'added', size: 5 }] }),
      event('tool', { name: 'web_fetch', args: '[]', result: 'refused', ok: false, duration_ms: 1 }, 'run-2'),
    ];
    const view = replay(events);
    const [first, second] = view.runs;
    if (!first || !second) throw new Error('two runs');
    expect(first.forkedFrom).toEqual({ run: 'run-0', step: 0 });
    expect(first.model).toBe('p/m');
    const step = first.steps[0];
    expect(step?.tools).toEqual([{ name: 'browser_open', args: '{"url":"https://example.com"}', result: '{"title":"Example"}', ok: true, durationMs: 12 }]);
    expect(step?.browser).toEqual([{ action: 'browser_open', url: 'https://example.com/', title: 'Example', screenshot: 'run-1-1-1.jpg' }]);
    expect(step?.changes).toEqual([{ path: 'notes.txt', change: 'added', size: 5 }]);
    expect(second.steps).toEqual([]); // a tool call before any step has nowhere to go
  });

  it("replays a run's own events up to a point", async () => {
    seq = 0;
    const events = [
      event('message.created', { id: 'm0', role: 'user', author: 'ada', content: 'Earlier' }, null),
      event('run.status', { status: 'succeeded' }, 'run-0'),
      event('message.created', { id: 'm1', role: 'user', author: 'ada', content: 'Now' }, null),
      event('run.status', { status: 'running' }),
      event('code', { code: 'a = 1' }),
      event('code', { code: 'b = 2' }),
      event('message.created', { id: 'm2', role: 'assistant', content: 'Done' }, null),
      event('run.status', { status: 'succeeded' }),
    ];
    const { runEvents, viewAt } = await import('./view');
    const own = runEvents(events, 'run-1');
    expect(own.map((e) => e.seq)).toEqual([3, 4, 5, 6, 7, 8]);
    expect(viewAt(own, 3).runs[0]?.steps.map((s) => s.code)).toEqual(['a = 1']);
    expect(viewAt(own, own.length).messages.map((m) => m.content)).toEqual(['Now', 'Done']);
    expect(runEvents(events, 'no-such-run')).toEqual([]);
  });
});
