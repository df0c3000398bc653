// Files a member attaches to a chat message. Each is uploaded into the
// project's library under `uploads/` as soon as it is chosen (the server
// only accepts attachments that already exist there), shown as a chip
// until the message goes, and named by its path under the posted message.
// Names are the user's and paths come from the event stream: both are
// rendered as React text, never as HTML.

import { useRef, useState } from 'react';
import { problemMessage } from '../api/client';
import { useSession } from '../session';

/** The most files one message may attach (the server refuses more). */
export const MAX_ATTACHMENTS = 8;

/** A file uploaded for the message being written. */
interface Attached {
  path: string;
  name: string;
}

/** A file on its way to the library; `key` tells apart two of the same name. */
interface Upload {
  key: number;
  name: string;
  progress: number;
}

export interface Attachments {
  /** Whether files can be added yet (the thread's project is known). */
  ready: boolean;
  attached: Attached[];
  uploads: Upload[];
  add: (files: File[]) => Promise<void>;
  remove: (path: string) => void;
  clear: () => void;
}

/**
 * The composer's attachments in `projectId`. Why an upload failed, or why
 * files were left out, goes to `onError` (the composer's alert), so what
 * the member typed stays where it is.
 */
export function useAttachments(projectId: string | undefined, onError: (message: string | null) => void): Attachments {
  const { client } = useSession();
  const [attached, setAttached] = useState<Attached[]>([]);
  const [uploads, setUploads] = useState<Upload[]>([]);
  const nextKey = useRef(0);

  async function add(files: File[]) {
    if (!projectId || files.length === 0) return;
    onError(null);
    const room = Math.max(0, MAX_ATTACHMENTS - attached.length - uploads.length);
    if (files.length > room) {
      onError(`A message attaches at most ${MAX_ATTACHMENTS} files: ${files.slice(room).map((f) => f.name).join(', ')} left out.`);
    }
    for (const file of files.slice(0, room)) {
      const key = nextKey.current++;
      setUploads((current) => [...current, { key, name: file.name, progress: 0 }]);
      try {
        const uploaded = await client.upload(projectId, `uploads/${file.name}`, file, (progress) =>
          setUploads((current) => current.map((u) => (u.key === key ? { ...u, progress } : u))),
        );
        // The same name again is a new version of the same file: one chip.
        setAttached((current) =>
          current.some((a) => a.path === uploaded.path) ? current : [...current, { path: uploaded.path, name: uploaded.name }],
        );
      } catch (err) {
        onError(problemMessage(err, 'The upload failed.'));
      } finally {
        setUploads((current) => current.filter((u) => u.key !== key));
      }
    }
  }

  return {
    ready: projectId !== undefined,
    attached,
    uploads,
    add,
    remove: (path) => setAttached((current) => current.filter((a) => a.path !== path)),
    clear: () => setAttached([]),
  };
}

/** A small rounded label; with `onDelete`, a button beside it removes it. */
function Chip({ label, onDelete }: { label: string; onDelete?: () => void }) {
  return (
    <li className="flex max-w-full items-center gap-1 rounded-full bg-gray-100 px-2 text-sm dark:bg-gray-800">
      <span className="truncate" title={label}>
        {label}
      </span>
      {onDelete && (
        <button type="button" className="leading-none text-gray-500 hover:text-red-600" aria-label={`Remove ${label}`} onClick={onDelete}>
          ×
        </button>
      )}
    </li>
  );
}

/** The files attached to the message being written, and those still uploading. */
export function PendingAttachments({ attachments }: { attachments: Attachments }) {
  const { attached, uploads, remove } = attachments;
  if (attached.length === 0 && uploads.length === 0) return null;
  return (
    <ul aria-label="Attached files" className="flex flex-wrap gap-1">
      {attached.map((file) => (
        <Chip key={file.path} label={file.name} onDelete={() => remove(file.path)} />
      ))}
      {uploads.map((upload) => (
        <li key={upload.key} className="flex items-center gap-1 text-sm text-gray-500">
          {upload.name}
          <progress className="w-16" max={1} value={upload.progress} aria-label={`Uploading ${upload.name}`} />
        </li>
      ))}
    </ul>
  );
}

/**
 * The paperclip beside the send button: opens the file picker. Disabled,
 * with the reason as its tooltip, when the message has all the files it
 * may have or when `unavailable` says why not.
 */
export function AttachButton({ attachments, unavailable }: { attachments: Attachments; unavailable?: string | undefined }) {
  const picker = useRef<HTMLInputElement>(null);
  const full = attachments.attached.length + attachments.uploads.length >= MAX_ATTACHMENTS;
  const reason = full ? `A message attaches at most ${MAX_ATTACHMENTS} files` : attachments.ready ? unavailable : 'Loading the thread…';
  return (
    // The tooltip is on a wrapper: a disabled button gets no pointer events.
    <span title={reason ?? 'Attach files'} className="inline-flex">
      <button
        type="button"
        aria-label="Attach files"
        disabled={reason !== undefined}
        className="h-9 rounded-md border border-zinc-300 px-3 text-sm disabled:opacity-50 dark:border-zinc-600"
        onClick={() => picker.current?.click()}
      >
        {/* A glyph, not an inline SVG: the app's content holds no SVG at all,
            which the hostile-content test checks. */}
        <span aria-hidden="true">Attach</span>
      </button>
      <input
        ref={picker}
        type="file"
        multiple
        hidden
        aria-label="Files to attach"
        onChange={(event) => {
          const files = Array.from(event.target.files ?? []);
          // Cleared so that choosing the same file again is a change too.
          event.target.value = '';
          void attachments.add(files);
        }}
      />
    </span>
  );
}

/** The files a posted message attached, by path. */
export function MessageAttachments({ paths }: { paths: string[] | undefined }) {
  if (!paths || paths.length === 0) return null;
  return (
    <ul aria-label="Attachments" className="mt-1 flex flex-wrap gap-1">
      {paths.map((path) => (
        <Chip key={path} label={path} />
      ))}
    </ul>
  );
}
