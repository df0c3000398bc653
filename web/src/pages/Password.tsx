import { useState, type FormEvent } from 'react';
import { problemMessage } from '../api/client';
import { useSession } from '../session';
import { Alert } from '../components/Alert';
import { DeleteAccount } from './Deletion';

/** A password input with its label (required unless told otherwise). */
export function PasswordField(props: {
  label: string;
  autoComplete: string;
  value: string;
  onChange: (value: string) => void;
  required?: boolean;
  disabled?: boolean;
  placeholder?: string;
}) {
  return (
    <label className="flex flex-col gap-1">
      {props.label}
      <input
        className="rounded border px-2 py-1"
        type="password"
        autoComplete={props.autoComplete}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value)}
        required={props.required ?? true}
        disabled={props.disabled}
        placeholder={props.placeholder}
      />
    </label>
  );
}

/** "Forgot your password?": asks for the e-mail and sends the link. */
export function ForgotPassword({ onDone }: { onDone: () => void }) {
  const { client } = useSession();
  const [email, setEmail] = useState('');
  const [sent, setSent] = useState(false);
  const [error, setError] = useState<string | null>(null);
  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    try {
      await client.call('POST', '/api/v1/auth/password/forgot', { email });
      setSent(true);
    } catch (err) {
      setError(problemMessage(err));
    }
  }
  if (sent) {
    return (
      <p role="status">
        If an account uses {email}, a link to choose a new password is on its way.{' '}
        <button type="button" className="text-blue-600 underline" onClick={onDone}>
          Back to sign in
        </button>
      </p>
    );
  }
  return (
    <form onSubmit={(e) => void submit(e)} className="flex flex-col gap-2" aria-label="Forgot password">
      <label className="flex flex-col gap-1">
        Your account's e-mail
        <input className="rounded border px-2 py-1" type="email" value={email} onChange={(e) => setEmail(e.target.value)} required />
      </label>
      <Alert message={error} />
      <button type="submit" className="rounded bg-blue-600 px-3 py-2 text-white">
        Send me a link
      </button>
    </form>
  );
}

/** The page the e-mailed link opens (`/reset-password#token=…`). */
export function ResetPassword({ token }: { token: string }) {
  const { client } = useSession();
  const [password, setPassword] = useState('');
  const [done, setDone] = useState(false);
  const [error, setError] = useState<string | null>(null);
  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    try {
      await client.call('POST', '/api/v1/auth/password/reset', { token, new_password: password });
      setDone(true);
    } catch (err) {
      setError(problemMessage(err));
    }
  }
  return (
    <main className="mx-auto mt-16 max-w-sm px-4">
      <h1 className="mb-6 text-2xl font-semibold">Choose a new password</h1>
      {done ? (
        <p role="status">
          Your password was changed. <a className="text-blue-600 underline" href="/">Sign in</a>
        </p>
      ) : (
        <form onSubmit={(e) => void submit(e)} className="flex flex-col gap-2" aria-label="Choose a new password">
          <PasswordField label="New password" autoComplete="new-password" value={password} onChange={setPassword} />
          <Alert message={error} />
          <button type="submit" className="rounded bg-blue-600 px-3 py-2 text-white">
            Set the new password
          </button>
        </form>
      )}
    </main>
  );
}

/** The signed-in user's account: change the password. */
export function Account() {
  const { client } = useSession();
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [status, setStatus] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    setStatus(null);
    try {
      await client.changePassword(current, next);
      setCurrent('');
      setNext('');
      setStatus('Your password was changed.');
    } catch (err) {
      setError(problemMessage(err));
    }
  }
  return (
    <section aria-labelledby="account-heading" className="flex flex-col gap-3">
      <a href="#/" className="text-sm text-blue-600 underline">
        ← Projects
      </a>
      <h2 id="account-heading" className="text-xl font-semibold">
        Your account
      </h2>
      <form onSubmit={(e) => void submit(e)} className="flex max-w-sm flex-col gap-2" aria-label="Change password">
        <PasswordField label="Current password" autoComplete="current-password" value={current} onChange={setCurrent} />
        <PasswordField label="New password" autoComplete="new-password" value={next} onChange={setNext} />
        <Alert message={error} />
        {status && <p role="status">{status}</p>}
        <button type="submit" className="rounded bg-blue-600 px-3 py-2 text-white">
          Change password
        </button>
      </form>
      <DeleteAccount />
    </section>
  );
}
