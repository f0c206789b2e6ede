import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { ProblemView } from '../../ui/problem';
import { Loading, Paged, when } from '../../ui/table';

const KEY = ['me', 'sessions'];
interface Session { id: string; createdAt: string; lastSeenAt: string; expiresAt: string; ip: string; userAgent: string; current: boolean }

const revokeOne = (sessionId: string) => call(api.DELETE('/api/me/sessions/{sessionId}', { params: { path: { sessionId } } }));

/** Where you are signed in: revoke one session, or every one but this. */
export function Sessions() {
  const list = useQuery({ queryKey: KEY, queryFn: () => call(api.GET('/api/me/sessions')) });
  // One request: the server ends them all at once, and also any session born meanwhile.
  const revokeOthers = useAction((_: void) => call(api.POST('/api/me/sessions/revoke-others')), { invalidate: [KEY] });
  if (list.isPending) return <Loading what="sessions" />;
  if (list.isError) return <ProblemView error={list.error} />;
  const others = list.data.sessions.filter((s) => !s.current);
  return (
    <section aria-labelledby="sessions">
      <h2 id="sessions">Your sessions</h2>
      <Paged items={list.data.sessions} label="Sessions" empty="No sessions." render={(s) => <Row key={s.id} session={s} />} />
      <ProblemView error={revokeOthers.error} />
      {others.length > 0 ? (
        <button type="button" disabled={revokeOthers.isPending} aria-busy={revokeOthers.isPending || undefined} onClick={() => revokeOthers.mutate()}>
          {revokeOthers.isPending ? 'Working…' : 'Sign out all other sessions'}
        </button>
      ) : null}
    </section>
  );
}

function Row({ session }: { session: Session }) {
  const revoke = useAction(() => revokeOne(session.id), { invalidate: [KEY] });
  const where = `${session.userAgent || 'Unknown browser'} from ${session.ip}`;
  return (
    <li>
      <strong>{where}</strong> {session.current ? <span className="badge">This session</span> : null}{' '}
      <span>signed in {when(session.createdAt)}, last seen {when(session.lastSeenAt)}</span>{' '}
      {!session.current ? (
        <button type="button" disabled={revoke.isPending} aria-busy={revoke.isPending || undefined} onClick={() => revoke.mutate(undefined)} aria-label={`Revoke session ${where}, last seen ${when(session.lastSeenAt)}`}>
          {revoke.isPending ? 'Working…' : 'Revoke'}
        </button>
      ) : null}
      <ProblemView error={revoke.error} />
    </li>
  );
}
