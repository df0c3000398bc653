import { useQuery, useQueryClient } from '@tanstack/react-query';
import { lazy, Suspense, useState, type DragEvent } from 'react';
import { problemMessage } from '../api/client';
import type { FileResponse, LinkResponse, ListingResponse } from '../api/schema';
import { useSession } from '../session';
import { Alert } from '../components/Alert';
import { Button } from '../components/ui';

// Previews bring the CSV reader and code highlighting: loaded when first asked for.
const FilePreview = lazy(() => import('./FilePreview'));

interface Upload {
  name: string;
  progress: number;
  error?: string;
}

function size(bytes: number): string {
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MB`;
  if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(1)} KB`;
  return `${bytes} bytes`;
}

/** The project's library: folders, files (with what made them), uploads
 * with a progress bar per file, previews and versions, downloads. */
export default function Library({ projectId }: { projectId: string }) {
  const { client } = useSession();
  const queries = useQueryClient();
  const [folder, setFolder] = useState('');
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [shared, setShared] = useState<{ name: string; url: string; expires: string } | null>(null);
  const [previewed, setPreviewed] = useState<FileResponse | null>(null);
  const listing = useQuery({
    queryKey: ['files', projectId, folder],
    queryFn: () =>
      client.call<ListingResponse>('GET', `/api/v1/projects/${projectId}/files?folder=${encodeURIComponent(folder)}`),
    refetchInterval: 5000,
  });

  async function upload(files: FileList | null) {
    if (!files) return;
    for (const file of Array.from(files)) {
      const name = folder ? `${folder}/${file.name}` : file.name;
      setUploads((current) => [...current, { name, progress: 0 }]);
      const update = (change: Partial<Upload>) =>
        setUploads((current) => current.map((u) => (u.name === name ? { ...u, ...change } : u)));
      try {
        await client.upload(projectId, name, file, (progress) => update({ progress }));
        setUploads((current) => current.filter((u) => u.name !== name));
      } catch (err) {
        update({ error: problemMessage(err, 'The upload failed.') });
      }
    }
    void queries.invalidateQueries({ queryKey: ['files', projectId] });
  }

  async function download(file: FileResponse) {
    setError(null);
    try {
      await client.download(projectId, file);
    } catch (err) {
      setError(problemMessage(err, 'The download failed.'));
    }
  }

  async function share(file: FileResponse) {
    setError(null);
    try {
      const link = await client.call<LinkResponse>('POST', `/api/v1/projects/${projectId}/files/${file.id}/links`, {
        expires_in_secs: 3600,
      });
      const url = link.url.startsWith('/') ? `${globalThis.location.origin}${link.url}` : link.url;
      setShared({ name: file.name, url, expires: new Date(link.expires_at).toLocaleTimeString() });
    } catch (err) {
      setError(problemMessage(err, 'No link could be made.'));
    }
  }

  async function remove(file: FileResponse) {
    if (!globalThis.confirm(`Delete ${file.path} and all its versions?`)) return;
    setError(null);
    try {
      await client.call('DELETE', `/api/v1/projects/${projectId}/files?path=${encodeURIComponent(file.path)}`);
      void queries.invalidateQueries({ queryKey: ['files', projectId] });
    } catch (err) {
      setError(problemMessage(err, 'The file could not be deleted.'));
    }
  }

  function onDrop(event: DragEvent) {
    event.preventDefault();
    void upload(event.dataTransfer.files);
  }

  const parent = folder.includes('/') ? folder.slice(0, folder.lastIndexOf('/')) : '';
  return (
    <section aria-labelledby="library-heading" className="flex flex-col gap-2" onDragOver={(e) => e.preventDefault()} onDrop={onDrop}>
      <h3 id="library-heading" className="text-lg font-semibold">
        Library{folder && `: ${folder}`}
      </h3>
      {folder && (
        <Button size="sm" variant="ghost" className="self-start" onClick={() => setFolder(parent)}>
          ↑ Up
        </Button>
      )}
      <ul className="flex flex-col divide-y divide-zinc-200 rounded-lg border border-zinc-200 bg-white dark:divide-zinc-700 dark:border-zinc-700 dark:bg-zinc-900" aria-label="Files">
        {listing.data?.folders.map((name) => (
          <li key={`folder-${name}`} className="px-3 py-1.5">
            <Button size="sm" variant="ghost" aria-label={`📁 ${name}`} onClick={() => setFolder(folder ? `${folder}/${name}` : name)}>
              <span aria-hidden="true" className="text-zinc-500">▸</span> {name}
              <span aria-hidden="true">/</span>
            </Button>
          </li>
        ))}
        {listing.data?.files.map((file) => (
          <li key={file.id} className="flex flex-wrap items-center gap-2 px-3 py-1.5">
            <span className="min-w-0 flex-1 truncate font-medium">{file.name}</span>
            <span className="text-xs text-zinc-600 dark:text-zinc-400">
              {size(file.size)} · v{file.version}
              {file.run_id ? ` · made by a run (step ${file.step ?? '?'})` : ''}
            </span>
            <Button size="sm" variant="ghost" onClick={() => setPreviewed(file)} aria-label={`Preview ${file.name}`}>
              Preview
            </Button>
            <Button size="sm" variant="ghost" onClick={() => void download(file)} aria-label={`Download ${file.name}`}>
              Download
            </Button>
            <Button size="sm" variant="ghost" onClick={() => void share(file)} aria-label={`Share a link to ${file.name}`}>
              Share link
            </Button>
            <Button size="sm" variant="ghost" className="text-red-700 dark:text-red-300" onClick={() => void remove(file)} aria-label={`Delete ${file.name}`}>
              Delete
            </Button>
          </li>
        ))}
        {listing.data && listing.data.files.length === 0 && listing.data.folders.length === 0 && (
          <li className="px-3 py-6 text-center text-sm text-zinc-600 dark:text-zinc-400">Nothing here yet. Drop files here, or choose them below, to upload them.</li>
        )}
      </ul>
      {previewed && (
        <Suspense fallback={<p className="text-sm text-gray-500">Loading the preview…</p>}>
          <FilePreview key={previewed.id} projectId={projectId} file={previewed} onClose={() => setPreviewed(null)} />
        </Suspense>
      )}
      <label className="flex flex-col gap-2 rounded-lg border border-dashed border-zinc-300 p-4 text-sm dark:border-zinc-600">
        Upload files (or drop them here)
        <input
          type="file"
          multiple
          onChange={(e) => void upload(e.target.files)}
          className="text-sm file:mr-3 file:rounded-md file:border-0 file:bg-indigo-600 file:px-3 file:py-1.5 file:text-white"
        />
      </label>
      {uploads.map((u) => (
        <div key={u.name} className="text-sm">
          {u.name}{' '}
          {u.error ? (
            <span role="alert" className="text-red-600">
              {u.error}
            </span>
          ) : (
            <progress max={1} value={u.progress} aria-label={`Uploading ${u.name}`} />
          )}
        </div>
      ))}
      {shared && (
        <p role="status" className="text-sm">
          Anyone with this link can download {shared.name} until {shared.expires}:{' '}
          <input readOnly className="w-full rounded border px-1" value={shared.url} aria-label="Share link" onFocus={(e) => e.target.select()} />
        </p>
      )}
      <Alert message={error} />
    </section>
  );
}
