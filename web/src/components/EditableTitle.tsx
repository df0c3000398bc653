import { useState, type FormEvent } from 'react';
import { errorMessage } from '../api/client';
import { Alert } from './Alert';

/** A page's heading that those allowed can rename in place. */
export function EditableTitle({
  id,
  title,
  label,
  canEdit,
  onSave,
}: {
  id: string;
  title: string | undefined;
  label: string;
  canEdit: boolean;
  onSave: (title: string) => Promise<unknown>;
}) {
  const [draft, setDraft] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);

  async function save(event: FormEvent) {
    event.preventDefault();
    if (draft === null) return;
    setSaving(true);
    setError(null);
    try {
      await onSave(draft.trim());
      setDraft(null);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setSaving(false);
    }
  }

  if (draft === null) {
    return (
      <div className="flex flex-wrap items-center gap-2">
        <h2 id={id} className="text-xl font-semibold">
          {title ?? '…'}
        </h2>
        {canEdit && title !== undefined && (
          <button type="button" className="text-sm underline" onClick={() => setDraft(title)}>
            Rename
          </button>
        )}
      </div>
    );
  }
  return (
    <form onSubmit={(e) => void save(e)} className="flex flex-wrap items-center gap-2">
      <h2 id={id} className="sr-only">
        {title}
      </h2>
      <label className="sr-only" htmlFor={`${id}-input`}>
        {label}
      </label>
      <input
        id={`${id}-input`}
        className="rounded border px-2 py-1 text-xl"
        value={draft}
        maxLength={200}
        autoFocus
        onChange={(e) => setDraft(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === 'Escape') setDraft(null);
        }}
      />
      <button type="submit" className="rounded bg-blue-600 px-3 py-1 text-white" disabled={saving || !draft.trim()}>
        Save
      </button>
      <button type="button" className="rounded border px-3 py-1" onClick={() => setDraft(null)}>
        Cancel
      </button>
      <Alert message={error} />
    </form>
  );
}
