import { useState, type FormEvent } from 'react';
import { api, call } from '../../api/client';
import { assertPasskey } from '../../auth/webauthn';
import { Field, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';

export interface Pending {
  mfaToken: string;
  methods: readonly ('totp' | 'recoveryCode' | 'passkey')[];
}

/** The second step of a sign-in: a TOTP code, a recovery code or a passkey. */
export function SecondStep({ pending, onSignedIn }: { pending: Pending; onSignedIn: () => void }) {
  const [mode, setMode] = useState<'totp' | 'recoveryCode'>(pending.methods.includes('totp') ? 'totp' : 'recoveryCode');
  const [value, setValue] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const run = async (step: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await step();
      onSignedIn();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body = mode === 'totp' ? { mfaToken: pending.mfaToken, code: value.trim() } : { mfaToken: pending.mfaToken, recoveryCode: value.trim() };
    void run(() => call(api.POST('/api/auth/mfa/verify', { body })));
  };
  const passkey = () =>
    run(async () => {
      const started = await call(api.POST('/api/auth/passkey/options', { body: { mfaToken: pending.mfaToken } }));
      const response = await assertPasskey(started.options);
      await call(api.POST('/api/auth/mfa/passkey', { body: { mfaToken: pending.mfaToken, ceremonyToken: started.ceremonyToken, response } }));
    });

  return (
    <form onSubmit={submit} aria-labelledby="second-step-title">
      <h2 id="second-step-title">Second step</h2>
      <Field
        label={mode === 'totp' ? 'Code from your authenticator app' : 'Recovery code'}
        autoComplete="one-time-code"
        inputMode={mode === 'totp' ? 'numeric' : undefined}
        value={value}
        onChange={(e) => setValue(e.target.value)}
        required
        autoFocus
      />
      <ProblemView error={error} />
      <Submit busy={busy}>Verify</Submit>
      <div className="row alt">
        {mode === 'recoveryCode' && pending.methods.includes('totp') ? <button type="button" className="link" onClick={() => setMode('totp')}>Use the authenticator app</button> : null}
        {mode === 'totp' && pending.methods.includes('recoveryCode') ? <button type="button" className="link" onClick={() => setMode('recoveryCode')}>Use a recovery code</button> : null}
        {pending.methods.includes('passkey') ? <button type="button" className="link" onClick={() => void passkey()}>Use a passkey</button> : null}
      </div>
    </form>
  );
}
