import { fireEvent, render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import App from './App';
import { Client, type SessionMarker } from './api/client';

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

function urlOf(input: RequestInfo | URL): string {
  if (typeof input === 'string') return input;
  return input instanceof URL ? input.href : input.url;
}

const memory = (): SessionMarker => {
  let value = false;
  return { get: () => value, set: (signedIn) => (value = signedIn) };
};

describe('the app', () => {
  it('asks to sign in, then lists the projects', async () => {
    const fetcher = ((input: RequestInfo | URL) => {
      const url = urlOf(input);
      if (url.endsWith('/api/v1/auth/token')) {
        return Promise.resolve(json(200, { access_token: 'a', token_type: 'Bearer', expires_in: 900 }));
      }
      if (url.endsWith('/api/v1/projects')) {
        return Promise.resolve(json(200, [{ id: 'p1', name: 'Sales', role: 'owner', created_by: 'u', created_at: '', model: null }]));
      }
      return Promise.resolve(json(404, { code: 'not_found', detail: 'no' }));
    }) as typeof fetch;
    render(<App client={new Client('', memory(), fetcher)} />);
    fireEvent.change(screen.getByLabelText('E-mail'), { target: { value: 'ada@example.com' } });
    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'correct horse battery staple' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    const link = await screen.findByRole('link', { name: 'Sales' });
    expect(link.getAttribute('href')).toBe('#/projects/p1');
    expect(screen.getByRole('button', { name: 'Sign out' })).toBeTruthy();
  });

  it('shows why signing in failed', async () => {
    const fetcher = (() =>
      Promise.resolve(json(400, { error: 'invalid_grant', error_description: 'wrong e-mail or password' }))) as typeof fetch;
    render(<App client={new Client('', memory(), fetcher)} />);
    fireEvent.change(screen.getByLabelText('E-mail'), { target: { value: 'ada@example.com' } });
    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'nope' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    const alert = await screen.findByText('wrong e-mail or password');
    expect(alert.getAttribute('role')).toBe('alert');
  });

  it('shows the keyboard shortcuts on ?, but not while typing in a field, and Esc closes them', async () => {
    const fetcher = ((input: RequestInfo | URL) => {
      const url = urlOf(input);
      if (url.endsWith('/api/v1/auth/token')) {
        return Promise.resolve(json(200, { access_token: 'a', token_type: 'Bearer', expires_in: 900 }));
      }
      if (url.endsWith('/api/v1/projects')) return Promise.resolve(json(200, []));
      return Promise.resolve(json(404, { code: 'not_found', detail: 'no' }));
    }) as typeof fetch;
    render(<App client={new Client('', memory(), fetcher)} />);
    fireEvent.change(screen.getByLabelText('E-mail'), { target: { value: 'ada@example.com' } });
    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'correct horse battery staple' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    const field = await screen.findByLabelText('Project name');
    fireEvent.keyDown(field, { key: '?' });
    expect(screen.queryByRole('dialog')).toBeNull();
    fireEvent.keyDown(document.body, { key: '?' });
    const dialog = screen.getByRole('dialog', { name: 'Keyboard shortcuts' });
    expect(dialog.textContent).toContain('Stop the running agent');
    expect(document.activeElement?.textContent).toBe('Close');
    fireEvent.keyDown(document.body, { key: 'Escape' });
    expect(screen.queryByRole('dialog')).toBeNull();
  });
});
