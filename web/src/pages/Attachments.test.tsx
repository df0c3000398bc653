import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it, vi } from 'vitest';
import { Client, type SessionMarker } from '../api/client';
import type { EventResponse, FileResponse } from '../api/schema';
import { SessionProvider } from '../session';
import ThreadPage from './ThreadPage';

function json(status: number, body: unknown): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

const hostile = '<img src=x onerror=alert(1)>.png';

interface Answer {
  status: number;
  body: unknown;
}

interface Server {
  /** The library paths uploads went to, in order. */
  uploaded: string[];
  /** The bodies of the messages posted. */
  posted: unknown[];
}

/** What the library says to an upload to `path`: the new file, as the real server does. */
function stored(path: string): Answer {
  const file: FileResponse = {
    id: `f-${path}`,
    name: path.slice(path.lastIndexOf('/') + 1),
    path,
    content_type: 'image/png',
    created_at: '2026-12-01T10:00:00Z',
    sha256: '',
    size: 3,
    version: 1,
  };
  return { status: 201, body: file };
}

/**
 * The thread page of an editor, against a fake server: `events` is the
 * thread's event log, `upload` answers each upload (the client sends files
 * with XMLHttpRequest, for its progress events), `post` each message.
 */
function renderThread(
  options: { events?: EventResponse[]; upload?: (path: string) => Promise<Answer>; post?: () => Response } = {},
): Server {
  const server: Server = { uploaded: [], posted: [] };
  const log = (options.events ?? []).map((e) => `id: ${e.seq}\ndata: ${JSON.stringify(e)}\n\n`).join('');
  const fetcher = ((input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const method = init?.method ?? 'GET';
    if (url === '/api/v1/threads/t1') return Promise.resolve(json(200, { id: 't1', project_id: 'p1', title: 'Sales', last_event_seq: 0 }));
    if (url === '/api/v1/projects/p1') return Promise.resolve(json(200, { id: 'p1', name: 'Acme', role: 'editor' }));
    if (url === '/api/v1/projects/p1/members') return Promise.resolve(json(200, []));
    if (url === '/api/v1/me') return Promise.resolve(json(200, { id: 'u1', role: 'member' }));
    if (url === '/api/v1/threads/t1/events') return Promise.resolve(new Response(log, { headers: { 'Content-Type': 'text/event-stream' } }));
    if (url === '/api/v1/threads/t1/typing') return Promise.resolve(json(204, undefined));
    if (url === '/api/v1/threads/t1/messages' && method === 'POST') {
      server.posted.push(typeof init?.body === 'string' ? JSON.parse(init.body) : null);
      return Promise.resolve(options.post?.() ?? json(201, { message: { id: 'm9' }, run: null }));
    }
    return Promise.resolve(json(404, { code: 'not_found', detail: `no route ${method} ${url}` }));
  }) as typeof fetch;

  const answer = options.upload ?? ((path: string) => Promise.resolve(stored(path)));
  class FakeUpload {
    upload: { onprogress: ((event: { lengthComputable: boolean; loaded: number; total: number }) => void) | null } = { onprogress: null };
    onload: (() => void) | null = null;
    onerror: (() => void) | null = null;
    status = 0;
    responseText = '';
    private url = '';
    open(method: string, url: string) {
      expect(method).toBe('PUT');
      this.url = url;
    }
    setRequestHeader() {}
    send() {
      const path = new URL(this.url, 'http://cairn.test').searchParams.get('path') ?? '';
      server.uploaded.push(path);
      this.upload.onprogress?.({ lengthComputable: true, loaded: 1, total: 3 });
      void answer(path).then(({ status, body }) => {
        this.status = status;
        this.responseText = JSON.stringify(body);
        this.onload?.();
      });
    }
  }
  vi.stubGlobal('XMLHttpRequest', FakeUpload);

  const client = new Client('', { get: () => false, set: () => undefined } satisfies SessionMarker, fetcher);
  (client as unknown as { accessToken: string }).accessToken = 'a';
  render(
    <SessionProvider client={client}>
      <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
        <ThreadPage id="t1" />
      </QueryClientProvider>
    </SessionProvider>,
  );
  return server;
}

const png = (name: string) => new File(['png'], name, { type: 'image/png' });

async function choose(...files: File[]) {
  // The picker opens once the thread's project is known.
  await waitFor(() => expect(attachButton().disabled).toBe(false));
  fireEvent.change(screen.getByLabelText('Files to attach'), { target: { files } });
}

const attachButton = () => screen.getByRole<HTMLButtonElement>('button', { name: 'Attach files' });
const chips = () => within(screen.getByRole('list', { name: 'Attached files' }));

function type(text: string) {
  fireEvent.change(screen.getByLabelText('Your message'), { target: { value: text } });
}

