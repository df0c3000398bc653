// Typed client for the few Cairn server endpoints the web app uses so far.
// Paths are relative so the same build works behind any host; in development
// the Vite dev server proxies them to the Rust server (see vite.config.ts).

import { errorMessage } from './api/client';

/** Body of `GET /api/v1/version`. */
export interface VersionInfo {
  name: string;
  version: string;
  role: string;
}

/** State of one dependency as reported by `GET /readyz`. */
export interface DependencyCheck {
  ok: boolean;
  error?: string;
}

/** Result of `GET /readyz`: 200 means ready, 503 means not ready. */
export interface Readiness {
  ready: boolean;
  /** `status` from a 200 body, or the problem `title` from a 503 body. */
  status: string;
  /** Problem `detail` from a 503 body, when given. */
  detail?: string;
  checks: Record<string, DependencyCheck>;
}

/** Raised when the server cannot be reached or answers something unexpected. */
export class ApiError extends Error {
  /** HTTP status, or `undefined` when no response was received at all. */
  readonly status: number | undefined;

  constructor(message: string, status?: number) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function request(path: string, signal?: AbortSignal): Promise<Response> {
  const init: RequestInit = {
    headers: { Accept: 'application/json, application/problem+json' },
  };
  if (signal) init.signal = signal;
  try {
    return await fetch(path, init);
  } catch (err) {
    // Let cancellation propagate untouched so callers can ignore it.
    if (signal?.aborted) throw err;
    throw new ApiError(`Cannot reach the Cairn server (${errorMessage(err)})`);
  }
}

async function readJson(res: Response, path: string): Promise<unknown> {
  try {
    return (await res.json()) as unknown;
  } catch {
    throw new ApiError(`Invalid JSON from ${path} (HTTP ${res.status})`, res.status);
  }
}

function parseChecks(value: unknown): Record<string, DependencyCheck> {
  const checks: Record<string, DependencyCheck> = {};
  if (!isObject(value)) return checks;
  for (const [name, raw] of Object.entries(value)) {
    if (!isObject(raw)) continue;
    const check: DependencyCheck = { ok: raw.ok === true };
    if (typeof raw.error === 'string') check.error = raw.error;
    checks[name] = check;
  }
  return checks;
}

/** `GET /api/v1/version`. */
export async function getVersion(signal?: AbortSignal): Promise<VersionInfo> {
  const path = '/api/v1/version';
  const res = await request(path, signal);
  if (!res.ok) {
    throw new ApiError(`${path} answered HTTP ${res.status}`, res.status);
  }
  const body = await readJson(res, path);
  if (
    !isObject(body) ||
    typeof body.name !== 'string' ||
    typeof body.version !== 'string'
  ) {
    throw new ApiError(`Unexpected body from ${path}`, res.status);
  }
  return {
    name: body.name,
    version: body.version,
    role: typeof body.role === 'string' ? body.role : '',
  };
}

/**
 * `GET /readyz`. Resolves for both 200 (ready) and 503 (not ready, with a
 * problem+json body); any other outcome is an {@link ApiError}.
 */
export async function getReadiness(signal?: AbortSignal): Promise<Readiness> {
  const path = '/readyz';
  const res = await request(path, signal);
  if (res.status !== 200 && res.status !== 503) {
    throw new ApiError(`${path} answered HTTP ${res.status}`, res.status);
  }
  const body = await readJson(res, path);
  if (!isObject(body)) {
    throw new ApiError(`Unexpected body from ${path}`, res.status);
  }
  if (res.status === 200) {
    return {
      ready: true,
      status: typeof body.status === 'string' ? body.status : 'ready',
      checks: parseChecks(body.checks),
    };
  }
  const readiness: Readiness = {
    ready: false,
    status: typeof body.title === 'string' ? body.title : 'Service unavailable',
    checks: parseChecks(body.checks),
  };
  if (typeof body.detail === 'string') readiness.detail = body.detail;
  return readiness;
}
