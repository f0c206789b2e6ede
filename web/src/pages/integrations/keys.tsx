import { useQuery } from '@tanstack/react-query';
import { useParams } from 'react-router';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import { useOrg } from '../../auth/session';
import { Loading, Paged, when } from '../../ui/table';
import { ProblemView } from '../../ui/problem';
import { NewKeyForm } from './keys-form';
import { BrowserOrigins } from './origins';

/** The org's API keys: list, create (token shown once), revoke. */
export function ApiKeysPage() {
  const { orgId = '' } = useParams();
  const org = useOrg(orgId);
  const keys = useQuery({
    queryKey: ['org', orgId, 'api-keys'],
    queryFn: () => call(api.GET('/api/orgs/{orgId}/api-keys', { params: { path: { orgId } } })),
  });
  const revoke = useAction(
    (keyId: string) => call(api.DELETE('/api/orgs/{orgId}/api-keys/{keyId}', { params: { path: { orgId, keyId } } })),
    { invalidate: [['org', orgId, 'api-keys']] },
  );
  const mayRevoke = can(org, 'DELETE /api/orgs/{orgId}/api-keys/{keyId}');
  return (
    <>
      {org && can(org, 'POST /api/orgs/{orgId}/api-keys') ? <NewKeyForm org={org} orgId={orgId} /> : null}
      <h2>Keys</h2>
      <ProblemView error={keys.error ?? revoke.error} />
      {keys.isPending ? <Loading what="API keys" /> : null}
      {keys.data ? (
        <Paged
          label="API keys"
          empty="No API keys yet."
          items={keys.data.keys}
          render={(k) => (
            <li key={k.id}>
              <strong>{k.name}</strong> <code>{k.prefix}…{k.lastFour}</code> ({k.kind}, {k.status})
              <br />
              Scopes: {k.permissions.join(', ')} · Project: {k.projectId ?? 'all'} · Expires: {when(k.expiresAt)} · Last used: {when(k.lastUsedAt)} · Owner: <code>{k.createdBy}</code>
              {mayRevoke && k.status === 'active' ? (
                <button
                  type="button"
                  disabled={revoke.isPending}
                  onClick={() => {
                    if (window.confirm(`Revoke the key “${k.name}”? Anything using it stops working at once.`)) revoke.mutate(k.id);
                  }}
                >
                  Revoke {k.name}
                </button>
              ) : null}
            </li>
          )}
        />
      ) : null}
      {org ? <BrowserOrigins org={org} orgId={orgId} /> : null}
    </>
  );
}
