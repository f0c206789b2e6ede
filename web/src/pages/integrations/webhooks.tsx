import { useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { useParams } from 'react-router';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import { useOrg } from '../../auth/session';
import { Loading, Paged } from '../../ui/table';
import { ProblemView } from '../../ui/problem';
import { ShownOnce } from '../../ui/secret';
import { EndpointForm, type EndpointDraft } from './endpoint-form';
import { EndpointItem } from './endpoint-item';
import { InboundSources } from './inbound';

/** The org's outbound webhook endpoints (the signing secret shown once) and inbound sources. */
export function WebhooksPage() {
  const { orgId = '' } = useParams();
  const org = useOrg(orgId);
  const key = ['org', orgId, 'webhooks'];
  const list = useQuery({ queryKey: key, queryFn: () => call(api.GET('/api/orgs/{orgId}/webhooks', { params: { path: { orgId } } })) });
  const [secret, setSecret] = useState<string | null>(null);
  const [formKey, setFormKey] = useState(0);
  const create = useAction(
    (body: EndpointDraft) =>
      call(api.POST('/api/orgs/{orgId}/webhooks', { params: { path: { orgId } }, body })),
    {
      invalidate: [key],
      onSuccess: (r) => {
        setSecret(r.secret);
        setFormKey(formKey + 1);
      },
    },
  );
  return (
    <>
      {can(org, 'POST /api/orgs/{orgId}/webhooks') ? (
        <section aria-labelledby="new-endpoint">
          <h2 id="new-endpoint">Add an endpoint</h2>
          {secret ? <ShownOnce label="The endpoint signing secret" value={secret} filename="webhook-secret.txt" /> : null}
          <EndpointForm key={formKey} initial={{ url: '', description: '', events: [] }} busy={create.isPending} error={create.error} submitLabel="Add endpoint" onSubmit={(d) => create.mutate(d)} />
        </section>
      ) : null}
      <h2>Endpoints</h2>
      <ProblemView error={list.error} />
      {list.isPending ? <Loading what="endpoints" /> : null}
      {list.data ? (
        <Paged label="Endpoints" empty="No webhook endpoints yet." items={list.data.endpoints} render={(e) => <EndpointItem key={e.id} orgId={orgId} org={org} endpoint={e} />} />
      ) : null}
      {can(org, 'GET /api/orgs/{orgId}/inbound-sources') ? <InboundSources org={org} orgId={orgId} /> : null}
    </>
  );
}
