import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useCallback, useState, type FormEvent } from 'react';
import { Alert } from '../components/Alert';
import { useSession } from '../session';
import {
  AZURE_API_VERSION,
  badPrice,
  COMPATIBLE_PRESETS,
  CONNECTIONS_KEY,
  CONNECTIONS_PATH,
  EMPTY_ROW,
  KIND_ORDER,
  KINDS,
  kindInfo,
  modelsOf,
  rowsOf,
  type ConnectionKind,
  type ConnectionModel,
  type ConnectionRequest,
  type ConnectionResponse,
  type ConnectionTestResponse,
  type ConnectionUpdate,
  type ModelRow,
} from './connections';
import { PasswordField } from './Password';

// Everything a connection holds (names, URLs, model names, the test's
// sentence) is shown as text, never as HTML: an administrator typed it, or
// a provider answered it.

const NO_MODELS = 'Name at least one model.';
const BAD_PRICE = 'A price is a number of US dollars per million tokens (0 or more), or blank.';

/** The link an administrator follows to connect a model. */
export function ConnectModelLink() {
  return (
    <a href="#/admin" className="text-blue-600 underline">
      Connect a model
    </a>
  );
}

/** Administration: the language models Cairn can use, connected in the app or read from the configuration file. */
export default function Connections() {
  const { client } = useSession();
  const queries = useQueryClient();
  const list = useQuery({
    queryKey: CONNECTIONS_KEY,
    queryFn: () => client.call<ConnectionResponse[]>('GET', CONNECTIONS_PATH),
  });
  // Every change shows in the list and in every model picker.
  const refresh = useCallback(() => {
    void queries.invalidateQueries({ queryKey: CONNECTIONS_KEY });
    void queries.invalidateQueries({ queryKey: ['models'] });
  }, [queries]);
  return (
    <section id="connections" aria-labelledby="connections-heading" className="flex flex-col gap-3">
      <h3 id="connections-heading" className="text-lg font-semibold">
        Model connections
      </h3>
      <p className="text-sm text-gray-600 dark:text-gray-300">
        The language models the agent can use. A model&apos;s id is its connection&apos;s name, a slash and the model&apos;s
        name, e.g. openai/gpt-4o. Keys are kept by the server: only their last four characters are shown.
      </p>
      {list.isPending && <p className="text-sm">Loading…</p>}
      <Alert message={list.error?.message} />
      {list.data?.length === 0 && <p className="text-sm text-gray-500">No language model is connected yet.</p>}
      <ul className="flex flex-col gap-2" aria-label="Connections">
        {list.data?.map((connection) => (
          <ConnectionItem key={connection.id ?? `configuration:${connection.name}`} connection={connection} onChanged={refresh} />
        ))}
      </ul>
      <AddConnection onAdded={refresh} />
    </section>
  );
}

function price(model: ConnectionModel): string {
  const input = model.input_usd_per_mtok;
  const output = model.output_usd_per_mtok;
  if (input == null && output == null) return '';
  const show = (p: number | null | undefined) => (p == null ? 'list price' : `$${String(p)}`);
  return ` (${show(input)} in, ${show(output)} out per million tokens)`;
}

