import { useQuery } from '@tanstack/react-query';
import { useNavigate } from 'react-router';
import { api, call, isProblem } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import { useRefreshMe, type MyOrg } from '../../auth/session';
import { ProblemView } from '../../ui/problem';
import { Loading, when } from '../../ui/table';
import { DataExport } from './DataExport';

/**
 * What every page of an org scheduled for deletion shows: when it will be shredded and, for an
 * owner, the restore. The deletion signed everyone out of the org, so a session from before it
 * is sent to sign in again first.
 */
export function DeletionPending({ org }: { org: MyOrg }) {
  const navigate = useNavigate();
  const refresh = useRefreshMe();
  const status = useQuery({
    queryKey: ['org', org.id],
    queryFn: () => call(api.GET('/api/orgs/{orgId}', { params: { path: { orgId: org.id } } })),
    retry: false,
  });
  const restore = useAction(() => call(api.POST('/api/orgs/{orgId}/restore', { params: { path: { orgId: org.id } } })), {
    onSuccess: () => void refresh(),
  });
  const signInAgain = async () => {
    await call(api.POST('/api/auth/logout')).catch(() => undefined);
    await refresh();
    navigate('/sign-in', { replace: true });
  };
  const purgeAfter = status.data?.deletion?.purgeAfter ?? org.deletion?.purgeAfter;
  return (
    <section aria-labelledby="deletion-pending">
      <h2 id="deletion-pending">{org.name} is scheduled for deletion</h2>
      <p role="status">
        On {when(purgeAfter)} its data keys are destroyed and nobody can reach it again. Until then nothing in it can be used.
      </p>
      {status.isPending ? <Loading what="the organization" /> : null}
      {isProblem(status.error, 'session_expired') ? (
        <>
          <p>The deletion signed everyone out of {org.name}, you included. Sign in again to {can(org, 'POST /api/orgs/{orgId}/restore') ? 'restore it' : 'see it'}.</p>
          <button type="button" onClick={() => void signInAgain()}>Sign in again</button>
        </>
      ) : status.error ? <ProblemView error={status.error} /> : null}
      {status.data && can(org, 'POST /api/orgs/{orgId}/restore') ? (
        <>
          <p>Restoring brings back everything as it was, except API keys: they stay revoked.</p>
          <button type="button" disabled={restore.isPending} aria-busy={restore.isPending || undefined} onClick={() => restore.mutate(undefined)}>
            Restore {org.name}
          </button>
        </>
      ) : null}
      <ProblemView error={restore.error} />
      {status.data && can(org, 'POST /api/orgs/{orgId}/exports') ? <DataExport orgId={org.id} /> : null}
    </section>
  );
}
