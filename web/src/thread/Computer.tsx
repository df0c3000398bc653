// The agent's computer, beside the conversation: what its code printed and
// its shell commands (Terminal), the page its browser saw after each action
// (Browser), the thread's workspace (Files) and the plan. Live while a run
// goes; pinned to a step, it shows the computer as it was after that step.

import * as Tabs from '@radix-ui/react-tabs';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState, type ReactNode } from 'react';
import { saveBlob } from '../api/client';
import type { FileResponse, WorkspaceEntry } from '../api/schema';
import { toast } from '../components/toast';
import { Badge, Button, cx, EmptyState, focusRing, Muted } from '../components/ui';
import { useSession } from '../session';
import type { BrowserShot, RunView } from './view';

/** Lines the terminal shows at most. */
const TERMINAL_LINES = 400;

/** Where the pictures of a run come from: the thread (signed in) or a share link. */
export type PictureSource = { kind: 'thread'; threadId: string } | { kind: 'shared'; token: string };

/** What the terminal shows of a run up to (and with) step `upTo`. */
export function terminalLines(run: RunView, upTo?: number): { step: number; text: string; error?: boolean; command?: boolean }[] {
  const lines: { step: number; text: string; error?: boolean; command?: boolean }[] = [];
  run.steps.slice(0, upTo === undefined ? undefined : upTo + 1).forEach((step, i) => {
    lines.push({ step: i, text: `# step ${i + 1}`, command: true });
    for (const tool of step.tools ?? []) {
      if (tool.name === 'shell') lines.push({ step: i, text: `$ ${tool.args}`, command: true }, { step: i, text: tool.result, error: !tool.ok });
    }
    for (const output of step.outputs) {
      if (output.type === 'stream' && output.text) lines.push({ step: i, text: output.text });
      if (output.type === 'error' && output.text) lines.push({ step: i, text: output.text, error: true });
    }
  });
  return lines;
}

/** The browser's views of a run up to (and with) step `upTo`, with their steps. */
export function browserShots(run: RunView, upTo?: number): (BrowserShot & { step: number })[] {
  return run.steps.slice(0, upTo === undefined ? undefined : upTo + 1).flatMap((step, i) => (step.browser ?? []).map((shot) => ({ ...shot, step: i })));
}

/** A picture's address the page can show: a blob for the thread's (the session goes in a header), the link's own for a shared run. */
function usePicture(source: PictureSource, name: string | undefined): string | undefined {
  const { client } = useSession();
  const [url, setUrl] = useState<string>();
  const { kind } = source;
  const owner = source.kind === 'shared' ? source.token : source.threadId;
  useEffect(() => {
    if (!name || kind === 'shared') return undefined;
    const controller = new AbortController();
    let made: string | undefined;
    client
      .blob(`/api/v1/threads/${owner}/pictures/${encodeURIComponent(name)}`, controller.signal)
      .then((blob) => {
        made = URL.createObjectURL(blob);
        setUrl(made);
      })
      .catch(() => setUrl(undefined));
    return () => {
      controller.abort();
      if (made) URL.revokeObjectURL(made);
    };
  }, [client, kind, owner, name]);
  if (!name) return undefined;
  // A shared run's pictures open with the link alone.
  if (kind === 'shared') return `/api/v1/shared/${encodeURIComponent(owner)}/pictures/${encodeURIComponent(name)}`;
  return url;
}

function Terminal({ run, upTo }: { run: RunView | undefined; upTo: number | undefined }) {
  if (!run || run.steps.length === 0) return <EmptyState title="Nothing printed yet">What the agent&apos;s code prints, and its shell commands, show here as it runs.</EmptyState>;
  const all = terminalLines(run, upTo);
  // A long run shows its last lines (the timeline holds every step's output).
  const lines = all.slice(-TERMINAL_LINES);
  return (
    <pre tabIndex={0} aria-label="Terminal" className="max-h-[70vh] overflow-auto rounded-md bg-zinc-950 p-3 font-mono text-xs leading-relaxed whitespace-pre-wrap text-zinc-100">
      {all.length > lines.length && <span className="block text-zinc-400">… {all.length - lines.length} earlier lines</span>}
      {lines.map((line, i) => (
        <span key={i} className={cx('block', line.command && 'text-indigo-300', line.error && 'text-red-300')}>
          {line.text}
        </span>
      ))}
    </pre>
  );
}

