import { createContext, useCallback, useContext, useEffect, useRef, useState, type FormEvent, type ReactNode } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, call, isProblem } from '../api/client';
import { Field, Submit } from '../ui/form';
import { ProblemView } from '../ui/problem';
import { assertPasskey } from './webauthn';

type Ask = () => Promise<void>;
const StepUpContext = createContext<Ask | null>(null);

/**
 * Step-up is a flow, not an error: an action answered `step_up_required` opens this dialog,
 * which proves the viewer again (second factor, or the password of an account without one),
 * and the action is retried once. Cancelling fails the action with the original problem.
 */
export function StepUpProvider({ children }: { children: ReactNode }) {
  // Every action waiting on a proof (two can ask at once): one dialog settles them all.
  const [waiting, setWaiting] = useState<{ resolve: () => void; reject: () => void }[]>([]);
  const ask = useCallback<Ask>(() => new Promise<void>((resolve, reject) => setWaiting((w) => [...w, { resolve, reject }])), []);
  const settle = (ok: boolean) => {
    setWaiting((w) => {
      for (const x of w) (ok ? x.resolve : x.reject)();
      return [];
    });
  };
  return (
    <StepUpContext.Provider value={ask}>
      {children}
      {waiting.length > 0 ? <StepUpDialog onDone={() => settle(true)} onCancel={() => settle(false)} /> : null}
    </StepUpContext.Provider>
  );
}

/** Runs `action`; on step_up_required, asks for proof and runs it once more. */
export function useWithStepUp() {
  const ask = useContext(StepUpContext);
  return useCallback(
    async <T,>(action: () => Promise<T>): Promise<T> => {
      try {
        return await action();
      } catch (err) {
        if (!ask || !isProblem(err, 'step_up_required')) throw err;
        try {
          await ask();
        } catch {
          throw err;
        }
        return action();
      }
    },
    [ask],
  );
}

function StepUpDialog({ onDone, onCancel }: { onDone: () => void; onCancel: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const factors = useQuery({ queryKey: ['me', 'mfa'], queryFn: () => call(api.GET('/api/me/mfa')) });
  const [mode, setMode] = useState<'code' | 'recovery' | 'password'>('code');
  const [value, setValue] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
  }, []);
  useEffect(() => {
    if (factors.data && !factors.data.enabled) setMode('password');
    else if (factors.data && !factors.data.totp) setMode('recovery');
  }, [factors.data]);

  const run = async (proof: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await proof();
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body = mode === 'code' ? { code: value.trim() } : mode === 'recovery' ? { recoveryCode: value.trim() } : { password: value };
    void run(() => call(api.POST('/api/auth/step-up', { body })));
  };
  const passkey = () =>
    run(async () => {
      const started = await call(api.POST('/api/me/passkeys/assertion-options'));
      const response = await assertPasskey(started.options);
      await call(api.POST('/api/auth/step-up/passkey', { body: { ceremonyToken: started.ceremonyToken, response } }));
    });

  const label = mode === 'code' ? 'Code from your authenticator app' : mode === 'recovery' ? 'Recovery code' : 'Your password';
  return (
    <dialog ref={ref} aria-labelledby="step-up-title" onCancel={(e) => { e.preventDefault(); onCancel(); }}>
      <form onSubmit={submit}>
        <h2 id="step-up-title">Confirm it is you</h2>
        <p>This action is sensitive. Prove your identity again to continue; it counts for ten minutes.</p>
        <Field
          label={label}
          type={mode === 'password' ? 'password' : 'text'}
          autoComplete={mode === 'password' ? 'current-password' : 'one-time-code'}
          inputMode={mode === 'code' ? 'numeric' : undefined}
          value={value}
          onChange={(e) => setValue(e.target.value)}
          required
          autoFocus
        />
        <ProblemView error={error} />
        <div className="row">
          <Submit busy={busy}>Confirm</Submit>
          <button type="button" onClick={onCancel}>Cancel</button>
        </div>
        {factors.data?.enabled ? (
          <div className="row alt">
            {factors.data.totp && mode !== 'code' ? <button type="button" className="link" onClick={() => setMode('code')}>Use the authenticator app</button> : null}
            {mode !== 'recovery' ? <button type="button" className="link" onClick={() => setMode('recovery')}>Use a recovery code</button> : null}
            {factors.data.passkeys > 0 ? <button type="button" className="link" onClick={() => void passkey()}>Use a passkey</button> : null}
          </div>
        ) : null}
      </form>
    </dialog>
  );
}
