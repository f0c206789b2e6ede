import { useEffect, useRef, useState, type FormEvent } from 'react';
import { Link, useNavigate } from 'react-router';
import { api, call } from '../../api/client';
import { useMeQuery, useRefreshMe } from '../../auth/session';
import { Field, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';
import { Centered, takeFragmentToken } from './Centered';
import { SecondStep, type Pending } from './SecondStep';
import { SignIn } from './SignIn';

/** The link of the verification mail: the password proves the one following it owns the account. */
export function VerifyEmail() {
  const [token] = useState(takeFragmentToken);
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!token) return;
    setBusy(true);
    setError(null);
    try {
      await call(api.POST('/api/auth/verify-email', { body: { token, password } }));
      setDone(true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  if (!token) return <Centered title="Verify your email"><p>This page opens from the link in the verification mail.</p></Centered>;
  if (done) return <Centered title="Email verified"><p role="status">Your address is verified.</p><p><Link to="/sign-in">Sign in</Link></p></Centered>;
  return (
    <Centered title="Verify your email">
      <form onSubmit={(e) => void submit(e)}>
        <Field label="Your password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required autoFocus />
        <ProblemView error={error} />
        <Submit busy={busy}>Verify</Submit>
      </form>
    </Centered>
  );
}

/** A magic sign-in link: redeemed once, on open. */
export function MagicLink() {
  const navigate = useNavigate();
  const refresh = useRefreshMe();
  const [error, setError] = useState<unknown>(null);
  const [pending, setPending] = useState<Pending | null>(null);
  const started = useRef(false);
  useEffect(() => {
    if (started.current) return;
    started.current = true;
    const token = takeFragmentToken();
    if (!token) return setError('none');
    call(api.POST('/api/auth/magic-link/verify', { body: { token } })).then((answer) => {
      if ('mfaRequired' in answer) setPending(answer);
      else {
        void refresh();
        navigate('/', { replace: true });
      }
    }, setError);
  }, [navigate, refresh]);
  const finish = () => {
    void refresh();
    navigate('/', { replace: true });
  };
  return (
    <Centered title="Signing you in">
      {pending ? (
        <SecondStep pending={pending} onSignedIn={finish} />
      ) : error === 'none' ? (
        <p>This page opens from the link in the sign-in mail. <Link to="/sign-in">Go to sign-in</Link></p>
      ) : error ? (
        <>
          <ProblemView error={error} />
          <p><Link to="/sign-in">Go to sign-in</Link></p>
        </>
      ) : (
        <p role="status">Checking the link…</p>
      )}
    </Centered>
  );
}

/** An invitation link: accepted by the signed-in account whose address it was sent to. */
export function AcceptInvitation() {
  const navigate = useNavigate();
  const refresh = useRefreshMe();
  const me = useMeQuery();
  const [token] = useState(takeFragmentToken);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  if (!token) return <Centered title="Invitation"><p>This page opens from the link in the invitation mail.</p></Centered>;
  if (me.isPending) return <Centered title="Invitation"><p role="status">Loading…</p></Centered>;
  if (!me.data) {
    return (
      <>
        <SignIn title="Sign in to accept the invitation" onSignedIn={() => void me.refetch()} />
        <p className="links centered-note">
          No account yet? <Link to="/sign-up">Create one</Link> with the invited address, verify it, then open the invitation link again.
        </p>
      </>
    );
  }
  const accept = async () => {
    setBusy(true);
    setError(null);
    try {
      const joined = await call(api.POST('/api/invitations/accept', { body: { token } }));
      await refresh();
      navigate(`/orgs/${joined.orgId}/members`, { replace: true });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Centered title="Join the organization">
      <p>Signed in as {me.data.user.email}. Accept the invitation sent to this address?</p>
      <ProblemView error={error} />
      <button type="button" disabled={busy} onClick={() => void accept()}>Accept invitation</button>
    </Centered>
  );
}
