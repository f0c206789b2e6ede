import { useState, type FormEvent } from 'react';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { Field, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';

interface Enrollment { secret: string; otpauthUri: string; qrCode: string }

/** The QR code is only ever drawn from an image data: URL (the CSP allows data: images, nothing else inline). */
function safeQr(src: string): string | null {
  return /^data:image\/(png|gif|svg\+xml|jpeg);base64,[A-Za-z0-9+/=]+$/.test(src) ? src : null;
}

/** Enrolling an authenticator app: the secret (QR and text) lives in memory until confirmed. */
export function TotpEnroll({ onConfirmed }: { onConfirmed: (codes: string[]) => void }) {
  const [enrollment, setEnrollment] = useState<Enrollment | null>(null);
  const [code, setCode] = useState('');
  const start = useAction(() => call(api.POST('/api/me/mfa/totp')), { onSuccess: (e) => setEnrollment(e) });
  const confirm = useAction((c: string) => call(api.POST('/api/me/mfa/totp/confirm', { body: { code: c } })), {
    invalidate: [['me', 'mfa']],
    onSuccess: (r) => { setEnrollment(null); setCode(''); onConfirmed(r.recoveryCodes); },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    confirm.mutate(code.trim());
  };
  const qr = enrollment ? safeQr(enrollment.qrCode) : null;
  return (
    <section aria-labelledby="totp">
      <h2 id="totp">Authenticator app</h2>
      {!enrollment ? (
        <>
          <p>Use an authenticator app for a six-digit code at each sign-in.</p>
          <ProblemView error={start.error} />
          <button type="button" disabled={start.isPending} aria-busy={start.isPending || undefined} onClick={() => start.mutate(undefined)}>
            {start.isPending ? 'Working…' : 'Set up an authenticator app'}
          </button>
        </>
      ) : (
        <form onSubmit={submit}>
          <p>Scan this code with your app, or type the secret in by hand.</p>
          {qr ? <img className="qr" src={qr} alt="QR code for your authenticator app" width={200} height={200} /> : null}
          <p>
            Secret: <code data-testid="totp-secret">{enrollment.secret}</code>
          </p>
          <Field label="Six-digit code from the app" inputMode="numeric" autoComplete="one-time-code" field="code" error={confirm.error} value={code} onChange={(e) => setCode(e.target.value)} required />
          <ProblemView error={confirm.error} />
          <Submit busy={confirm.isPending}>Confirm</Submit>
        </form>
      )}
    </section>
  );
}
