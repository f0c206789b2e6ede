import { useEffect, useRef, useState, type FormEvent } from 'react';
import { Link, useNavigate } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { routeExists } from '../../api/access';
import { useRefreshMe } from '../../auth/session';
import { assertPasskey, passkeysAvailable } from '../../auth/webauthn';
import { Field, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';
import { SecondStep, type Pending } from './SecondStep';
import { Centered } from './Centered';

// Buttons follow the route table: no SSO route on the server, no SSO button.
const SSO_START = '/api/auth/sso/start';
const hasSso = routeExists(`GET ${SSO_START}`);

export function SignIn({ onSignedIn, title = 'Sign in to Palisade' }: { onSignedIn?: () => void; title?: string }) {
  const navigate = useNavigate();
  const refresh = useRefreshMe();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [pending, setPending] = useState<Pending | null>(null);
  const [ssoOpen, setSsoOpen] = useState(false);
  const social = useQuery({ queryKey: ['social-providers'], queryFn: () => call(api.GET('/api/auth/social/providers')) });
  const handover = useRef(false);

  const signedIn = () => {
    void refresh();
    if (onSignedIn) onSignedIn();
    else navigate('/', { replace: true });
  };

  // Back from SSO or a social provider with a second step still owed: the single-use handover
  // code comes in the query of the returnTo page (this one: a signed-out `/` would drop it on its
  // way here); it leaves the address bar before anything else happens. A completed sign-in lands
  // here signed in and goes on to `/`.
  useEffect(() => {
    const params = new URLSearchParams(window.location.search);
    const code = params.get('sso_handover');
    if (!code || handover.current) return;
    handover.current = true;
    window.history.replaceState(null, '', window.location.pathname);
    call(api.POST('/api/auth/sso/handover', { body: { code } })).then(setPending, setError);
  }, []);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const answer = await call(api.POST('/api/auth/login', { body: { email, password } }));
      if ('mfaRequired' in answer) setPending(answer);
      else signedIn();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const passkeyFirst = async () => {
    setError(null);
    try {
      const started = await call(api.POST('/api/auth/passkey/options', { body: {} }));
      const response = await assertPasskey(started.options);
      await call(api.POST('/api/auth/passkey/login', { body: { ceremonyToken: started.ceremonyToken, response } }));
      signedIn();
    } catch (err) {
      setError(err);
    }
  };

  // A navigation, not a form submission: the CSP's form-action 'self' also holds for the
  // redirect a submitted form follows, and the start redirects to the IdP's own origin.
  const startSso = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const email = new FormData(e.currentTarget).get('email');
    const query = new URLSearchParams({ email: typeof email === 'string' ? email : '', returnTo: '/sign-in' });
    window.location.assign(`${SSO_START}?${query.toString()}`);
  };

  if (pending) {
    return (
      <Centered title="Sign in">
        <SecondStep pending={pending} onSignedIn={signedIn} />
      </Centered>
    );
  }
  return (
    <Centered title={title}>
      <form onSubmit={(e) => void submit(e)} aria-label="Sign in with a password">
        <Field label="Email" type="email" autoComplete="username" field="email" error={error} value={email} onChange={(e) => setEmail(e.target.value)} required autoFocus />
        <Field label="Password" type="password" autoComplete="current-password" field="password" error={error} value={password} onChange={(e) => setPassword(e.target.value)} required />
        <ProblemView error={error} />
        <Submit busy={busy}>Sign in</Submit>
      </form>
      <div className="alternatives">
        {passkeysAvailable() ? <button type="button" onClick={() => void passkeyFirst()}>Sign in with a passkey</button> : null}
        {hasSso ? (
          ssoOpen ? (
            <form onSubmit={startSso} aria-label="Single sign-on">
              <Field label="Work email" type="email" name="email" autoComplete="username" required />
              <button type="submit">Continue with SSO</button>
            </form>
          ) : (
            <button type="button" onClick={() => setSsoOpen(true)}>Sign in with SSO</button>
          )
        ) : null}
        {social.data?.providers.map((p) => (
          <a key={p.id} className="button" href={`${p.start}?returnTo=%2Fsign-in`}>
            Continue with {p.name}
          </a>
        ))}
      </div>
      <p className="links">
        <Link to="/reset-password">Forgot your password?</Link> · <Link to="/sign-up">Create an account</Link>
      </p>
    </Centered>
  );
}
