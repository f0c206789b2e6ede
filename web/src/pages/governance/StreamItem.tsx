import { useState } from 'react';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import type { MyOrg } from '../../auth/session';
import type { paths } from '../../api/schema.gen';
import { ProblemView } from '../../ui/problem';
import { ShownOnce } from '../../ui/secret';
import { when } from '../../ui/table';

type Stream = paths['/api/orgs/{orgId}/audit/streams']['get']['responses'][200]['content']['application/json']['streams'][number];

const STATUS: Record<Stream['status'], string> = { ok: 'OK', retrying: 'Retrying', failing: 'Failing', disabled: 'Disabled' };

function destination(s: Stream): string {
  if (s.kind === 'https') return s.url ?? '';
  const host = (s.host ?? '').includes(':') ? `[${s.host ?? ''}]` : (s.host ?? '');
  return `${s.tls ? 'syslog+tls' : 'syslog'}://${host}:${s.port ?? ''}`;
}

/** One stream: status, lag, last delivery; send a test event, enable/disable, rotate the secret (shown once), delete. */
export function StreamItem({ orgId, org, stream: s }: { orgId: string; org: MyOrg | undefined; stream: Stream }) {
  const [secret, setSecret] = useState<string | null>(null);
  const [tested, setTested] = useState<{ ok: boolean; error: string | null; latencyMs: number } | null>(null);
  const key = ['org', orgId, 'audit-streams'];
  const path = { orgId, streamId: s.id };
  const label = s.description || destination(s);
  const update = useAction((body: { enabled: boolean }) => call(api.PATCH('/api/orgs/{orgId}/audit/streams/{streamId}', { params: { path }, body })), { invalidate: [key] });
  const header = useAction((authorization: null) => call(api.PATCH('/api/orgs/{orgId}/audit/streams/{streamId}', { params: { path }, body: { authorization } })), { invalidate: [key] });
  const test = useAction(() => call(api.POST('/api/orgs/{orgId}/audit/streams/{streamId}/test', { params: { path } })), { invalidate: [key], onSuccess: (r) => setTested(r) });
  const rotate = useAction(() => call(api.POST('/api/orgs/{orgId}/audit/streams/{streamId}/rotate-secret', { params: { path } })), {
    invalidate: [key],
    onSuccess: (r) => setSecret(r.secret),
  });
  const remove = useAction(() => call(api.DELETE('/api/orgs/{orgId}/audit/streams/{streamId}', { params: { path } })), { invalidate: [key] });
  return (
    <li>
      <strong>{destination(s)}</strong> {s.description ? <>— {s.description}</> : null}
      <br />
      <span data-testid="stream-status">Status: {STATUS[s.status]}</span>
      {s.lastError ? <> (<code>{s.lastError}</code>, {s.consecutiveFailures} failed in a row{s.nextAttemptAt ? `, next try ${when(s.nextAttemptAt)}` : ''})</> : null}
      {' · '}lag: {s.lagEvents} event{s.lagEvents === 1 ? '' : 's'}{s.lagEvents > 0 ? `, ${s.lagSeconds} s` : ''}
      {' · '}last delivered: {s.lastDeliveredAt ? when(s.lastDeliveredAt) : 'never'}
      {s.previousSecretExpiresAt ? <> · previous secret signs until {when(s.previousSecretExpiresAt)}</> : null}
      {s.hasAuthorization ? <> · sends an Authorization header</> : null}
      <div className="row">
        {can(org, 'POST /api/orgs/{orgId}/audit/streams/{streamId}/test') ? (
          <button type="button" disabled={test.isPending} aria-busy={test.isPending || undefined} onClick={() => test.mutate(undefined)}>Send a test event to {label}</button>
        ) : null}
        {can(org, 'PATCH /api/orgs/{orgId}/audit/streams/{streamId}') ? (
          <button type="button" disabled={update.isPending} onClick={() => update.mutate({ enabled: !s.enabled })}>{s.enabled ? 'Disable' : 'Enable'} {label}</button>
        ) : null}
        {s.hasAuthorization && can(org, 'PATCH /api/orgs/{orgId}/audit/streams/{streamId}') ? (
          <button type="button" disabled={header.isPending} onClick={() => {
            if (window.confirm(`Stop sending the Authorization header to ${destination(s)}?`)) header.mutate(null);
          }}>Remove Authorization header of {label}</button>
        ) : null}
        {s.kind === 'https' && can(org, 'POST /api/orgs/{orgId}/audit/streams/{streamId}/rotate-secret') ? (
          <button type="button" disabled={rotate.isPending} onClick={() => {
            if (window.confirm('Issue a new signing secret? The previous one keeps signing for 24 hours.')) rotate.mutate(undefined);
          }}>Rotate secret of {label}</button>
        ) : null}
        {can(org, 'DELETE /api/orgs/{orgId}/audit/streams/{streamId}') ? (
          <button type="button" disabled={remove.isPending} onClick={() => {
            if (window.confirm(`Stop streaming to ${destination(s)} and delete the stream? The audit trail itself stays.`)) remove.mutate(undefined);
          }}>Delete {label}</button>
        ) : null}
      </div>
      {tested ? (
        <p role="status">{tested.ok ? `Test event acknowledged in ${tested.latencyMs} ms.` : `Test event not acknowledged: ${tested.error ?? 'unknown error'}.`}</p>
      ) : null}
      <ProblemView error={update.error ?? header.error ?? test.error ?? rotate.error ?? remove.error} />
      {secret ? <ShownOnce label="The new signing secret" value={secret} filename="audit-stream-secret.txt" /> : null}
    </li>
  );
}
