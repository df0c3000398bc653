import { useState, type FormEvent } from 'react';
import { errorMessage } from '../api/client';
import { Alert } from './Alert';
import { Button, Input } from './ui';

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
        <h2 id={id} className="text-xl font-semibold text-zinc-900 dark:text-zinc-50">
          {title ?? '…'}
        </h2>
        {canEdit && title !== undefined && (
          <Button size="sm" variant="ghost" onClick={() => setDraft(title)}>
            Rename
          </Button>
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
      <Input
        id={`${id}-input`}
        className="max-w-md text-lg"
        value={draft}
        maxLength={200}
        autoFocus
        onChange={(e) => setDraft(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === 'Escape') setDraft(null);
        }}
      />
      <Button type="submit" variant="primary" disabled={saving || !draft.trim()}>
        Save
      </Button>
      <Button onClick={() => setDraft(null)}>Cancel</Button>
      <Alert message={error} />
    </form>
  );
}