/** One connection: what it is, and (for those made in the app) test, edit, enable or disable, remove. */
function ConnectionItem({ connection, onChanged }: { connection: ConnectionResponse; onChanged: () => void }) {
  const { client } = useSession();
  const [editing, setEditing] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const path = `${CONNECTIONS_PATH}/${connection.id ?? ''}`;
  const test = useMutation({
    mutationFn: () => client.call<ConnectionTestResponse>('POST', `${path}/test`),
  });
  const toggle = useMutation({
    mutationFn: (enabled: boolean) => client.call<ConnectionResponse>('PATCH', path, { enabled } satisfies ConnectionUpdate),
    onSuccess: onChanged,
  });
  const remove = useMutation({
    mutationFn: () => client.call('DELETE', path),
    onSuccess: onChanged,
  });
  const readOnly = connection.source === 'configuration' || connection.id === null;
  const name = connection.name;
  return (
    <li aria-label={name} className="flex flex-col gap-1 rounded border p-2 text-sm">
      <div className="flex flex-wrap items-baseline gap-2">
        <span className="text-base font-semibold">{name}</span>
        <span className="text-gray-500">{kindInfo(connection.kind)?.label ?? connection.kind}</span>
        <span
          className={
            connection.enabled
              ? 'rounded-full bg-green-100 px-2 text-green-900 dark:bg-green-900 dark:text-green-100'
              : 'rounded-full bg-gray-200 px-2 text-gray-700 dark:bg-gray-700 dark:text-gray-200'
          }
        >
          {connection.enabled ? 'enabled' : 'disabled'}
        </span>
      </div>
      <dl className="grid grid-cols-[max-content_1fr] gap-x-3">
        <dt className="text-gray-500">Base URL</dt>
        <dd className="break-all">{connection.base_url || "provider's own API"}</dd>
        {connection.kind === 'azure-openai' && (
          <>
            <dt className="text-gray-500">API version</dt>
            <dd>{connection.api_version || AZURE_API_VERSION}</dd>
          </>
        )}
        <dt className="text-gray-500">Key</dt>
        <dd>{connection.key_hint ?? 'no key'}</dd>
        <dt className="text-gray-500">Models</dt>
        <dd>
          {connection.models.length === 0 ? (
            'none'
          ) : (
            <ul aria-label={`Models of ${name}`}>
              {connection.models.map((model) => (
                <li key={model.name}>
                  <span className="font-mono">
                    {name}/{model.name}
                  </span>
                  {price(model)}
                </li>
              ))}
            </ul>
          )}
        </dd>
      </dl>
      {readOnly ? (
        <p className="text-gray-500 italic">from the configuration file — read-only</p>
      ) : (
        <>
          <div className="flex flex-wrap items-center gap-2">
            <button
              type="button"
              className="rounded border px-2"
              disabled={test.isPending}
              onClick={() => test.mutate()}
              aria-label={`Test ${name}`}
            >
              Test
            </button>
            <button type="button" className="rounded border px-2" onClick={() => setEditing(!editing)} aria-label={`Edit ${name}`} aria-expanded={editing}>
              Edit
            </button>
            <button
              type="button"
              className="rounded border px-2"
              disabled={toggle.isPending}
              onClick={() => toggle.mutate(!connection.enabled)}
              aria-label={`${connection.enabled ? 'Disable' : 'Enable'} ${name}`}
            >
              {connection.enabled ? 'Disable' : 'Enable'}
            </button>
            {confirming ? (
              <span className="flex flex-wrap items-center gap-2">
                <span>
                  Remove {name}? Model ids starting with {name}/ stop working.
                </span>
                <button
                  type="button"
                  className="rounded bg-red-600 px-2 text-white"
                  disabled={remove.isPending}
                  onClick={() => remove.mutate()}
                  aria-label={`Yes, remove ${name}`}
                >
                  Yes, remove
                </button>
                <button type="button" className="rounded border px-2" onClick={() => setConfirming(false)}>
                  Keep it
                </button>
              </span>
            ) : (
              <button type="button" className="text-red-600 underline" onClick={() => setConfirming(true)} aria-label={`Remove ${name}`}>
                Remove
              </button>
            )}
          </div>
          {test.isPending && (
            <p role="status" className="flex items-center gap-2 text-gray-600 dark:text-gray-300">
              <span aria-hidden="true" className="inline-block size-3 animate-spin rounded-full border-2 border-current border-t-transparent" />
              Testing…
            </p>
          )}
          {test.data && !test.isPending && (
            <p role="status" className={test.data.ok ? 'text-green-700 dark:text-green-400' : 'text-red-600'}>
              {test.data.ok ? '✓ ' : '✗ '}
              {test.data.detail}
              {test.data.model && <span className="text-gray-500"> ({test.data.model})</span>}
            </p>
          )}
          <Alert message={(test.error ?? toggle.error ?? remove.error)?.message} />
          {editing && (
            <EditConnection
              connection={connection}
              onDone={() => {
                setEditing(false);
                test.reset();
                onChanged();
              }}
              onCancel={() => setEditing(false)}
            />
          )}
        </>
      )}
    </li>
  );
}

