import { useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import { api, call } from '../../api/client';
import { Field, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';
import { Centered, takeFragmentToken } from './Centered';

/** Without a token: ask for a link. With one (from the mail's fragment): choose a new password. */
export function ResetPassword() {
  const [token] = useState(takeFragmentToken);
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);

  const run = async (e: FormEvent, step: () => Promise<unknown>, message: string) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await step();
      setDone(message);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  if (done) {
    return (
      <Centered title="Reset your password">
        <p role="status">{done}</p>
        <p><Link to="/sign-in">Go to sign-in</Link></p>
      </Centered>
    );
  }
  if (token) {
    return (
      <Centered title="Choose a new password">
        <form onSubmit={(e) => void run(e, () => call(api.POST('/api/auth/password-reset/confirm', { body: { token, password } })), 'Your password is changed, and every session of the account was signed out.')}>
          <Field label="New password" type="password" autoComplete="new-password" field="password" error={error} value={password} onChange={(e) => setPassword(e.target.value)} required autoFocus />
          <ProblemView error={error} />
          <Submit busy={busy}>Set password</Submit>
        </form>
      </Centered>
    );
  }
  return (
    <Centered title="Reset your password">
      <form onSubmit={(e) => void run(e, () => call(api.POST('/api/auth/password-reset/request', { body: { email } })), `If ${email} has an account, a reset link is on its way. It works once, for 30 minutes.`)}>
        <Field label="Email" type="email" autoComplete="username" field="email" error={error} value={email} onChange={(e) => setEmail(e.target.value)} required autoFocus />
        <ProblemView error={error} />
        <Submit busy={busy}>Mail me a link</Submit>
      </form>
      <p className="links"><Link to="/sign-in">Back to sign-in</Link></p>
    </Centered>
  );
}
