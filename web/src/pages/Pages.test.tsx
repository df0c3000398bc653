import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { DailyUsage } from '../api/schema';
import { SidebarContent } from '../layout/Sidebar';
import { renderWithApi } from '../test-api';
import ApiKeys from './ApiKeys';
import SharedRun from './SharedRun';
import Usage, { lastDays, series } from './Usage';

const project = { id: 'p1', name: 'Acme', role: 'editor', created_at: '2026-11-01T00:00:00Z' };

describe('the API keys page', () => {
  it('makes a key for a project with a role no higher than the caller’s, shows it once, and revokes one', async () => {
    const sent = renderWithApi(<ApiKeys />, (method, url) => {
      if (url === '/api/v1/projects') return [project];
      if (url === '/api/v1/api-keys' && method === 'POST') return { id: 'k2', name: 'nightly', token: 'cairn_secret_123', project_id: 'p1', role: 'editor', created_at: '2026-11-30T00:00:00Z' };
      if (url === '/api/v1/api-keys') return [{ id: 'k1', name: 'old script', project_id: 'p1', role: 'viewer', created_at: '2026-11-01T00:00:00Z' }];
      return null;
    });
    const role = await screen.findByLabelText('Role');
    await waitFor(() => expect([...role.querySelectorAll('option')].map((o) => o.textContent)).toEqual(['viewer', 'editor']));
    fireEvent.change(screen.getByLabelText('What it is for'), { target: { value: 'nightly' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create the key' }));
    expect((await screen.findByLabelText<HTMLInputElement>('The new key')).value).toBe('cairn_secret_123');
    const made = sent.find((r) => r.method === 'POST');
    expect(made?.body).toMatchObject({ name: 'nightly', project_id: 'p1', role: 'editor' });
    expect(typeof (made?.body as { expires_at?: string }).expires_at).toBe('string');
    fireEvent.click(within(screen.getByRole('list', { name: 'Your keys' })).getByRole('button', { name: 'Revoke old script' }));
    await waitFor(() => expect(sent.some((r) => r.method === 'DELETE' && r.url === '/api/v1/api-keys/k1')).toBe(true));
  });
});

describe('the usage page', () => {
  const line = (day: string, user: string, model: string, cost: number): DailyUsage => ({
    day,
    user,
    model,
    cost_usd: cost,
    model_calls: 1,
    input_tokens: 10,
    output_tokens: 5,
    cache_read_tokens: 0,
    cache_write_tokens: 0,
    saved_usd: 0,
  });

  it('adds cost up by day and by member or model, biggest first', () => {
    const lines = [line('2026-11-29', 'u1', 'a/x', 1), line('2026-11-30', 'u2', 'a/x', 3), line('2026-11-30', 'u1', 'b/y', 0.5)];
    const names = (u: string) => (u === 'u1' ? 'Ada' : 'Bo');
    const byMember = series(lines, 'member', names);
    expect(byMember.keys).toEqual(['Bo', 'Ada']);
    expect(byMember.byDay.get('2026-11-30')?.get('Ada')).toBe(0.5);
    expect(series(lines, 'model', names).keys).toEqual(['a/x', 'b/y']);
    expect(lastDays(3, new Date('2026-11-30T23:00:00Z'))).toEqual(['2026-11-28', '2026-11-29', '2026-11-30']);
  });

  it('draws the chart and its table from the server’s daily lines', async () => {
    const today = lastDays(1)[0] ?? '';
    renderWithApi(<Usage />, (_, url) => {
      if (url === '/api/v1/projects') return [project];
      if (url.startsWith('/api/v1/projects/p1/usage/daily')) return [line(today, 'u1', 'a/x', 0.25)];
      if (url === '/api/v1/projects/p1/members') return [{ user_id: 'u1', display_name: 'Ada' }];
      return null;
    });
    expect(await screen.findByRole('img', { name: /Cost per day over 30 days: \$0\.25 in all/ })).toBeTruthy();
    const table = screen.getByRole('table', { name: 'Cost by member' });
    await waitFor(() => expect(within(table).getByText('Ada')).toBeTruthy());
  });
});

describe('the sidebar', () => {
  it('finds threads on the server as the person types, with where the text is', async () => {
    const sent = renderWithApi(<SidebarContent route={{ page: 'projects' }} />, (_, url) => {
      if (url === '/api/v1/projects') return [project];
      if (url === '/api/v1/me') return { id: 'u1', role: 'admin', display_name: 'Ada' };
      if (url.startsWith('/api/v1/search')) return [{ thread: { id: 't9', title: 'Quarterly' }, project_name: 'Acme', snippet: '…the sales by region…' }];
      return [];
    });
    fireEvent.change(screen.getByLabelText('Search threads and messages'), { target: { value: 'sales' } });
    const results = await screen.findByRole('list', { name: 'Search results' }, { timeout: 2000 });
    expect((await within(results).findByRole('link')).getAttribute('href')).toBe('#/threads/t9');
    expect(results.textContent).toContain('Acme · …the sales by region…');
    expect(sent.some((r) => r.url === '/api/v1/search?q=sales')).toBe(true);
    expect(screen.getByRole('link', { name: 'Administration' })).toBeTruthy();
  });
});

describe('a shared run', () => {
  it('shows the request, the steps and the answer, with its pictures through the link', async () => {
    const at = '2026-11-30T00:00:00Z';
    const events = [
      { seq: 1, run_id: null, created_at: at, kind: 'message.created', payload: { id: 'm1', role: 'user', content: 'Chart it' } },
      { seq: 2, run_id: 'r1', created_at: at, kind: 'code', payload: { code: "browser_open('https://example.com')" } },
      { seq: 3, run_id: 'r1', created_at: at, kind: 'browser', payload: { action: 'browser_open', url: 'https://example.com/', title: 'Example', screenshot: 'r1-1-1.jpg' } },
      { seq: 4, run_id: null, created_at: at, kind: 'message.created', payload: { id: 'm2', role: 'assistant', content: 'Here it is.' } },
      { seq: 5, run_id: 'r1', created_at: at, kind: 'run.status', payload: { status: 'succeeded' } },
    ];
    renderWithApi(<SharedRun token="abc" />, () => ({ thread_id: 't1', thread_title: 'Charts', run: { id: 'r1', status: 'succeeded' }, events, expires_at: at }));
    expect(await screen.findByRole('heading', { name: 'Charts' })).toBeTruthy();
    expect(screen.getByRole('article', { name: 'The request' }).textContent).toBe('Chart it');
    expect(screen.getByRole('article', { name: 'Answer from Cairn' }).textContent).toBe('Here it is.');
    expect(screen.getByLabelText('Step 1')).toBeTruthy();
    fireEvent.mouseDown(screen.getByRole('tab', { name: 'browser' }));
    const shot = await screen.findByRole('img', { name: 'The page Example after browser_open' });
    expect(shot.getAttribute('src')).toBe('/api/v1/shared/abc/pictures/r1-1-1.jpg');
    expect(screen.queryByRole('button', { name: 'Share' })).toBeNull();
  });
});
