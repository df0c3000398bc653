import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { Client, type SessionMarker } from '../api/client';
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
    // An SVG can carry script: drawn only as a sanitised <img>.
    expect(previewKind(file({ name: 'x.svg', content_type: 'image/svg+xml' }))).toBe('svg');
    expect(previewKind(file({ name: 'x.svg', content_type: 'application/octet-stream' }))).toBe('svg');
    expect(previewKind(file({ name: 'page.html', content_type: 'text/html; charset=utf-8' }))).toBe('text');
    expect(previewKind(file({ name: 'x.constructor', content_type: 'application/octet-stream' }))).toBe('none');
  });
});

/** Renders the preview of `shown`, whose content is `body`. */
function renderPreview(shown: FileResponse, body: string) {
  const store: SessionMarker = { get: () => false, set: () => undefined };
  const fetcher = ((input: RequestInfo | URL) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (url.includes('/files/versions')) return Promise.resolve(new Response(JSON.stringify([shown]), { status: 200, headers: { 'Content-Type': 'application/json' } }));
    if (url.endsWith(`/files/${shown.id}/content`)) return Promise.resolve(new Response(body, { headers: { 'Content-Type': shown.content_type } }));
    return Promise.resolve(new Response('{}', { status: 404 }));
  }) as typeof fetch;
  const client = new Client('', store, fetcher);
  (client as unknown as { accessToken: string }).accessToken = 'a';
  return render(
    <SessionProvider client={client}>
      <QueryClientProvider client={new QueryClient()}>
        <FilePreview projectId="p1" file={shown} onClose={() => undefined} />
      </QueryClientProvider>
    </SessionProvider>,
  );
}

describe('FilePreview', () => {
  it('shows an HTML file as its source, never as a page', async () => {
    const page = '<html><body onload="alert(1)"><script>alert(1)</script><img src=x onerror="alert(1)"><iframe src="https://evil/"></iframe></body></html>';
    const { container } = renderPreview(file({ name: 'page.html', path: 'page.html', content_type: 'text/html' }), page);
    await screen.findByText((_, el) => el?.tagName === 'CODE' && el.textContent === page);
    expect(container.querySelector('section script, section img, section iframe, [onload], [onerror]')).toBeNull();
  });

  it('draws an SVG only as an <img> of its sanitised source', async () => {
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(1)</script><a href="javascript:alert(1)"><circle r="4"/></a></svg>';
    const { container } = renderPreview(file({ name: 'chart.svg', path: 'chart.svg', content_type: 'image/svg+xml' }), svg);
    const image = await screen.findByRole('img', { name: 'Preview of chart.svg' });
    expect(container.querySelector('section svg, section script')).toBeNull();
    const src = image.getAttribute('src') ?? '';
    const prefix = 'data:image/svg+xml;charset=utf-8,';
    expect(src.startsWith(prefix)).toBe(true);
    const drawn = decodeURIComponent(src.slice(prefix.length));
    expect(drawn).toContain('<circle r="4"/>');
    expect(drawn).not.toMatch(/script|onload|javascript|<a/i);
  });

  it('shows CSV cells as text', async () => {
    renderPreview(file({}), 'name,note\n<img src=x onerror=alert(1)>,<script>alert(1)</script>\n');
    const cell = await screen.findByRole('cell', { name: '<img src=x onerror=alert(1)>' });
    expect(cell.querySelector('img')).toBeNull();
    expect(screen.getByRole('cell', { name: '<script>alert(1)</script>' }).children).toHaveLength(0);
  });

  it('shows a CSV as a table, lists the versions, and links the run that made it', async () => {
    const store: SessionMarker = { get: () => false, set: () => undefined };
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
