import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import type { MyOrg } from '../../auth/session';
import { Field, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';
import { Loading, Paged } from '../../ui/table';

/** Claimed email domains: the TXT record that proves each, verify and remove. */
export function Domains({ orgId, org }: { orgId: string; org: MyOrg | undefined }) {
  const key = ['domains', orgId];
  const list = useQuery({ queryKey: key, queryFn: () => call(api.GET('/api/orgs/{orgId}/domains', { params: { path: { orgId } } })) });
  const [domain, setDomain] = useState('');
  const claim = useAction((d: string) => call(api.POST('/api/orgs/{orgId}/domains', { params: { path: { orgId } }, body: { domain: d } })), { invalidate: [key], onSuccess: () => setDomain('') });
  const verify = useAction((domainId: string) => call(api.POST('/api/orgs/{orgId}/domains/{domainId}/verify', { params: { path: { orgId, domainId } } })), { invalidate: [key, ['sso-enforcement', orgId]] });
  const remove = useAction((domainId: string) => call(api.DELETE('/api/orgs/{orgId}/domains/{domainId}', { params: { path: { orgId, domainId } } })), { invalidate: [key] });
  const submit = (e: FormEvent) => { e.preventDefault(); claim.mutate(domain); };
  return (
    <section aria-labelledby="domains">
      <h2 id="domains">Email domains</h2>
      {can(org, 'POST /api/orgs/{orgId}/domains') ? (
        <form onSubmit={submit}>
          <Field label="Domain to claim" field="body.domain" error={claim.error} value={domain} onChange={(e) => setDomain(e.target.value)} required />
          <ProblemView error={claim.error} />
          <Submit busy={claim.isPending}>Claim domain</Submit>
        </form>
      ) : null}
      <ProblemView error={list.error ?? verify.error ?? remove.error} />
      {list.isPending ? <Loading what="domains" /> : null}
      {list.data ? (
        <Paged label="Domains" empty="No domain claimed yet." items={list.data.domains} render={(d) => (
          <li key={d.id}>
            <p><strong>{d.domain}</strong> — {d.status}</p>
            {d.status === 'pending' ? (
              <dl className="facts" aria-label={`DNS record for ${d.domain}`}>
                <dt>Type</dt><dd>{d.verification.type}</dd>
                <dt>Name</dt><dd><code>{d.verification.name}</code></dd>
                <dt>Value</dt><dd><code>{d.verification.value}</code></dd>
              </dl>
            ) : null}
            {d.status === 'pending' && can(org, 'POST /api/orgs/{orgId}/domains/{domainId}/verify') ? (
              <button type="button" disabled={verify.isPending} onClick={() => verify.mutate(d.id)}>{verify.isPending ? 'Checking…' : `Verify ${d.domain}`}</button>
            ) : null}
            {can(org, 'DELETE /api/orgs/{orgId}/domains/{domainId}') ? (
              <button type="button" disabled={remove.isPending} onClick={() => remove.mutate(d.id)}>Remove {d.domain}</button>
            ) : null}
          </li>
        )} />
      ) : null}
    </section>
  );
}
