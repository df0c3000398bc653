import { useState, type FormEvent } from 'react';
import { problemMessage } from '../api/client';
import { useSession } from '../session';
import { ForgotPassword } from './Password';
import { Alert } from '../components/Alert';

/** Sign in, or create an account (and be signed in). */
export default function SignIn() {
  const { client } = useSession();
  const [mode, setMode] = useState<'in' | 'up' | 'forgot'>('in');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [name, setName] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (mode === 'in') await client.signIn(email, password);
      else await client.register({ email, password, display_name: name });
    } catch (err) {
      setError(problemMessage(err));
    } finally {
      setBusy(false);
    }
  }

  if (mode === 'forgot') {
    return (
      <main className="mx-auto mt-16 max-w-sm px-4">
        <h1 className="mb-6 text-3xl font-semibold">Cairn</h1>
        <ForgotPassword onDone={() => setMode('in')} />
      </main>
    );
  }
  return (
    <main className="mx-auto mt-16 max-w-sm px-4">
      <h1 className="mb-6 text-3xl font-semibold">Cairn</h1>
      <form onSubmit={(e) => void submit(e)} className="flex flex-col gap-3" aria-label={mode === 'in' ? 'Sign in' : 'Sign up'}>
        {mode === 'up' && (
          <label className="flex flex-col gap-1">
            Your name
            <input className="rounded border px-2 py-1" value={name} onChange={(e) => setName(e.target.value)} required />
          </label>
        )}
        <label className="flex flex-col gap-1">
          E-mail
          <input className="rounded border px-2 py-1" type="email" value={email} onChange={(e) => setEmail(e.target.value)} required autoComplete="username" />
        </label>
        <label className="flex flex-col gap-1">
          Password
          <input
            className="rounded border px-2 py-1"
            type="password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            required
            autoComplete={mode === 'in' ? 'current-password' : 'new-password'}
          />
        </label>
        <Alert message={error} />
        <button type="submit" disabled={busy} className="rounded bg-blue-600 px-3 py-2 text-white disabled:opacity-50">
          {mode === 'in' ? 'Sign in' : 'Create account'}
        </button>
      </form>
      <button type="button" className="mt-4 text-blue-600 underline" onClick={() => setMode(mode === 'in' ? 'up' : 'in')}>
        {mode === 'in' ? 'New here? Create an account' : 'Have an account? Sign in'}
      </button>
      {mode === 'in' && (
        <button type="button" className="mt-2 block text-blue-600 underline" onClick={() => setMode('forgot')}>
          Forgot your password?
        </button>
      )}
    </main>
  );
}
