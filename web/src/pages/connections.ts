// Model connections: the types of /api/v1/admin/connections (generated from
// docs/openapi.json), and what the form knows about each kind of provider.

import type {
  ConnectionModel,
  ConnectionRequest,
  ConnectionResponse,
  ConnectionTestResponse,
  ConnectionUpdate,
} from '../api/schema';

export type { ConnectionModel, ConnectionRequest, ConnectionResponse, ConnectionTestResponse, ConnectionUpdate };

/** The kinds of provider the server knows (its `kind` is a plain string). */
export type ConnectionKind = 'openai' | 'anthropic' | 'azure-openai' | 'openai-compatible';

export const CONNECTIONS_PATH = '/api/v1/admin/connections';

/** The list's query key; under `admin`, so the page's other changes refresh it too. */
export const CONNECTIONS_KEY = ['admin', 'connections'] as const;

/** What the form says about each kind. */
export interface KindInfo {
  label: string;
  /** Whether the base URL must be given. */
  needsBaseUrl: boolean;
  baseUrlPlaceholder: string;
  /** A name to suggest for the connection (the model ids' prefix). */
  suggestedName: string;
  modelPlaceholder: string;
}

/** What the form knows of a kind, if the server's kind is one of them. */
export function kindInfo(kind: string): KindInfo | undefined {
  return kind in KINDS ? KINDS[kind as ConnectionKind] : undefined;
}

export const KINDS: Record<ConnectionKind, KindInfo> = {
  openai: {
    label: 'OpenAI',
    needsBaseUrl: false,
    baseUrlPlaceholder: "empty: OpenAI's own API",
    suggestedName: 'openai',
    modelPlaceholder: 'gpt-4o',
  },
  anthropic: {
    label: 'Anthropic',
    needsBaseUrl: false,
    baseUrlPlaceholder: "empty: Anthropic's own API",
    suggestedName: 'anthropic',
    modelPlaceholder: 'claude-sonnet-4-5',
  },
  'azure-openai': {
    label: 'Azure OpenAI',
    needsBaseUrl: true,
    baseUrlPlaceholder: 'https://RESOURCE.openai.azure.com',
    suggestedName: 'azure',
    modelPlaceholder: 'the deployment name',
  },
  'openai-compatible': {
    label: 'OpenAI-compatible (Ollama, OpenRouter, Gemini, vLLM…)',
    needsBaseUrl: true,
    baseUrlPlaceholder: 'http://127.0.0.1:11434/v1',
    suggestedName: 'ollama',
    modelPlaceholder: 'llama3.2',
  },
};

export const KIND_ORDER: ConnectionKind[] = ['openai', 'anthropic', 'azure-openai', 'openai-compatible'];

/** Azure's default `api-version` (the server's too). */
export const AZURE_API_VERSION = '2024-10-21';

/** Well-known OpenAI-compatible servers, one click to fill in. */
export const COMPATIBLE_PRESETS: Array<{ label: string; name: string; baseUrl: string }> = [
  { label: 'Ollama', name: 'ollama', baseUrl: 'http://127.0.0.1:11434/v1' },
  { label: 'LM Studio', name: 'lmstudio', baseUrl: 'http://127.0.0.1:1234/v1' },
  { label: 'OpenRouter', name: 'openrouter', baseUrl: 'https://openrouter.ai/api/v1' },
  { label: 'Google Gemini', name: 'gemini', baseUrl: 'https://generativelanguage.googleapis.com/v1beta/openai' },
];

/** One row of the models editor, as typed. */
export interface ModelRow {
  name: string;
  input: string;
  output: string;
}

export const EMPTY_ROW: ModelRow = { name: '', input: '', output: '' };

export function rowsOf(models: ConnectionModel[]): ModelRow[] {
  if (models.length === 0) return [EMPTY_ROW];
  return models.map((m) => ({
    name: m.name,
    input: m.input_usd_per_mtok == null ? '' : String(m.input_usd_per_mtok),
    output: m.output_usd_per_mtok == null ? '' : String(m.output_usd_per_mtok),
  }));
}

function price(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : undefined;
}

/**
 * The models the rows name: blank rows are skipped, a name with commas is
 * several models (with the row's prices), and a blank price is left out
 * (the model family's list price applies).
 */
export function modelsOf(rows: ModelRow[]): ConnectionModel[] {
  const models: ConnectionModel[] = [];
  for (const row of rows) {
    const input = price(row.input);
    const output = price(row.output);
    for (const name of row.name.split(',').map((n) => n.trim())) {
      if (!name) continue;
      const model: ConnectionModel = { name };
      if (input !== undefined) model.input_usd_per_mtok = input;
      if (output !== undefined) model.output_usd_per_mtok = output;
      models.push(model);
    }
  }
  return models;
}

/** A price typed that is not a number (the field says which). */
export function badPrice(rows: ModelRow[]): boolean {
  return rows.some((row) => [row.input, row.output].some((p) => p.trim() !== '' && !(Number(p.trim()) >= 0)));
}
