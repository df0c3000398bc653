import { useState, type FormEvent } from 'react';
import { problemMessage } from '../api/client';
import { useSession } from '../session';
import { ForgotPassword } from './Password';
import { Alert } from '../components/Alert';
import { Button, Card, Field, Input } from '../components/ui';

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

  const brand = (
    <div className="mb-6 flex flex-col gap-1 text-center">
      <h1 className="text-3xl font-semibold text-zinc-900 dark:text-zinc-50">Cairn</h1>
      <p className="text-sm text-zinc-600 dark:text-zinc-400">Give an agent a task; watch it plan, code and deliver — with your team.</p>
    </div>
  );
  if (mode === 'forgot') {
    return (
      <main className="mx-auto mt-16 max-w-sm px-4">
        {brand}
        <Card>
          <ForgotPassword onDone={() => setMode('in')} />
        </Card>
      </main>
    );
  }
  return (
    <main className="mx-auto mt-16 max-w-sm px-4">
      {brand}
      <Card>
        <form onSubmit={(e) => void submit(e)} className="flex flex-col gap-3" aria-label={mode === 'in' ? 'Sign in' : 'Sign up'}>
          {mode === 'up' && (
            <Field label="Your name" htmlFor="sign-name">
              <Input id="sign-name" value={name} onChange={(e) => setName(e.target.value)} required autoComplete="name" />
            </Field>
          )}
          <Field label="E-mail" htmlFor="sign-email">
            <Input id="sign-email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} required autoComplete="username" />
          </Field>
          <Field label="Password" htmlFor="sign-password">
            <Input
              id="sign-password"
              type="password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              required
              autoComplete={mode === 'in' ? 'current-password' : 'new-password'}
            />
          </Field>
          <Alert message={error} />
          <Button type="submit" variant="primary" disabled={busy}>
            {mode === 'in' ? 'Sign in' : 'Create account'}
          </Button>
        </form>
      </Card>
      <div className="mt-4 flex flex-col items-center gap-2 text-sm">
        <Button variant="ghost" onClick={() => setMode(mode === 'in' ? 'up' : 'in')}>
          {mode === 'in' ? 'New here? Create an account' : 'Have an account? Sign in'}
        </Button>
        {mode === 'in' && (
          <Button variant="ghost" onClick={() => setMode('forgot')}>
            Forgot your password?
          </Button>
        )}
      </div>
    </main>
  );
}
