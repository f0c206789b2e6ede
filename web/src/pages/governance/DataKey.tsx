import { useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import type { MyOrg } from '../../auth/session';
import { ProblemView } from '../../ui/problem';
import { Loading, when } from '../../ui/table';

const PHASE: Record<string, string> = {
  pass: 'Re-encrypting sealed values',
  wait: 'Every value passed; waiting for the final sweep (other servers may still have sealed with the old key)',
  sweep: 'Final sweep',
};

/** The org's data key: its state, the latest rotation's progress (polled while it runs) and, for owners, rotation. */
export function DataKey({ org, orgId }: { org: MyOrg | null | undefined; orgId: string }) {
  const state = useQuery({
    queryKey: ['data-key', orgId],
    queryFn: () => call(api.GET('/api/orgs/{orgId}/security/data-key', { params: { path: { orgId } } })),
    refetchInterval: (q) => (q.state.data?.rotation?.status === 'running' ? 2000 : false),
  });
  const [confirming, setConfirming] = useState(false);
  const rotate = useAction(
    () => call(api.POST('/api/orgs/{orgId}/security/rotate-data-key', { params: { path: { orgId } } })),
    { invalidate: [['data-key', orgId], ['audit', orgId]], onSuccess: () => setConfirming(false) },
  );
  const mayRotate = can(org, 'POST /api/orgs/{orgId}/security/rotate-data-key');
  const rollback = useAction(
    () => call(api.POST('/api/orgs/{orgId}/security/rollback-data-key', { params: { path: { orgId } } })),
    { invalidate: [['data-key', orgId], ['audit', orgId]] },
  );
  const mayRollback = can(org, 'POST /api/orgs/{orgId}/security/rollback-data-key');
  if (state.isPending) return <Loading what="the data key" />;
  if (!state.data) return <ProblemView error={state.error} />;
  const { activeKey, rotation, retiredKeys, settings } = state.data;
  const running = rotation?.status === 'running';
  const pct = rotation ? (rotation.total === 0 ? 100 : Math.floor((rotation.done / rotation.total) * 100)) : 0;
  return (
    <section aria-labelledby="data-key">
      <h2 id="data-key">Data encryption key</h2>
      {activeKey ? (
        <p>
          Active key <code>{activeKey.id.slice(0, 8)}</code>, created {when(activeKey.createdAt)}.{' '}
          {activeKey.nextRotationAt ? <>Next scheduled rotation: {when(activeKey.nextRotationAt)}.</> : <>Scheduled rotation is off.</>}
        </p>
      ) : (
        <p>No data key yet: one is created when the organization first stores a secret.</p>
      )}
      {rotation ? (
        <div role="region" aria-label="Rotation progress">
          <p>
            {rotation.trigger === 'rollback' ? 'Rollback' : 'Rotation'} started {when(rotation.startedAt)}:{' '}
            <strong>{running ? PHASE[rotation.phase] : rotation.status === 'done' ? 'done' : 'replaced by a rollback'}</strong>
            {rotation.finishedAt ? <>, finished {when(rotation.finishedAt)}</> : null}.
          </p>
          <label htmlFor="rotation-progress">Values re-encrypted: {rotation.done} of {rotation.total}</label>{' '}
          <progress id="rotation-progress" max={100} value={pct}>{pct}%</progress>
        </div>
      ) : null}
      {retiredKeys.length > 0 ? (
        <ul aria-label="Retired keys">
          {retiredKeys.map((k) => (
            <li key={k.id}>
              <code>{k.id.slice(0, 8)}</code>:{' '}
              {k.destroyedAt ? <>destroyed {when(k.destroyedAt)}</> : <>can be made active again until {when(k.destroyAfter)}, then destroyed</>}
            </li>
          ))}
        </ul>
      ) : null}
      {mayRotate && activeKey ? (
        confirming ? (
          <div role="alert" className="warning">
            <p>
              <strong>Rotate the data key?</strong> New secrets are sealed with a new key at once and existing ones are re-encrypted in the
              background. The old key stays {settings.rollbackDays} days for a rollback (below, or <code>palisade keys rollback-data-key</code>), then it is destroyed.
            </p>
            <button type="button" disabled={rotate.isPending} onClick={() => rotate.mutate(undefined)}>Rotate now</button>
            <button type="button" onClick={() => setConfirming(false)}>Cancel</button>
          </div>
        ) : (
          <button type="button" disabled={running} onClick={() => setConfirming(true)}>Rotate data key</button>
        )
      ) : null}
      {mayRollback && retiredKeys.some((k) => !k.destroyedAt) ? (
        <button type="button" disabled={rollback.isPending} onClick={() => {
          if (window.confirm('Make the most recently retired key active again? Values are re-encrypted back under it in the background.')) rollback.mutate(undefined);
        }}>Roll back to the previous key</button>
      ) : null}
      <ProblemView error={rotate.error} />
      <ProblemView error={rollback.error} />
    </section>
  );
}
