import { useState, type FormEvent } from 'react';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { useMe } from '../../auth/session';
import { Field, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';

export function Profile() {
  const me = useMe();
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [done, setDone] = useState(false);
  const change = useAction(
    (body: { currentPassword: string; newPassword: string }) => call(api.POST('/api/me/password', { body })),
    { onSuccess: () => { setDone(true); setCurrent(''); setNext(''); } },
  );
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setDone(false);
    change.mutate({ currentPassword: current, newPassword: next });
  };
  return (
    <>
      <section aria-labelledby="who">
        <h2 id="who">You</h2>
        <dl className="facts">
          <dt>Name</dt>
          <dd>{me.user.name}</dd>
          <dt>Email</dt>
          <dd>{me.user.email}</dd>
        </dl>
      </section>
      <section aria-labelledby="pw">
        <h2 id="pw">Change password</h2>
        <form onSubmit={submit}>
          <Field label="Current password" type="password" autoComplete="current-password" field="currentPassword" error={change.error} value={current} onChange={(e) => setCurrent(e.target.value)} required />
          <Field label="New password" type="password" autoComplete="new-password" field="newPassword" error={change.error} value={next} onChange={(e) => setNext(e.target.value)} required />
          <ProblemView error={change.error} />
          {done ? <p role="status">Password changed. Your other sessions were signed out.</p> : null}
          <Submit busy={change.isPending}>Change password</Submit>
        </form>
      </section>
    </>
  );
}
