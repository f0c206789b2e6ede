import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { Field, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';
import { Loading } from '../../ui/table';
import { ShownOnce } from '../../ui/secret';
import { TotpEnroll } from './TotpEnroll';

const MFA = ['me', 'mfa'];

/** Two-factor security: status, authenticator app enrollment, recovery codes, turning it off. */
export function Security() {
  const status = useQuery({ queryKey: MFA, queryFn: () => call(api.GET('/api/me/mfa')) });
  // Recovery codes live in this component's memory only, from the answer that carried them.
  const [codes, setCodes] = useState<string[] | null>(null);
  const regenerate = useAction(() => call(api.POST('/api/me/mfa/recovery-codes')), {
    invalidate: [MFA],
    onSuccess: (r) => setCodes(r.recoveryCodes),
  });
  if (status.isPending) return <Loading what="your second factors" />;
  if (status.isError) return <ProblemView error={status.error} />;
  const s = status.data;
  return (
    <>
      <section aria-labelledby="mfa-status">
        <h2 id="mfa-status">Status</h2>
        <dl className="facts">
          <dt>Two-factor sign-in</dt>
          <dd>{s.enabled ? 'On' : 'Off'}</dd>
          <dt>Authenticator app</dt>
          <dd>{s.totp ? 'Enabled' : 'Not set up'}</dd>
          <dt>Passkeys</dt>
          <dd>{s.passkeys}</dd>
          <dt>Recovery codes left</dt>
          <dd>{s.recoveryCodesLeft}</dd>
        </dl>
      </section>
      {codes ? (
        <section aria-labelledby="codes">
          <h2 id="codes">Your recovery codes</h2>
          <ShownOnce label="Recovery codes" value={codes.join('\n')} filename="palisade-recovery-codes.txt" />
          <button type="button" onClick={() => setCodes(null)}>I saved them</button>
        </section>
      ) : null}
      {!s.totp ? <TotpEnroll onConfirmed={setCodes} /> : null}
      {s.enabled ? (
        <section aria-labelledby="regen">
          <h2 id="regen">Recovery codes</h2>
          <p>New codes replace the old ones, which stop working.</p>
          <ProblemView error={regenerate.error} />
          <button type="button" disabled={regenerate.isPending} aria-busy={regenerate.isPending || undefined} onClick={() => regenerate.mutate(undefined)}>
            {regenerate.isPending ? 'Working…' : 'Generate new recovery codes'}
          </button>
        </section>
      ) : null}
      {s.totp ? <Disable /> : null}
    </>
  );
}

/** Turning the app off needs a fresh code (or a recovery code) in the request itself. */
function Disable() {
  const [value, setValue] = useState('');
  const [done, setDone] = useState(false);
  const disable = useAction(
    (body: { code?: string; recoveryCode?: string }) => call(api.POST('/api/me/mfa/disable', { body })),
    { invalidate: [MFA], onSuccess: () => { setDone(true); setValue(''); } },
  );
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const v = value.trim();
    disable.mutate(/^\d{6}$/.test(v) ? { code: v } : { recoveryCode: v });
  };
  return (
    <section aria-labelledby="mfa-off">
      <h2 id="mfa-off">Turn off the authenticator app</h2>
      <form onSubmit={submit}>
        <Field label="Code from your app, or a recovery code" autoComplete="one-time-code" value={value} onChange={(e) => setValue(e.target.value)} required />
        <ProblemView error={disable.error} />
        {done ? <p role="status">The authenticator app is off.</p> : null}
        <Submit busy={disable.isPending}>Turn off</Submit>
      </form>
    </section>
  );
}