function Browser({ run, upTo, source }: { run: RunView | undefined; upTo: number | undefined; source: PictureSource }) {
  const shots = run ? browserShots(run, upTo) : [];
  const [chosen, setChosen] = useState<number | null>(null);
  const shown = shots[chosen ?? shots.length - 1];
  const url = usePicture(source, shown?.screenshot);
  if (!shown) return <EmptyState title="The browser has not been used">When the agent opens a page, what it saw shows here after each action.</EmptyState>;
  return (
    <div className="flex flex-col gap-2">
      <div className="flex items-center gap-2 rounded-md border border-zinc-300 bg-white px-2 py-1 text-xs dark:border-zinc-600 dark:bg-zinc-900">
        <span aria-label="Address" className="truncate font-mono">
          {shown.url}
        </span>
      </div>
      {url ? (
        <img src={url} alt={`The page ${shown.title || shown.url} after ${shown.action}`} className="w-full rounded-md border border-zinc-200 dark:border-zinc-700" />
      ) : (
        <Muted>{shown.screenshot ? 'Loading the screenshot…' : 'No screenshot could be taken of this page.'}</Muted>
      )}
      <ol aria-label="Browser actions" className="flex flex-col gap-1 text-xs">
        {shots.map((shot, i) => (
          <li key={i}>
            <button
              type="button"
              onClick={() => setChosen(i)}
              aria-current={shot === shown ? 'true' : undefined}
              className={cx('w-full truncate rounded px-2 py-1 text-left hover:bg-zinc-100 dark:hover:bg-zinc-800', shot === shown && 'bg-zinc-100 dark:bg-zinc-800', focusRing)}
            >
              Step {shot.step + 1} · {shot.action.replace('browser_', '')} · {shot.title || shot.url}
            </button>
          </li>
        ))}
      </ol>
    </div>
  );
}

/** Where a workspace file's bytes are read. */
function contentPath(threadId: string, path: string): string {
  return `/api/v1/threads/${threadId}/workspace/content?path=${encodeURIComponent(path)}`;
}

const TEXT = /\.(txt|md|csv|tsv|json|py|js|ts|html|css|xml|yaml|yml|log|sql|sh|toml|ini)$/i;
const IMAGE = /\.(png|jpe?g|gif|webp)$/i;

function Preview({ threadId, path }: { threadId: string; path: string }) {
  const { client } = useSession();
  const content = useQuery({
    queryKey: ['workspace-file', threadId, path],
    queryFn: async () => {
      const blob = await client.blob(contentPath(threadId, path));
      if (IMAGE.test(path)) return { image: URL.createObjectURL(new Blob([blob], { type: `image/${path.split('.').pop() ?? 'png'}` })) };
      return { text: (await blob.text()).slice(0, 100_000) };
    },
    enabled: TEXT.test(path) || IMAGE.test(path),
  });
  if (!TEXT.test(path) && !IMAGE.test(path)) return <Muted>No preview for this kind of file: download it.</Muted>;
  if (content.isPending) return <Muted>Loading…</Muted>;
  if (content.error) return <Muted>{content.error.message}</Muted>;
  if (content.data?.image) return <img src={content.data.image} alt={`Preview of ${path}`} className="max-w-full rounded-md" />;
  return (
    <pre aria-label={`Preview of ${path}`} className="max-h-80 overflow-auto rounded-md bg-zinc-100 p-2 text-xs whitespace-pre-wrap dark:bg-zinc-800">
      {content.data?.text}
    </pre>
  );
}

function Files({ threadId, run, upTo, live, canSave }: { threadId: string; run: RunView | undefined; upTo: number | undefined; live: number; canSave: boolean }) {
  const { client } = useSession();
  const queries = useQueryClient();
  const tree = useQuery({
    queryKey: ['workspace', threadId, live],
    queryFn: () => client.call<WorkspaceEntry[]>('GET', `/api/v1/threads/${threadId}/workspace`),
    retry: false,
  });
  const [open, setOpen] = useState<string | null>(null);
  const changed = new Map<string, string>();
  run?.steps.slice(0, upTo === undefined ? undefined : upTo + 1).forEach((step) => {
    for (const change of step.changes ?? []) changed.set(change.path, change.change);
  });
  async function download(path: string) {
    try {
      saveBlob(await client.blob(contentPath(threadId, path)), path.split('/').pop() ?? 'file');
    } catch (err) {
      toast(err instanceof Error ? err.message : 'The download failed', 'error');
    }
  }
  async function save(path: string) {
    try {
      const saved = await client.call<FileResponse>('POST', `/api/v1/threads/${threadId}/workspace/save`, { path });
      toast(`Saved to the library as ${saved.path} (version ${saved.version}).`);
      void queries.invalidateQueries({ queryKey: ['files'] });
    } catch (err) {
      toast(err instanceof Error ? err.message : 'The file could not be saved', 'error');
    }
  }
  if (tree.isPending) return <Muted>Loading the workspace…</Muted>;
  if (tree.error) return <EmptyState title="No workspace yet">{tree.error.message}</EmptyState>;
  const files = (tree.data ?? []).filter((e) => e.kind === 'file');
  if (files.length === 0) return <EmptyState title="The workspace is empty">Files the agent&apos;s code writes appear here as it writes them.</EmptyState>;
  return (
    <ul aria-label="Workspace files" className="flex flex-col gap-1 text-sm">
      {files.map((file) => {
        const change = changed.get(file.path);
        return (
          <li key={file.path} className="rounded-md border border-zinc-200 dark:border-zinc-700">
            <div className="flex items-center gap-2 px-2 py-1">
              <button
                type="button"
                aria-expanded={open === file.path}
                onClick={() => setOpen(open === file.path ? null : file.path)}
                className={cx('min-w-0 flex-1 truncate text-left font-mono text-xs', focusRing)}
              >
                {file.path}
              </button>
              {change && <Badge tone={change === 'removed' ? 'bad' : 'good'}>{change}</Badge>}
              <span className="text-xs text-zinc-600 dark:text-zinc-400">{file.size} B</span>
              <Button size="sm" variant="ghost" aria-label={`Download ${file.path}`} onClick={() => void download(file.path)}>
                ↓
              </Button>
              {canSave && (
                <Button size="sm" variant="ghost" aria-label={`Save ${file.path} to the library`} onClick={() => void save(file.path)}>
                  Save
                </Button>
              )}
            </div>
            {open === file.path && (
              <div className="border-t border-zinc-200 p-2 dark:border-zinc-700">
                <Preview threadId={threadId} path={file.path} />
              </div>
            )}
          </li>
        );
      })}
    </ul>
  );
}

