import { useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import { api, call } from '../../api/client';
import { Field, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';
import { Centered } from './Centered';

export function SignUp() {
  const [form, setForm] = useState({ name: '', email: '', password: '' });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await call(api.POST('/api/auth/register', { body: form }));
      setDone(true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  if (done) {
    return (
      <Centered title="Check your mail">
        <p role="status">If the address can be registered, a verification link is on its way to {form.email}. Follow it to finish.</p>
        <p><Link to="/sign-in">Back to sign-in</Link></p>
      </Centered>
    );
  }
  return (
    <Centered title="Create an account">
      <form onSubmit={(e) => void submit(e)}>
        <Field label="Name" autoComplete="name" field="name" error={error} value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} required autoFocus />
        <Field label="Email" type="email" autoComplete="email" field="email" error={error} value={form.email} onChange={(e) => setForm({ ...form, email: e.target.value })} required />
        <Field
          label="Password"
          type="password"
          autoComplete="new-password"
          field="password"
          error={error}
          hint="At least 12 characters; common and breached passwords are refused."
          value={form.password}
          onChange={(e) => setForm({ ...form, password: e.target.value })}
          required
        />
        <ProblemView error={error} />
        <Submit busy={busy}>Create account</Submit>
      </form>
      <p className="links"><Link to="/sign-in">I have an account</Link></p>
    </Centered>
  );
}
