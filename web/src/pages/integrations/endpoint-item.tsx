import { useState } from 'react';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import type { MyOrg } from '../../auth/session';
import type { paths } from '../../api/schema.gen';
import { ProblemView } from '../../ui/problem';
import { ShownOnce } from '../../ui/secret';
import { when } from '../../ui/table';
import { Deliveries } from './deliveries';
import { EndpointForm, type EndpointDraft } from './endpoint-form';

type Endpoint = paths['/api/orgs/{orgId}/webhooks']['get']['responses'][200]['content']['application/json']['endpoints'][number];

/** One endpoint: its state, edit, enable/disable, rotate secret (shown once), delete, its delivery log. */
export function EndpointItem({ orgId, org, endpoint: e }: { orgId: string; org: MyOrg | undefined; endpoint: Endpoint }) {
  const [open, setOpen] = useState<'none' | 'edit' | 'log'>('none');
  const [secret, setSecret] = useState<string | null>(null);
  const key = ['org', orgId, 'webhooks'];
  const path = { orgId, endpointId: e.id };
  const update = useAction(
    (body: Partial<EndpointDraft> & { enabled?: boolean }) => call(api.PATCH('/api/orgs/{orgId}/webhooks/{endpointId}', { params: { path }, body })),
    { invalidate: [key], onSuccess: () => setOpen('none') },
  );
  const rotate = useAction(() => call(api.POST('/api/orgs/{orgId}/webhooks/{endpointId}/rotate-secret', { params: { path } })), {
    invalidate: [key],
    onSuccess: (r) => setSecret(r.secret),
  });
  const remove = useAction(() => call(api.DELETE('/api/orgs/{orgId}/webhooks/{endpointId}', { params: { path } })), { invalidate: [key] });
  const mayEdit = can(org, 'PATCH /api/orgs/{orgId}/webhooks/{endpointId}');
  const label = e.description || e.url;
  return (
    <li>
      <strong>{e.url}</strong> {e.description ? <>— {e.description}</> : null}
      <br />
      {e.enabled ? 'Enabled' : `Disabled (${e.disabledReason ?? 'manual'})`} · events: {e.events.join(', ')} · failures in a row: {e.consecutiveFailures}
      {e.previousSecretExpiresAt ? <> · previous secret signs until {when(e.previousSecretExpiresAt)}</> : null}
      <div className="row">
        <button type="button" aria-expanded={open === 'log'} onClick={() => setOpen(open === 'log' ? 'none' : 'log')}>Deliveries of {label}</button>
        {mayEdit ? (
          <>
            <button type="button" aria-expanded={open === 'edit'} onClick={() => setOpen(open === 'edit' ? 'none' : 'edit')}>Edit {label}</button>
            <button type="button" disabled={update.isPending} onClick={() => update.mutate({ enabled: !e.enabled })}>{e.enabled ? 'Disable' : 'Enable'} {label}</button>
          </>
        ) : null}
        {can(org, 'POST /api/orgs/{orgId}/webhooks/{endpointId}/rotate-secret') ? (
          <button type="button" disabled={rotate.isPending} aria-busy={rotate.isPending || undefined} onClick={() => {
            if (window.confirm('Issue a new signing secret? The previous one keeps signing for 24 hours.')) rotate.mutate(undefined);
          }}>Rotate secret of {label}</button>
        ) : null}
        {can(org, 'DELETE /api/orgs/{orgId}/webhooks/{endpointId}') ? (
          <button type="button" disabled={remove.isPending} onClick={() => {
            if (window.confirm(`Delete the endpoint ${e.url} and its delivery log?`)) remove.mutate(undefined);
          }}>Delete {label}</button>
        ) : null}
      </div>
      <ProblemView error={update.error ?? rotate.error ?? remove.error} />
      {secret ? <ShownOnce label="The new signing secret" value={secret} filename="webhook-secret.txt" /> : null}
      {open === 'edit' ? (
        <EndpointForm initial={{ url: e.url, description: e.description, events: e.events }} busy={update.isPending} error={update.error} submitLabel="Save endpoint" onSubmit={(d) => update.mutate(d)} />
      ) : null}
      {open === 'log' ? <Deliveries orgId={orgId} endpointId={e.id} mayRedeliver={can(org, 'POST /api/orgs/{orgId}/webhooks/{endpointId}/deliveries/{deliveryId}/redeliver')} /> : null}
    </li>
  );
}
