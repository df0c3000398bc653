import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { Client, type TokenStore } from '../api/client';
import type { FileResponse } from '../api/schema';
import { SessionProvider } from '../session';
import FilePreview, { previewKind } from './FilePreview';

const file = (over: Partial<FileResponse>): FileResponse => ({
  id: 'f2',
  name: 'sales.csv',
  path: 'data/sales.csv',
  content_type: 'text/csv',
  created_at: '2026-11-26T10:00:00Z',
  sha256: '',
  size: 30,
  version: 2,
  ...over,
});

describe('previewKind', () => {
  it('previews images, PDFs, CSV and text, and nothing else', () => {
    expect(previewKind(file({ name: 'a.png', content_type: 'image/png' }))).toBe('image');
    expect(previewKind(file({ name: 'r.pdf', content_type: 'application/pdf' }))).toBe('pdf');
    expect(previewKind(file({ name: 'd.csv', content_type: 'text/plain' }))).toBe('csv');
    expect(previewKind(file({ name: 'run.py', content_type: 'application/octet-stream' }))).toBe('text');
    expect(previewKind(file({ name: 'notes.md', content_type: 'text/markdown' }))).toBe('text');
    expect(previewKind(file({ name: 'x.bin', content_type: 'application/octet-stream' }))).toBe('none');
    // An SVG can carry script: shown as a download, never inline.
    expect(previewKind(file({ name: 'x.svg', content_type: 'image/svg+xml' }))).toBe('none');
  });
});

describe('FilePreview', () => {
  it('shows a CSV as a table, lists the versions, and links the run that made it', async () => {
    const store: TokenStore = { get: () => null, set: () => undefined };
    const fetcher = ((input: RequestInfo | URL) => {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      const json = (body: unknown) => Promise.resolve(new Response(JSON.stringify(body), { status: 200, headers: { 'Content-Type': 'application/json' } }));
      if (url.includes('/files/versions')) return json([file({ run_id: 'r1', step: 3 }), file({ id: 'f1', version: 1 })]);
      if (url.endsWith('/runs/r1')) return json({ id: 'r1', thread_id: 't9', status: 'succeeded', created_by: 'u', created_at: '', updated_at: '' });
      if (url.endsWith('/files/f2/content')) return Promise.resolve(new Response('quarter,sales\nQ1,100\n"Q2, late",120\n'));
      return Promise.resolve(new Response('{}', { status: 404 }));
    }) as typeof fetch;
    const client = new Client('', store, fetcher);
    (client as unknown as { accessToken: string }).accessToken = 'a';
    render(
      <SessionProvider client={client}>
        <QueryClientProvider client={new QueryClient()}>
          <FilePreview projectId="p1" file={file({ run_id: 'r1', step: 3 })} onClose={() => undefined} />
        </QueryClientProvider>
      </SessionProvider>,
    );
    const table = await screen.findByRole('table', { name: 'Preview of sales.csv' });
    expect(table.querySelectorAll('tbody tr')).toHaveLength(2);
    expect(screen.getByRole('cell', { name: 'Q2, late' })).toBeTruthy();
    const versions = await screen.findByRole('list', { name: 'Versions' });
    expect(versions.querySelectorAll('li')).toHaveLength(2);
    const link = await screen.findByRole('link', { name: 'open its thread' });
    expect(link.getAttribute('href')).toBe('#/threads/t9');
  });
});
