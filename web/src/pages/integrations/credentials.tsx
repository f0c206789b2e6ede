import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { useParams } from 'react-router';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import { useOrg } from '../../auth/session';
import { Field, Select, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';
import { Loading, Paged } from '../../ui/table';
import { CredentialItem } from './credential-item';

const KINDS = [
  ['api_token', 'API token'],
  ['oauth_client_secret', 'OAuth client secret'],
  ['password', 'Password'],
  ['other', 'Other'],
] as const;
type Kind = (typeof KINDS)[number][0];

/**
 * Integration credentials: the values host code opens by name (a PSA or RMM account's token).
 * Write-only: a value is typed once into a password field, sent, and cleared; no route ever
 * returns it, so nothing here could show it again.
 */
export function CredentialsPage() {
  const { orgId = '' } = useParams();
  const org = useOrg(orgId);
  const key = ['org', orgId, 'credentials'];
  const list = useQuery({ queryKey: key, queryFn: () => call(api.GET('/api/orgs/{orgId}/integrations/credentials', { params: { path: { orgId } } })) });
  const [name, setName] = useState('');
  const [kind, setKind] = useState<Kind>('api_token');
  const [description, setDescription] = useState('');
  const [secret, setSecret] = useState('');
  const create = useAction(
    () => call(api.POST('/api/orgs/{orgId}/integrations/credentials', { params: { path: { orgId } }, body: { name, kind, description, secret } })),
    { invalidate: [key], onSuccess: () => { setName(''); setDescription(''); setSecret(''); } },
  );
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(undefined);
  };
  return (
    <>
      {can(org, 'POST /api/orgs/{orgId}/integrations/credentials') ? (
        <section aria-labelledby="new-credential">
          <h2 id="new-credential">Add a credential</h2>
          <form onSubmit={submit} aria-label="Add a credential">
            <Field label="Name" field="name" error={create.error} value={name} onChange={(e) => setName(e.target.value)} required maxLength={64}
              pattern="[a-z0-9]([a-z0-9._\-]{0,62}[a-z0-9])?" hint="What your integration code asks for: lower-case letters, digits, dots, dashes, underscores" />
            <Select label="Kind" value={kind} onChange={(e) => setKind(e.target.value as Kind)}>
              {KINDS.map(([value, label]) => <option key={value} value={value}>{label}</option>)}
            </Select>
            <Field label="Description" field="description" error={create.error} value={description} onChange={(e) => setDescription(e.target.value)} maxLength={200} />
            <Field label="Value" type="password" autoComplete="off" field="secret" error={create.error} value={secret} onChange={(e) => setSecret(e.target.value)} required
              hint="Stored sealed; it is never shown again, to anyone" />
            <ProblemView error={create.error} />
            <Submit busy={create.isPending}>Add credential</Submit>
          </form>
        </section>
      ) : null}
      <h2>Credentials</h2>
      <ProblemView error={list.error} />
      {list.isPending ? <Loading what="credentials" /> : null}
      {list.data ? (
        <Paged label="Credentials" empty="No integration credentials yet." items={list.data.credentials}
          render={(c) => <CredentialItem key={c.id} org={org} orgId={orgId} credential={c} />} />
      ) : null}
    </>
  );
}