/** The rows of models, each with optional prices. */
function ModelsEditor({ rows, onChange, placeholder }: { rows: ModelRow[]; onChange: (rows: ModelRow[]) => void; placeholder: string }) {
  const set = (index: number, change: Partial<ModelRow>) => onChange(rows.map((row, i) => (i === index ? { ...row, ...change } : row)));
  return (
    <fieldset className="flex flex-col gap-1">
      <legend>Models</legend>
      <p className="text-xs text-gray-500">
        Prices in US $ per million tokens; blank uses the model family&apos;s list price. Several names separated by commas share
        their row&apos;s prices.
      </p>
      {rows.map((row, index) => {
        const n = String(index + 1);
        return (
          <div key={index} className="flex flex-wrap items-center gap-2">
            <input
              className="min-w-0 flex-1 rounded border px-2 py-1"
              aria-label={`Model ${n}: name`}
              placeholder={placeholder}
              value={row.name}
              onChange={(e) => set(index, { name: e.target.value })}
            />
            <input
              className="w-24 rounded border px-2 py-1"
              aria-label={`Model ${n}: input price`}
              placeholder="$ in"
              inputMode="decimal"
              value={row.input}
              onChange={(e) => set(index, { input: e.target.value })}
            />
            <input
              className="w-24 rounded border px-2 py-1"
              aria-label={`Model ${n}: output price`}
              placeholder="$ out"
              inputMode="decimal"
              value={row.output}
              onChange={(e) => set(index, { output: e.target.value })}
            />
            {rows.length > 1 && (
              <button type="button" className="text-red-600 underline" aria-label={`Remove model ${n}`} onClick={() => onChange(rows.filter((_, i) => i !== index))}>
                Remove
              </button>
            )}
          </div>
        );
      })}
      <button type="button" className="self-start text-blue-600 underline" onClick={() => onChange([...rows, EMPTY_ROW])}>
        Add a model
      </button>
    </fieldset>
  );
}

