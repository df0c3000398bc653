import { useQuery } from '@tanstack/react-query';
import { useEffect, useMemo, useState } from 'react';
import type { FileResponse, RunResponse } from '../api/schema';
import { Alert } from '../components/Alert';
import { parseCsv } from '../components/csv';
import { CodeBlock } from '../components/Markdown';
import { sanitizeSvg } from '../components/SafeHtml';
import { useSession } from '../session';

/** Files larger than this are not fetched for a preview. */
const MAX_PREVIEW_BYTES = 10 << 20;
/** Text shown at most. */
const MAX_TEXT_CHARS = 200_000;

type Kind = 'image' | 'svg' | 'pdf' | 'csv' | 'text' | 'none';

const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];

// HTML is shown as its source: a library file is untrusted, and rendered on
// our origin it would be a live page. (A Map, so that `x.constructor` is no
// language.)
const CODE_LANGUAGES = new Map([
  ['py', 'python'], ['json', 'json'], ['sql', 'sql'], ['sh', 'bash'], ['js', 'javascript'], ['yaml', 'yaml'], ['yml', 'yaml'],
  ['html', 'xml'], ['htm', 'xml'], ['xml', 'xml'],
]);

/** `text/html; charset=utf-8` → `text/html`. */
function mediaType(contentType: string): string {
  return contentType.split(';')[0]?.trim().toLowerCase() ?? '';
}

function extensionOf(name: string): string {
  return name.includes('.') ? (name.split('.').pop()?.toLowerCase() ?? '') : '';
}

export function previewKind(file: Pick<FileResponse, 'name' | 'content_type'>): Kind {
  const type = mediaType(file.content_type);
  const extension = extensionOf(file.name);
  if (IMAGE_TYPES.includes(type)) return 'image';
  if (type === 'image/svg+xml' || extension === 'svg') return 'svg';
  if (type === 'application/pdf') return 'pdf';
  if (type === 'text/csv' || extension === 'csv' || extension === 'tsv') return 'csv';
  if (type.startsWith('text/') || type === 'application/json' || CODE_LANGUAGES.has(extension) || ['md', 'txt', 'log'].includes(extension)) {
    return 'text';
  }
  return 'none';
}

function when(iso: string): string {
  return new Date(iso).toLocaleString();
}

/** One file of the library: a preview of the version chosen, its versions,
 * and the run step that made it. */
export default function FilePreview({ projectId, file, onClose }: { projectId: string; file: FileResponse; onClose: () => void }) {
  const { client } = useSession();
  const [shown, setShown] = useState(file);
  const versions = useQuery({
    queryKey: ['versions', projectId, file.path],
    queryFn: () =>
      client.call<FileResponse[]>('GET', `/api/v1/projects/${projectId}/files/versions?path=${encodeURIComponent(file.path)}`),
  });
  const madeBy = useQuery({
    queryKey: ['run', shown.run_id],
    queryFn: () => client.call<RunResponse>('GET', `/api/v1/runs/${shown.run_id ?? ''}`),
    enabled: Boolean(shown.run_id),
  });
  const kind = previewKind(shown);
  const tooLarge = shown.size > MAX_PREVIEW_BYTES;
  const content = useQuery({
    queryKey: ['content', projectId, shown.id],
    queryFn: ({ signal }) => client.fileContent(projectId, shown.id, signal),
    enabled: kind !== 'none' && !tooLarge,
    staleTime: Infinity,
  });

  return (
    <section aria-label={`Preview of ${file.path}`} className="flex flex-col gap-2 rounded border p-2">
      <header className="flex flex-wrap items-center justify-between gap-2">
        <h4 className="font-semibold">
          {shown.path} <span className="text-sm font-normal text-gray-500">v{shown.version}</span>
        </h4>
        <button type="button" className="rounded border px-2 text-sm" onClick={onClose}>
          Close preview
        </button>
      </header>
      {shown.run_id && (
        <p className="text-sm">
          Made by step {shown.step ?? '?'} of a run
          {madeBy.data && (
            <>
              {' — '}
              <a className="text-blue-600 underline" href={`#/threads/${madeBy.data.thread_id}`}>
                open its thread
              </a>
            </>
          )}
        </p>
      )}
      {tooLarge && <p className="text-sm text-gray-500">Too large to preview here; download it instead.</p>}
      {kind === 'none' && <p className="text-sm text-gray-500">No preview for this kind of file ({shown.content_type}); download it instead.</p>}
      <Alert message={content.error?.message} />
      {content.data && <Content kind={kind} blob={content.data} name={shown.name} contentType={shown.content_type} />}
      <h5 className="text-sm font-semibold">Versions</h5>
      <ol className="flex flex-col gap-1 text-sm" aria-label="Versions">
        {versions.data?.map((v) => (
          <li key={v.id} className="flex flex-wrap items-center gap-2">
            <button
              type="button"
              className={v.id === shown.id ? 'font-semibold' : 'text-blue-600 underline'}
              aria-current={v.id === shown.id}
              onClick={() => setShown(v)}
            >
              v{v.version}
            </button>
            <span className="text-gray-500">
              {when(v.created_at)} · {v.size} bytes{v.run_id ? ` · by a run (step ${String(v.step ?? '?')})` : ''}
            </span>
            <button type="button" className="text-blue-600 underline" onClick={() => void client.download(projectId, v)} aria-label={`Download version ${String(v.version)}`}>
              Download
            </button>
          </li>
        ))}
      </ol>
      <Alert message={versions.error?.message} />
    </section>
  );
}

