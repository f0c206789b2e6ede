import { useParams } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import { useOrg } from '../../auth/session';
import { ProblemView } from '../../ui/problem';
import { Loading, Paged, when } from '../../ui/table';
import { BreakGlass } from './BreakGlass';
import { Domains } from './Domains';
import { EditConnection } from './EditConnection';
import { NewConnection } from './NewConnection';

/** Only http(s) locations are followed: the IdP's URL comes from the server, never trusted as a script URL. */
function go(location: string) {
  const url = new URL(location, window.location.origin);
  if (url.protocol === 'https:' || url.protocol === 'http:') window.location.assign(url.toString());
}

export function SsoPage() {
  const { orgId = '' } = useParams();
  const org = useOrg(orgId);
  const key = ['sso-connections', orgId];
  const list = useQuery({ queryKey: key, queryFn: () => call(api.GET('/api/orgs/{orgId}/sso/connections', { params: { path: { orgId } } })) });
  const enforcement = useQuery({ queryKey: ['sso-enforcement', orgId], queryFn: () => call(api.GET('/api/orgs/{orgId}/sso/enforcement', { params: { path: { orgId } } })) });
  const toggle = useAction((v: { id: string; enabled: boolean }) => call(api.PATCH('/api/orgs/{orgId}/sso/connections/{connectionId}', { params: { path: { orgId, connectionId: v.id } }, body: { enabled: v.enabled } })), { invalidate: [key] });
  const remove = useAction((id: string) => call(api.DELETE('/api/orgs/{orgId}/sso/connections/{connectionId}', { params: { path: { orgId, connectionId: id } } })), { invalidate: [key] });
  const test = useAction((id: string) => call(api.POST('/api/orgs/{orgId}/sso/connections/{connectionId}/test', { params: { path: { orgId, connectionId: id } }, body: {} })), { onSuccess: (r) => go(r.location) });
  const enforce = useAction((enforced: boolean) => call(api.PUT('/api/orgs/{orgId}/sso/enforcement', { params: { path: { orgId } }, body: { enforced } })), { invalidate: [['sso-enforcement', orgId]] });
  const manage = can(org, 'PATCH /api/orgs/{orgId}/sso/connections/{connectionId}');
  return (
    <>
      <Domains orgId={orgId} org={org} />
      <section aria-labelledby="conns">
        <h2 id="conns">Connections</h2>
        <ProblemView error={list.error ?? toggle.error ?? remove.error ?? test.error} />
        {list.isPending ? <Loading what="connections" /> : null}
        {list.data ? (
          <Paged label="Connections" empty="No connection yet." items={list.data.connections} render={(c) => (
            <li key={c.id}>
              <p><strong>{c.name}</strong> — {c.kind.toUpperCase()} — {c.enabled ? 'enabled' : 'disabled'}</p>
              {c.oidc ? <p>Issuer {c.oidc.issuer} · redirect URI to register: <code>{c.oidc.redirectUri}</code></p> : null}
              {c.saml ? <p>ACS URL: <code>{c.saml.acsUrl}</code> · SP entity id: <code>{c.saml.spEntityId}</code></p> : null}
              {manage ? <button type="button" disabled={toggle.isPending} onClick={() => toggle.mutate({ id: c.id, enabled: !c.enabled })}>{c.enabled ? `Disable ${c.name}` : `Enable ${c.name}`}</button> : null}
              {can(org, 'POST /api/orgs/{orgId}/sso/connections/{connectionId}/test') ? <button type="button" disabled={test.isPending} onClick={() => test.mutate(c.id)}>Test {c.name}</button> : null}
              {manage ? <EditConnection orgId={orgId} id={c.id} name={c.name} oidc={c.kind === 'oidc'} /> : null}
              {can(org, 'DELETE /api/orgs/{orgId}/sso/connections/{connectionId}') ? <button type="button" disabled={remove.isPending} onClick={() => remove.mutate(c.id)}>Delete {c.name}</button> : null}
            </li>
          )} />
        ) : null}
        {can(org, 'POST /api/orgs/{orgId}/sso/connections') ? <NewConnection orgId={orgId} /> : null}
      </section>
      <section aria-labelledby="enf">
        <h2 id="enf">Enforcement</h2>
        <ProblemView error={enforcement.error ?? enforce.error} />
        {enforcement.data ? (
          <>
            <p>{enforcement.data.enforced ? `SSO required since ${when(enforcement.data.enforcedSince)}` : 'SSO is not required.'} Domains covered: {enforcement.data.domains.join(', ') || 'none verified'}.</p>
            <p>Break-glass owners: {enforcement.data.breakGlassOwners.map((o) => o.email).join(', ') || 'none'}.</p>
            {can(org, 'PUT /api/orgs/{orgId}/sso/enforcement') ? (
              <button type="button" disabled={enforce.isPending} aria-busy={enforce.isPending || undefined} onClick={() => enforce.mutate(!enforcement.data.enforced)}>
                {enforcement.data.enforced ? 'Stop requiring SSO' : 'Require SSO'}
              </button>
            ) : null}
            {can(org, 'PUT /api/orgs/{orgId}/sso/break-glass') && can(org, 'GET /api/orgs/{orgId}/members') ? (
              <BreakGlass key={enforcement.data.breakGlassOwners.map((o) => o.userId).join()} orgId={orgId} current={enforcement.data.breakGlassOwners.map((o) => o.userId)} />
            ) : null}
          </>
        ) : null}
      </section>
    </>
  );
}