/** Changes a connection: base URL, key (blank keeps it), models, API version. */
function EditConnection({ connection, onDone, onCancel }: { connection: ConnectionResponse; onDone: () => void; onCancel: () => void }) {
  const { client } = useSession();
  const kind = kindInfo(connection.kind);
  const azure = connection.kind === 'azure-openai';
  const [baseUrl, setBaseUrl] = useState(connection.base_url);
  const [apiVersion, setApiVersion] = useState(connection.api_version || AZURE_API_VERSION);
  const [key, setKey] = useState('');
  const [removeKey, setRemoveKey] = useState(false);
  const [rows, setRows] = useState(() => rowsOf(connection.models));
  const [problem, setProblem] = useState<string | null>(null);
  const save = useMutation({
    mutationFn: (update: ConnectionUpdate) => client.call<ConnectionResponse>('PATCH', `${CONNECTIONS_PATH}/${connection.id ?? ''}`, update),
    onSuccess: () => {
      setKey('');
      onDone();
    },
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    setProblem(null);
    const models = modelsOf(rows);
    const wrong = badPrice(rows) ? BAD_PRICE : models.length === 0 ? NO_MODELS : null;
    if (wrong) {
      setProblem(wrong);
      return;
    }
    const update: ConnectionUpdate = { base_url: baseUrl.trim(), models };
    if (azure) update.api_version = apiVersion.trim();
    if (removeKey) update.api_key = '';
    else if (key) update.api_key = key;
    save.mutate(update);
  }

  return (
    <form onSubmit={submit} className="mt-1 flex flex-col gap-2 border-t pt-2" aria-label={`Edit ${connection.name}`}>
      <label className="flex flex-col gap-1">
        Base URL
        <input
          className="rounded border px-2 py-1"
          type="url"
          placeholder={kind?.baseUrlPlaceholder}
          required={kind?.needsBaseUrl}
          value={baseUrl}
          onChange={(e) => setBaseUrl(e.target.value)}
        />
      </label>
      {azure && (
        <label className="flex flex-col gap-1">
          API version
          <input className="rounded border px-2 py-1" value={apiVersion} onChange={(e) => setApiVersion(e.target.value)} />
        </label>
      )}
      <PasswordField
        label="New API key (blank keeps the current one)"
        autoComplete="new-password"
        value={key}
        onChange={setKey}
        required={false}
        disabled={removeKey}
      />
      {connection.key_hint !== null && (
        <label className="flex items-center gap-1">
          <input type="checkbox" checked={removeKey} onChange={(e) => setRemoveKey(e.target.checked)} />
          Remove the key ({connection.key_hint})
        </label>
      )}
      <ModelsEditor rows={rows} onChange={setRows} placeholder={kind?.modelPlaceholder ?? ''} />
      <Alert message={problem ?? save.error?.message} />
      <div className="flex gap-2">
        <button type="submit" className="rounded bg-blue-600 px-3 py-1 text-white" disabled={save.isPending}>
          Save
        </button>
        <button type="button" className="rounded border px-3 py-1" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** Connects a provider: its kind, a name (the models' prefix), where it answers, its key and its models. */
function AddConnection({ onAdded }: { onAdded: () => void }) {
  const { client } = useSession();
  const [kind, setKind] = useState<ConnectionKind>('openai');
  const [name, setName] = useState(KINDS.openai.suggestedName);
  const [baseUrl, setBaseUrl] = useState('');
  const [apiVersion, setApiVersion] = useState(AZURE_API_VERSION);
  const [key, setKey] = useState('');
  const [rows, setRows] = useState<ModelRow[]>([EMPTY_ROW]);
  const [problem, setProblem] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const info = KINDS[kind];
  const add = useMutation({
    mutationFn: (request: ConnectionRequest) => client.call<ConnectionResponse>('POST', CONNECTIONS_PATH, request),
    onSuccess: (added) => {
      setStatus(`Connected ${added.name}: test it to check the key and the models.`);
      setKind('openai');
      setName(KINDS.openai.suggestedName);
      setBaseUrl('');
      setApiVersion(AZURE_API_VERSION);
      setKey('');
      setRows([EMPTY_ROW]);
      onAdded();
    },
  });

  /** A name the form suggested, which a change of kind or preset may replace. */
  function suggested(text: string): boolean {
    return text === '' || KIND_ORDER.some((k) => KINDS[k].suggestedName === text) || COMPATIBLE_PRESETS.some((p) => p.name === text);
  }

  function chooseKind(next: ConnectionKind) {
    setKind(next);
    if (suggested(name.trim())) setName(KINDS[next].suggestedName);
    if (!KINDS[next].needsBaseUrl) setBaseUrl('');
  }

  function preset(choice: (typeof COMPATIBLE_PRESETS)[number]) {
    setBaseUrl(choice.baseUrl);
    if (suggested(name.trim())) setName(choice.name);
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    setProblem(null);
    setStatus(null);
    const models = modelsOf(rows);
    const wrong = badPrice(rows) ? BAD_PRICE : models.length === 0 ? NO_MODELS : null;
    if (wrong) {
      setProblem(wrong);
      return;
    }
    const request: ConnectionRequest = { name: name.trim(), kind, models };
    if (baseUrl.trim()) request.base_url = baseUrl.trim();
    if (key) request.api_key = key;
    if (kind === 'azure-openai' && apiVersion.trim()) request.api_version = apiVersion.trim();
    add.mutate(request);
  }

  return (
    <form onSubmit={submit} className="flex max-w-xl flex-col gap-2 rounded border p-2 text-sm" aria-labelledby="add-connection-heading">
      <h4 id="add-connection-heading" className="font-semibold">
        Add a connection
      </h4>
      <label className="flex flex-col gap-1">
        Kind
        <select className="rounded border px-1 py-1" value={kind} onChange={(e) => chooseKind(e.target.value as ConnectionKind)}>
          {KIND_ORDER.map((k) => (
            <option key={k} value={k}>
              {KINDS[k].label}
            </option>
          ))}
        </select>
      </label>
      {kind === 'openai-compatible' && (
        <div className="flex flex-wrap items-center gap-2">
          <span className="text-gray-500">Fill in for:</span>
          {COMPATIBLE_PRESETS.map((choice) => (
            <button key={choice.label} type="button" className="rounded border px-2" onClick={() => preset(choice)}>
              {choice.label}
            </button>
          ))}
        </div>
      )}
      <label className="flex flex-col gap-1">
        Name (the prefix of its model ids)
        <input
          className="rounded border px-2 py-1"
          placeholder={info.suggestedName}
          value={name}
          onChange={(e) => setName(e.target.value)}
          required
        />
      </label>
      <label className="flex flex-col gap-1">
        Base URL{info.needsBaseUrl ? '' : " (leave empty for the provider's own API)"}
        <input
          className="rounded border px-2 py-1"
          type="url"
          placeholder={info.baseUrlPlaceholder}
          required={info.needsBaseUrl}
          value={baseUrl}
          onChange={(e) => setBaseUrl(e.target.value)}
        />
      </label>
      {kind === 'azure-openai' && (
        <label className="flex flex-col gap-1">
          API version
          <input className="rounded border px-2 py-1" value={apiVersion} onChange={(e) => setApiVersion(e.target.value)} />
        </label>
      )}
      <PasswordField
        label={kind === 'openai-compatible' ? 'API key (if the server wants one)' : 'API key'}
        autoComplete="new-password"
        value={key}
        onChange={setKey}
        required={false}
      />
      <ModelsEditor rows={rows} onChange={setRows} placeholder={info.modelPlaceholder} />
      <Alert message={problem ?? add.error?.message} />
      {status && <p role="status">{status}</p>}
      <button type="submit" className="self-start rounded bg-blue-600 px-3 py-1 text-white" disabled={add.isPending}>
        Add the connection
      </button>
    </form>
  );
}