function Content({ kind, blob, name, contentType }: { kind: Kind; blob: Blob; name: string; contentType: string }) {
  // A blob: URL is of our origin, and a member can open it in a tab of its
  // own: typed as the image or PDF it was previewed as, it cannot turn into
  // a page there, whatever type the response carried.
  const url = useMemo(() => {
    if (kind === 'pdf') return URL.createObjectURL(new Blob([blob], { type: 'application/pdf' }));
    if (kind === 'image') return URL.createObjectURL(new Blob([blob], { type: mediaType(contentType) }));
    return null;
  }, [blob, kind, contentType]);
  useEffect(() => () => {
    if (url) URL.revokeObjectURL(url);
  }, [url]);
  const [text, setText] = useState<string | null>(null);
  useEffect(() => {
    if (url) return;
    let live = true;
    void blob.text().then((t) => {
      // An SVG cut short would not draw; it is drawn, not read, so whole.
      if (live) setText(kind === 'svg' ? t : t.slice(0, MAX_TEXT_CHARS));
    });
    return () => {
      live = false;
    };
  }, [blob, url, kind]);

  if (kind === 'image' && url) return <img src={url} alt={`Preview of ${name}`} className="max-h-96 max-w-full self-start" />;
  if (kind === 'pdf' && url) return <iframe src={url} title={`Preview of ${name}`} className="h-96 w-full rounded border" />;
  if (text === null) return <p className="text-sm text-gray-500">Loading the preview…</p>;
  if (kind === 'svg') return <SvgImage source={text} name={name} />;
  if (kind === 'csv') {
    const [header = [], ...rows] = parseCsv(text, 101);
    return (
      <div className="max-h-96 overflow-auto">
        <table className="text-sm" aria-label={`Preview of ${name}`}>
          <thead>
            <tr>
              {header.map((cell, i) => (
                <th key={i} className="border px-2 text-left">
                  {cell}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((row, r) => (
              <tr key={r}>
                {row.map((cell, i) => (
                  <td key={i} className="border px-2">
                    {cell}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
        {rows.length === 100 && <p className="text-sm text-gray-500">The first 100 rows.</p>}
      </div>
    );
  }
  const language = CODE_LANGUAGES.get(extensionOf(name));
  return language ? (
    <CodeBlock code={text} language={language} />
  ) : (
    <pre className="max-h-96 overflow-auto rounded bg-gray-100 p-2 text-sm whitespace-pre-wrap dark:bg-gray-800">{text}</pre>
  );
}

/** An SVG as an <img>, which runs no script and loads nothing. It is
 * sanitised all the same, and made a data: URL rather than a blob: one,
 * because a member can open the image in a tab of its own: there an SVG is a
 * live document, and a data: URL gives it an opaque origin, not ours. An SVG
 * with nothing left to draw is shown as its source. */
function SvgImage({ source, name }: { source: string; name: string }) {
  const clean = useMemo(() => sanitizeSvg(source), [source]);
  if (clean === null) return <CodeBlock code={source.slice(0, MAX_TEXT_CHARS)} language="xml" />;
  return <img src={`data:image/svg+xml;charset=utf-8,${encodeURIComponent(clean)}`} alt={`Preview of ${name}`} className="max-h-96 max-w-full self-start" />;
}
