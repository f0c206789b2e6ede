import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { Loading, Paged, when } from '../../ui/table';
import { ProblemView } from '../../ui/problem';

/** One endpoint's delivery log (newest first, the last 100) with redeliver. */
export function Deliveries({ orgId, endpointId, mayRedeliver }: { orgId: string; endpointId: string; mayRedeliver: boolean }) {
  const key = ['org', orgId, 'webhooks', endpointId, 'deliveries'];
  const log = useQuery({
    queryKey: key,
    queryFn: () => call(api.GET('/api/orgs/{orgId}/webhooks/{endpointId}/deliveries', { params: { path: { orgId, endpointId }, query: { limit: 100 } } })),
  });
  const redeliver = useAction(
    (deliveryId: string) =>
      call(api.POST('/api/orgs/{orgId}/webhooks/{endpointId}/deliveries/{deliveryId}/redeliver', { params: { path: { orgId, endpointId, deliveryId } } })),
    { invalidate: [key] },
  );
  if (log.isPending) return <Loading what="deliveries" />;
  return (
    <>
      <ProblemView error={log.error ?? redeliver.error} />
      <Paged
        label="Deliveries"
        empty="No deliveries yet."
        items={log.data?.deliveries ?? []}
        render={(d) => {
          const last = d.attempts[d.attempts.length - 1];
          return (
            <li key={d.id}>
              <code>{d.eventType}</code> — {d.status} · response {last?.status ?? 'none'} · {d.attempts.length} attempt(s) · {when(d.createdAt)}
              {last?.error ? <> · {last.error}</> : null}
              {mayRedeliver && d.status !== 'pending' ? (
                <button type="button" disabled={redeliver.isPending} onClick={() => redeliver.mutate(d.id)}>
                  Redeliver
                </button>
              ) : null}
            </li>
          );
        }}
      />
    </>
  );
}
