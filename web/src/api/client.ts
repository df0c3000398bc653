// The web app's client of Cairn's API: the session (an access token in
// memory only; the refresh token in an HttpOnly cookie that no script can
// read, traded at /auth/refresh), silent refresh when the access token
// expires, problem documents turned into errors with their
// stable code, and the thread's live events over server-sent events read
// with fetch (so the token travels in a header, never in a URL), resuming
// after the last event id when the connection drops.

import type { EventResponse, FileResponse, PresenceSnapshot, Problem, RefreshRequest, RegisterRequest, TokenResponse } from './schema';

/** An error answer of the API, with its stable `code`. */
/** What an error says, for showing it. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The server's explanation of a refused request, or `fallback` when the server was not reached. */
export function problemMessage(err: unknown, fallback = 'Cannot reach the Cairn server.'): string {
  return err instanceof ApiProblem ? err.message : fallback;
}

export class ApiProblem extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, detail: string) {
    super(detail);
    this.name = 'ApiProblem';
    this.status = status;
    this.code = code;
  }
}

/**
 * Whether this browser holds a session cookie, remembered between page
 * loads so a visitor without one is not sent to the server first. It is a
 * hint, not a secret: the refresh token itself is in an HttpOnly cookie.
 */
export interface SessionMarker {
  get(): boolean;
  set(signedIn: boolean): void;
}

const MARKER_KEY = 'cairn.signed_in';
/** Where earlier versions kept the refresh token itself, readable by script. */
const LEGACY_REFRESH_KEY = 'cairn.refresh_token';

/** The marker in localStorage (or nothing, where it is unavailable). */
export function browserSessionMarker(): SessionMarker {
  try {
    globalThis.localStorage?.removeItem(LEGACY_REFRESH_KEY);
  } catch {
    // unavailable
  }
  return {
    get: () => {
      try {
        return globalThis.localStorage?.getItem(MARKER_KEY) === '1';
      } catch {
        return false;
      }
    },
    set: (signedIn) => {
      try {
        if (signedIn) globalThis.localStorage?.setItem(MARKER_KEY, '1');
        else globalThis.localStorage?.removeItem(MARKER_KEY);
      } catch {
        // Private browsing: the session lasts until the tab closes.
      }
    },
  };
}

/** Asks the server to keep the refresh token in its HttpOnly cookie. */
const COOKIE_SESSION = { 'Cairn-Session': 'cookie' } as const;

async function problemOf(response: Response): Promise<ApiProblem> {
  let body: Partial<Problem> & { error?: string; error_description?: string } = {};
  try {
    body = (await response.json()) as typeof body;
  } catch {
    // not JSON
  }
  const code = body.code ?? body.error ?? `http_${response.status}`;
  const detail = body.detail ?? body.error_description ?? body.title ?? `HTTP ${response.status}`;
  return new ApiProblem(response.status, code, detail);
}

export class Client {
  private accessToken: string | null = null;
  private refreshing: Promise<boolean> | null = null;
  private readonly listeners = new Set<(signedIn: boolean) => void>();

  constructor(
    private readonly base = '',
    private readonly marker: SessionMarker = browserSessionMarker(),
    private readonly fetcher: typeof fetch = (...args) => globalThis.fetch(...args),
  ) {}

  /** Whether a session exists (or can be restored from the session cookie). */
  get hasSession(): boolean {
    return this.accessToken !== null || this.marker.get();
  }

