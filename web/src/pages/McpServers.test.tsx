import { fireEvent, screen, waitFor } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { renderWithApi } from '../test-api';
import McpServers, { parseSecrets } from './McpServers';

const SERVERS = [
  {
    id: 'm1',
    name: 'vault',
    transport: 'http',
    url: 'https://vault.example.com/mcp',
    secrets: ['Authorization'],
    tools: [],
    created_at: '2026-11-30T06:00:00Z',
  },
  {
    id: 'm2',
    name: 'calc',
    transport: 'stdio',
    command: ['python', '-m', 'calc_mcp'],
    secrets: [],
    tools: [],
    created_at: '2026-11-30T06:00:00Z',
  },
];

function renderPanel() {
  return renderWithApi(<McpServers projectId="p1" />, (method) => (method === 'GET' ? SERVERS : SERVERS[0]));
}

describe('McpServers', () => {
  it('lists each server by how it is reached, naming its secrets, never their values, and removes one', async () => {
    const sent = renderPanel();
    expect(await screen.findByText('https://vault.example.com/mcp')).toBeTruthy();
    expect(screen.getByText('python -m calc_mcp')).toBeTruthy();
    expect(screen.getByText('stdio, in the sandbox')).toBeTruthy();
    expect(screen.getByText('Secrets: Authorization')).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Remove calc' }));
    await waitFor(() => expect(sent.some((s) => s.method === 'DELETE')).toBe(true));
    expect(sent.find((s) => s.method === 'DELETE')?.url).toBe('/api/v1/projects/p1/mcp-servers/m2');
  });

  it('adds a stdio server with its command, one argument per line, and its environment', async () => {
    const sent = renderPanel();
    await screen.findByText('python -m calc_mcp');
    fireEvent.change(screen.getByLabelText('Name (its tools are mcp_name_tool)'), { target: { value: 'notes' } });
    fireEvent.change(screen.getByLabelText('Reached by'), { target: { value: 'stdio' } });
    fireEvent.change(screen.getByLabelText('Command (the program, then each argument, one per line)'), {
      target: { value: 'python\n-m\nnotes_mcp\n' },
    });
    fireEvent.change(screen.getByLabelText('Environment variables (NAME=value, one per line)'), {
      target: { value: 'NOTES_TOKEN=s3cr=t\n' },
    });
    fireEvent.click(screen.getByRole('button', { name: 'Add server' }));
    await waitFor(() => expect(sent.some((s) => s.method === 'POST')).toBe(true));
    expect(sent.find((s) => s.method === 'POST')?.body).toEqual({
      name: 'notes',
      command: ['python', '-m', 'notes_mcp'],
      secrets: { NOTES_TOKEN: 's3cr=t' },
    });
  });

  it('adds an HTTP server with its headers, and names a secret line it cannot read', async () => {
    const sent = renderPanel();
    await screen.findByText('python -m calc_mcp');
    fireEvent.change(screen.getByLabelText('Name (its tools are mcp_name_tool)'), { target: { value: 'docs' } });
    fireEvent.change(screen.getByLabelText('URL'), { target: { value: 'https://docs.example.com/mcp' } });
    const headers = screen.getByLabelText('Headers sent with every request (Name: value, one per line)');
    fireEvent.change(headers, { target: { value: 'just a token' } });
    fireEvent.click(screen.getByRole('button', { name: 'Add server' }));
    expect(await screen.findByText(/is not NAME=value/)).toBeTruthy();
    fireEvent.change(headers, { target: { value: 'Authorization: Bearer abc' } });
    fireEvent.click(screen.getByRole('button', { name: 'Add server' }));
    await waitFor(() => expect(sent.some((s) => s.method === 'POST')).toBe(true));
    expect(sent.find((s) => s.method === 'POST')?.body).toEqual({
      name: 'docs',
      url: 'https://docs.example.com/mcp',
      secrets: { Authorization: 'Bearer abc' },
    });
  });

  it('reads secrets split at the first = or :', () => {
    expect(parseSecrets('A=b=c\nX-Key: v:w\n\n')).toEqual({ A: 'b=c', 'X-Key': 'v:w' });
    expect(parseSecrets('nothing')).toMatch(/not NAME=value/);
  });
});
