import { useState, type FormEvent } from 'react';
import { errorMessage } from '../api/client';
import type { MemoryResponse } from '../api/schema';
import { Alert } from '../components/Alert';
import { useSession } from '../session';

/** The project's long-term memory: search it by meaning; editors add to it
 * (the agent does too, with `remember`, and finds it with `recall`). */
export default function MemoryPanel({ projectId, canWrite }: { projectId: string; canWrite: boolean }) {
  const { client } = useSession();
  const [query, setQuery] = useState('');
  const [found, setFound] = useState<MemoryResponse[] | null>(null);
  const [note, setNote] = useState('');
  const [status, setStatus] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const base = `/api/v1/projects/${projectId}/memory`;

  async function search(event: FormEvent) {
    event.preventDefault();
    if (!query.trim()) return;
    setError(null);
    try {
      setFound(await client.call<MemoryResponse[]>('GET', `${base}/search?q=${encodeURIComponent(query.trim())}&limit=10`));
    } catch (err) {
      setError(errorMessage(err));
    }
  }

  async function remember(event: FormEvent) {
    event.preventDefault();
    if (!note.trim()) return;
    setError(null);
    try {
      const kept = await client.call<MemoryResponse[]>('POST', base, { text: note.trim() });
      setNote('');
      setStatus(`Remembered (${String(kept.length)} ${kept.length === 1 ? 'piece' : 'pieces'}).`);
    } catch (err) {
      setError(errorMessage(err));
    }
  }

  return (
    <section aria-labelledby="memory-heading" className="flex flex-col gap-2">
      <h3 id="memory-heading" className="text-lg font-semibold">
        Memory
      </h3>
      <form onSubmit={(e) => void search(e)} className="flex flex-wrap gap-2" role="search">
        <label htmlFor="memory-query" className="sr-only">
          Search the project's memory
        </label>
        <input id="memory-query" className="min-w-0 flex-1 rounded border px-2 py-1" placeholder="Search the project's memory by meaning" value={query} onChange={(e) => setQuery(e.target.value)} />
        <button type="submit" className="rounded border px-3 py-1">
          Search
        </button>
      </form>
      {found && (
        <ol className="flex flex-col gap-1 text-sm" aria-label="Memories found">
          {found.length === 0 && <li className="text-gray-500">Nothing remembered matches.</li>}
          {found.map((m) => (
            <li key={m.id} className="rounded border p-1">
              <span className="text-xs text-gray-500">
                {m.source} · similarity {(m.score ?? 0).toFixed(2)}
              </span>
              <p className="whitespace-pre-wrap">{m.text}</p>
            </li>
          ))}
        </ol>
      )}
      {canWrite && (
        <form onSubmit={(e) => void remember(e)} className="flex flex-wrap gap-2">
          <label htmlFor="memory-note" className="sr-only">
            Something for the project to remember
          </label>
          <input id="memory-note" className="min-w-0 flex-1 rounded border px-2 py-1" placeholder="Something for the project to remember" value={note} onChange={(e) => setNote(e.target.value)} />
          <button type="submit" className="rounded border px-3 py-1">
            Remember
          </button>
        </form>
      )}
      {status && (
        <p role="status" className="text-sm">
          {status}
        </p>
      )}
      <Alert message={error} />
    </section>
  );
}