  /** Called with `false` when the session ends (signed out, or it could not be refreshed). */
  onSessionChange(listener: (signedIn: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private adopt(session: TokenResponse): void {
    this.accessToken = session.access_token;
    this.marker.set(true);
    for (const listener of this.listeners) listener(true);
  }

  private drop(): void {
    const had = this.hasSession;
    this.accessToken = null;
    this.marker.set(false);
    if (had) for (const listener of this.listeners) listener(false);
  }

  async signIn(email: string, password: string): Promise<void> {
    const form = new URLSearchParams({ grant_type: 'password', username: email, password });
    const response = await this.fetcher(`${this.base}/api/v1/auth/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...COOKIE_SESSION },
      body: form,
      credentials: 'same-origin',
    });
    if (!response.ok) throw await problemOf(response);
    this.adopt((await response.json()) as TokenResponse);
  }

  async register(request: RegisterRequest): Promise<void> {
    const response = await this.fetcher(`${this.base}/api/v1/auth/register`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(request),
    });
    if (!response.ok) throw await problemOf(response);
    await this.signIn(request.email, request.password);
  }

  /** Ends the session on the server (which clears the cookie) and here. */
  async signOut(): Promise<void> {
    if (!this.accessToken && this.marker.get()) await this.refresh();
    if (this.accessToken) {
      await this.fetcher(`${this.base}/api/v1/auth/logout`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${this.accessToken}` },
        credentials: 'same-origin',
      }).catch(() => undefined);
    }
    this.drop();
  }

  /** Changes the password: every session ends, this one continues with new tokens. */
  async changePassword(current: string, next: string): Promise<void> {
    const response = await this.withSession(() =>
      this.fetcher(`${this.base}/api/v1/me/password`, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          ...COOKIE_SESSION,
          ...(this.accessToken ? { Authorization: `Bearer ${this.accessToken}` } : {}),
        },
        body: JSON.stringify({ current_password: current, new_password: next }),
        credentials: 'same-origin',
      }),
    );
    if (!response.ok) throw await problemOf(response);
    this.adopt((await response.json()) as TokenResponse);
  }

  /** Trades the session cookie for a new access token (and cookie); one trade at a time. */
  refresh(): Promise<boolean> {
    this.refreshing ??= (async () => {
      if (!this.marker.get()) return false;
      const body: RefreshRequest = {};
      try {
        const response = await this.fetcher(`${this.base}/api/v1/auth/refresh`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', ...COOKIE_SESSION },
          body: JSON.stringify(body),
          credentials: 'same-origin',
        });
        if (!response.ok) {
          this.drop();
          return false;
        }
        this.adopt((await response.json()) as TokenResponse);
        return true;
      } catch {
        return false; // offline: keep the session for later
      }
    })().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async send(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (this.accessToken) headers.Authorization = `Bearer ${this.accessToken}`;
    const init: RequestInit = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (signal) init.signal = signal;
    return this.fetcher(`${this.base}${path}`, init);
  }

  /**
   * Makes a request with the session: a session kept from an earlier page
   * is restored first, and an expired access token is refreshed once,
   * silently, and the request made again.
   */
  private async withSession<R extends { status: number }>(attempt: () => Promise<R>): Promise<R> {
    if (!this.accessToken && this.marker.get()) await this.refresh();
    const first = await attempt();
    return first.status === 401 && (await this.refresh()) ? attempt() : first;
  }

  /**
   * Calls the API with the session (see {@link withSession}); an error
   * answer is thrown as an {@link ApiProblem}.
   */
  async call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const response = await this.withSession(() => this.send(method, path, body, signal));
    if (!response.ok) throw await problemOf(response);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  /**
   * Uploads a file into a project's library at `path`, reporting progress
   * (0 to 1) as the bytes go out. Refreshes the session once if needed.
   */
  async upload(projectId: string, path: string, file: Blob, onProgress?: (fraction: number) => void): Promise<FileResponse> {
    const url = `${this.base}/api/v1/projects/${projectId}/files/content?path=${encodeURIComponent(path)}`;
    const attempt = () =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const request = new XMLHttpRequest();
        request.open('PUT', url);
        if (this.accessToken) request.setRequestHeader('Authorization', `Bearer ${this.accessToken}`);
        request.setRequestHeader('Content-Type', 'application/octet-stream');
        request.upload.onprogress = (event) => {
          if (event.lengthComputable) onProgress?.(event.loaded / event.total);
        };
        request.onload = () => resolve({ status: request.status, body: request.responseText });
        request.onerror = () => reject(new ApiProblem(0, 'network', 'The upload broke off; try again.'));
        request.send(file);
      });
    const result = await this.withSession(attempt);
    if (result.status < 200 || result.status >= 300) {
      throw await problemOf(new Response(result.body, { status: result.status }));
    }
    onProgress?.(1);
    return JSON.parse(result.body) as FileResponse;
  }

  /** The bytes `path` answers (a workspace file, a run's picture), with the session. */
  async blob(path: string, signal?: AbortSignal): Promise<Blob> {
    const response = await this.withSession(() => this.send('GET', path, undefined, signal));
    if (!response.ok) throw await problemOf(response);
    return response.blob();
  }

  /** The bytes of one version of a library file. */
  async fileContent(projectId: string, fileId: string, signal?: AbortSignal): Promise<Blob> {
    const path = `/api/v1/projects/${projectId}/files/${fileId}/content`;
    const response = await this.withSession(() => this.send('GET', path, undefined, signal));
    if (!response.ok) throw await problemOf(response);
    return response.blob();
  }

  /** Downloads a library file and hands it to the browser as a download. */
  async download(projectId: string, file: FileResponse): Promise<void> {
    saveBlob(await this.fileContent(projectId, file.id), file.name);
  }

  /** GETs `path` (an export) and hands the answer to the browser as the download `name`. */
  async saveAs(path: string, name: string): Promise<void> {
    const response = await this.withSession(() => this.send('GET', path));
    if (!response.ok) throw await problemOf(response);
    saveBlob(await response.blob(), name);
  }

  /**
   * Follows a thread's events from after `after`, calling `onEvent` for
   * each, once and in order — across dropped connections, which are
   * reopened after a pause with the last event id — until `signal` aborts.
   */
  async followEvents(
    threadId: string,
    after: number,
    onEvent: (event: EventResponse) => void,
    signal: AbortSignal,
    onConnection?: (connected: boolean) => void,
    onPresence?: (state: PresenceSnapshot) => void,
  ): Promise<void> {
    let last = after;
    while (!signal.aborted) {
      try {
        if (!this.accessToken) await this.refresh();
        const response = await this.fetcher(`${this.base}/api/v1/threads/${threadId}/events`, {
          headers: {
            Accept: 'text/event-stream',
            'Last-Event-ID': String(last),
            ...(this.accessToken ? { Authorization: `Bearer ${this.accessToken}` } : {}),
          },
          signal,
        });
        if (response.status === 401 && (await this.refresh())) continue;
        if (!response.ok || !response.body) throw await problemOf(response);
        onConnection?.(true);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const lines = block.split('\n');
            const data = lines
              .filter((line) => line.startsWith('data:'))
              .map((line) => line.slice(5).replace(/^ /, ''))
              .join('\n');
            if (!data) continue; // a keep-alive
            if (lines.some((line) => line.replace(/^event: ?/, '') === 'presence' && line.startsWith('event:'))) {
              onPresence?.(JSON.parse(data) as PresenceSnapshot);
              continue;
            }
            const event = JSON.parse(data) as EventResponse;
            if (event.seq <= last) continue;
            last = event.seq;
            onEvent(event);
          }
        }
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof ApiProblem && error.status !== 503) throw error;
      }
      onConnection?.(false);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

/** Hands a blob to the browser as a download. */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