/** The changes a run's steps made, for a shared run (its workspace is not shared). */
function Changes({ run, upTo }: { run: RunView | undefined; upTo: number | undefined }) {
  const changes = (run?.steps.slice(0, upTo === undefined ? undefined : upTo + 1) ?? []).flatMap((s, i) => (s.changes ?? []).map((c) => ({ ...c, step: i })));
  if (changes.length === 0) return <EmptyState title="No file changed">Files the run&apos;s code wrote would be listed here.</EmptyState>;
  return (
    <ul aria-label="Files changed" className="flex flex-col gap-1 text-sm">
      {changes.map((c, i) => (
        <li key={i} className="flex items-center gap-2">
          <span className="font-mono text-xs">{c.path}</span>
          <Badge tone={c.change === 'removed' ? 'bad' : 'good'}>{c.change}</Badge>
          <span className="text-xs text-zinc-600 dark:text-zinc-400">step {c.step + 1}</span>
        </li>
      ))}
    </ul>
  );
}

export function Computer({
  run,
  upTo,
  source,
  live,
  canSave,
  plan,
  pinnedNote,
}: {
  /** The run shown (pinned, replayed, or the latest). */
  run: RunView | undefined;
  /** The step it is pinned to (its index); the whole run when absent. */
  upTo?: number | undefined;
  source: PictureSource;
  /** Changes when the workspace may have changed (refetches the files). */
  live: number;
  canSave: boolean;
  plan?: ReactNode;
  pinnedNote?: ReactNode;
}) {
  const hasPlan = plan !== undefined && plan !== null && plan !== false;
  return (
    <section aria-label="The agent's computer" className="flex min-h-0 flex-col gap-2">
      {pinnedNote}
      <Tabs.Root defaultValue="terminal" className="flex min-h-0 flex-col gap-2">
        <Tabs.List aria-label="The agent's computer" className="flex gap-1 border-b border-zinc-200 dark:border-zinc-700">
          {['terminal', 'browser', 'files', ...(hasPlan ? ['plan'] : [])].map((tab) => (
            <Tabs.Trigger
              key={tab}
              value={tab}
              className={cx(
                '-mb-px border-b-2 border-transparent px-3 py-1.5 text-sm text-zinc-700 capitalize data-[state=active]:border-indigo-600 data-[state=active]:font-medium data-[state=active]:text-indigo-900 dark:text-zinc-300 dark:data-[state=active]:border-indigo-400 dark:data-[state=active]:text-indigo-100',
                focusRing,
              )}
            >
              {tab}
            </Tabs.Trigger>
          ))}
        </Tabs.List>
        <Tabs.Content value="terminal" className={cx('min-h-0 overflow-auto', focusRing)}>
          <Terminal run={run} upTo={upTo} />
        </Tabs.Content>
        <Tabs.Content value="browser" className={cx('min-h-0 overflow-auto', focusRing)}>
          <Browser run={run} upTo={upTo} source={source} />
        </Tabs.Content>
        <Tabs.Content value="files" className={cx('min-h-0 overflow-auto', focusRing)}>
          {source.kind === 'thread' ? <Files threadId={source.threadId} run={run} upTo={upTo} live={live} canSave={canSave} /> : <Changes run={run} upTo={upTo} />}
        </Tabs.Content>
        {hasPlan && (
          <Tabs.Content value="plan" className={cx('min-h-0 overflow-auto', focusRing)}>
            {plan}
          </Tabs.Content>
        )}
      </Tabs.Root>
    </section>
  );
}
