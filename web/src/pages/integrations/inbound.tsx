import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import type { MyOrg } from '../../auth/session';
import { Field, Select, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';
import { Loading, Paged, when } from '../../ui/table';

/**
 * Inbound webhook sources. The signing secret comes from the provider: typed once into a password
 * field, sent, and never shown back (the server stores it sealed and never returns it).
 */
export function InboundSources({ org, orgId }: { org: MyOrg | undefined; orgId: string }) {
  const key = ['org', orgId, 'inbound-sources'];
  const list = useQuery({ queryKey: key, queryFn: () => call(api.GET('/api/orgs/{orgId}/inbound-sources', { params: { path: { orgId } } })) });
  const [name, setName] = useState('');
  const [provider, setProvider] = useState('standard');
  const [secret, setSecret] = useState('');
  const create = useAction(
    () => call(api.POST('/api/orgs/{orgId}/inbound-sources', { params: { path: { orgId } }, body: { name, provider, secret } })),
    { invalidate: [key], onSuccess: () => { setName(''); setSecret(''); } },
  );
  const remove = useAction(
    (sourceId: string) => call(api.DELETE('/api/orgs/{orgId}/inbound-sources/{sourceId}', { params: { path: { orgId, sourceId } } })),
    { invalidate: [key] },
  );
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(undefined);
  };
  const mayDelete = can(org, 'DELETE /api/orgs/{orgId}/inbound-sources/{sourceId}');
  return (
    <section aria-labelledby="inbound">
      <h2 id="inbound">Inbound sources</h2>
      {can(org, 'POST /api/orgs/{orgId}/inbound-sources') ? (
        <form onSubmit={submit} aria-label="Add an inbound source">
          <Field label="Source name" field="name" error={create.error} value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
          <Select label="Provider" value={provider} onChange={(e) => setProvider(e.target.value)}>
            <option value="standard">Standard Webhooks</option>
            <option value="stripe">Stripe</option>
          </Select>
          <Field label="Provider signing secret (whsec_…)" type="password" autoComplete="off" field="secret" error={create.error} value={secret} onChange={(e) => setSecret(e.target.value)} required />
          <ProblemView error={create.error} />
          <Submit busy={create.isPending}>Add source</Submit>
        </form>
      ) : null}
      <ProblemView error={list.error ?? remove.error} />
      {list.isPending ? <Loading what="inbound sources" /> : null}
      <Paged
        label="Inbound sources"
        empty="No inbound sources yet."
        items={list.data?.sources ?? []}
        render={(s) => (
          <li key={s.id}>
            <strong>{s.name}</strong> ({s.provider}) · receives at <code>{s.receivePath}</code> · added {when(s.createdAt)}
            {mayDelete ? (
              <button type="button" disabled={remove.isPending} onClick={() => {
                if (window.confirm(`Delete the inbound source ${s.name}? Its provider's deliveries will be refused.`)) remove.mutate(s.id);
              }}>Delete {s.name}</button>
            ) : null}
          </li>
        )}
      />
    </section>
  );
}