describe('attaching files to a message', () => {
  it('uploads a chosen file to uploads/<name>, showing progress, then shows it as a chip', async () => {
    let finish: () => void = () => undefined;
    const server = renderThread({ upload: (path) => new Promise((resolve) => (finish = () => resolve(stored(path)))) });
    await choose(png('chart.png'));
    expect(await screen.findByRole('progressbar', { name: 'Uploading chart.png' })).toBeTruthy();
    expect(screen.getByRole<HTMLButtonElement>('button', { name: 'Send' }).disabled).toBe(true);
    expect(server.uploaded).toEqual(['uploads/chart.png']);
    finish();
    expect(await chips().findByText('chart.png')).toBeTruthy();
    expect(screen.queryByRole('progressbar')).toBeNull();
    expect(screen.getByRole<HTMLButtonElement>('button', { name: 'Send' }).disabled).toBe(false);
  });

  it('sends the attached paths with the message, then clears the chips', async () => {
    const server = renderThread();
    await choose(png('chart.png'), png('notes.txt'));
    await chips().findByText('notes.txt');
    type('What does this show?');
    fireEvent.click(screen.getByRole('button', { name: 'Send' }));
    await waitFor(() => expect(server.posted).toHaveLength(1));
    expect(server.posted[0]).toEqual({ content: 'What does this show?', run: true, plan: false, attachments: ['uploads/chart.png', 'uploads/notes.txt'] });
    await waitFor(() => expect(screen.queryByRole('list', { name: 'Attached files' })).toBeNull());
    expect(screen.getByLabelText<HTMLTextAreaElement>('Your message').value).toBe('');
  });

  it('drops a removed chip from the message', async () => {
    const server = renderThread();
    await choose(png('chart.png'), png('notes.txt'));
    await chips().findByText('notes.txt');
    fireEvent.click(screen.getByRole('button', { name: 'Remove chart.png' }));
    expect(chips().queryByText('chart.png')).toBeNull();
    type('Only the notes');
    fireEvent.click(screen.getByRole('button', { name: 'Send' }));
    await waitFor(() => expect(server.posted).toHaveLength(1));
    expect(server.posted[0]).toMatchObject({ attachments: ['uploads/notes.txt'] });
  });

  it('keeps the text and the chips when the server refuses the message', async () => {
    const detail = "no file `uploads/chart.png` in the project's library: upload it first";
    const server = renderThread({ post: () => json(422, { code: 'attachment_not_found', detail }) });
    await choose(png('chart.png'));
    await chips().findByText('chart.png');
    type('Look at this');
    fireEvent.click(screen.getByRole('button', { name: 'Send' }));
    expect((await screen.findByRole('alert')).textContent).toBe(detail);
    expect(server.posted).toHaveLength(1);
    expect(chips().getByText('chart.png')).toBeTruthy();
    expect(screen.getByLabelText<HTMLTextAreaElement>('Your message').value).toBe('Look at this');
  });

  it('shows why an upload failed and keeps what the member typed', async () => {
    renderThread({ upload: () => Promise.resolve({ status: 413, body: { code: 'too_large', detail: 'A file has at most 100 MB.' } }) });
    type('Half-written thought');
    await choose(png('huge.png'));
    expect((await screen.findByRole('alert')).textContent).toBe('A file has at most 100 MB.');
    expect(screen.queryByRole('list', { name: 'Attached files' })).toBeNull();
    expect(screen.getByLabelText<HTMLTextAreaElement>('Your message').value).toBe('Half-written thought');
  });

  it('attaches at most eight files, and says so', async () => {
    const server = renderThread();
    await choose(...Array.from({ length: 9 }, (_, n) => png(`f${n}.png`)));
    await waitFor(() => expect(chips().getAllByRole('listitem')).toHaveLength(8));
    expect(server.uploaded).toHaveLength(8);
    expect(screen.getByRole('alert').textContent).toContain('f8.png left out');
    expect(attachButton().disabled).toBe(true);
    expect(attachButton().parentElement?.title).toBe('A message attaches at most 8 files');
    fireEvent.click(screen.getByRole('button', { name: 'Remove f0.png' }));
    expect(attachButton().disabled).toBe(false);
  });

  it('shows an uploaded file with a hostile name as text', async () => {
    const server = renderThread();
    await choose(png(hostile));
    expect(await chips().findByText(hostile)).toBeTruthy();
    expect(server.uploaded).toEqual([`uploads/${hostile}`]);
    expect(document.querySelector('img')).toBeNull();
  });

  it("shows a posted message's attachments under it, as text", async () => {
    const created: EventResponse = {
      seq: 1,
      kind: 'message.created',
      run_id: null,
      created_at: '2026-12-01T10:00:00Z',
      payload: { id: 'm1', role: 'user', author: 'u1', content: 'See these', attachments: ['data/sales.csv', `uploads/${hostile}`] },
    };
    renderThread({ events: [created] });
    const message = (await screen.findByText('See these')).closest('article');
    if (!message) throw new Error('no message');
    const attached = within(within(message).getByRole('list', { name: 'Attachments' }));
    expect(attached.getAllByRole('listitem').map((li) => li.textContent)).toEqual(['data/sales.csv', `uploads/${hostile}`]);
    expect(message.querySelector('img')).toBeNull();
  });
});
