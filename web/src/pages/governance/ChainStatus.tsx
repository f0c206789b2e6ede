import { useQuery } from '@tanstack/react-query';
import { api, call, ApiError } from '../../api/client';
import { ProblemView } from '../../ui/problem';
import { when } from '../../ui/table';

/** The hash chain's verification: a whole-chain walk, rate-limited by the server (10 per 5 minutes). */
export function ChainStatus({ orgId }: { orgId: string }) {
  const v = useQuery({
    queryKey: ['audit-verification', orgId],
    queryFn: () => call(api.GET('/api/orgs/{orgId}/audit/verification', { params: { path: { orgId } } })),
    retry: false,
    refetchOnWindowFocus: false,
    staleTime: Infinity,
  });
  const limited = v.error instanceof ApiError && v.error.problem.status === 429;
  return (
    <section aria-labelledby="chain">
      <h2 id="chain">Chain verification</h2>
      {v.data ? (
        <div role="status">
          <p>
            <strong>{v.data.ok ? 'Verified: the chain is intact' : 'Problems found'}</strong> — {v.data.events} events, checked {when(v.data.checkedAt)}
          </p>
          {v.data.problems.length ? <ul aria-label="Chain problems">{v.data.problems.map((p) => <li key={p}>{p}</li>)}</ul> : null}
        </div>
      ) : null}
      {limited ? <p role="alert">Verification is limited to 10 runs per 5 minutes; wait a few minutes and try again.</p> : <ProblemView error={v.error} />}
      <button type="button" disabled={v.isFetching} aria-busy={v.isFetching || undefined} onClick={() => void v.refetch()}>
        {v.isFetching ? 'Verifying…' : 'Verify now'}
      </button>
    </section>
  );
}
