import { useState, type FormEvent } from 'react';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import type { MyOrg } from '../../auth/session';
import type { paths } from '../../api/schema.gen';
import { Field, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';
import { when } from '../../ui/table';
import { CredentialHistory, CredentialUses } from './credential-logs';

type Credential = paths['/api/orgs/{orgId}/integrations/credentials']['get']['responses'][200]['content']['application/json']['credentials'][number];

/** One credential: its metadata, replace (a new value and why), delete, its rotation history and use log. */
export function CredentialItem({ org, orgId, credential: c }: { org: MyOrg | undefined; orgId: string; credential: Credential }) {
  const [open, setOpen] = useState<'none' | 'replace' | 'history' | 'uses'>('none');
  const [secret, setSecret] = useState('');
  const [reason, setReason] = useState('');
  const key = ['org', orgId, 'credentials'];
  const path = { orgId, credentialId: c.id };
  const replace = useAction(
    () => call(api.POST('/api/orgs/{orgId}/integrations/credentials/{credentialId}/replace', { params: { path }, body: { secret, reason } })),
    { invalidate: [key], onSuccess: () => { setSecret(''); setReason(''); setOpen('none'); } },
  );
  const remove = useAction(() => call(api.DELETE('/api/orgs/{orgId}/integrations/credentials/{credentialId}', { params: { path } })), { invalidate: [key] });
  const toggle = (what: typeof open) => setOpen(open === what ? 'none' : what);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    replace.mutate(undefined);
  };
  return (
    <li>
      <strong>{c.name}</strong> ({c.kind.replaceAll('_', ' ')}){c.description ? <> — {c.description}</> : null}
      <br />
      Version {c.version} · set {when(c.updatedAt)} · used {c.useCount} time(s) · last used {when(c.lastUsedAt)}{c.lastUsedBy ? <> by <code>{c.lastUsedBy}</code></> : null}
      <div className="row">
        <button type="button" aria-expanded={open === 'history'} onClick={() => toggle('history')}>Rotation history of {c.name}</button>
        <button type="button" aria-expanded={open === 'uses'} onClick={() => toggle('uses')}>Use log of {c.name}</button>
        {can(org, 'POST /api/orgs/{orgId}/integrations/credentials/{credentialId}/replace') ? (
          <button type="button" aria-expanded={open === 'replace'} onClick={() => toggle('replace')}>Replace {c.name}</button>
        ) : null}
        {can(org, 'DELETE /api/orgs/{orgId}/integrations/credentials/{credentialId}') ? (
          <button type="button" disabled={remove.isPending} onClick={() => {
            if (window.confirm(`Delete the credential ${c.name}? Its value is destroyed and integrations asking for it fail at once.`)) remove.mutate(undefined);
          }}>Delete {c.name}</button>
        ) : null}
      </div>
      <ProblemView error={remove.error} />
      {open === 'replace' ? (
        <form onSubmit={submit} aria-label={`Replace ${c.name}`}>
          <Field label="New value" type="password" autoComplete="off" field="secret" error={replace.error} value={secret} onChange={(e) => setSecret(e.target.value)} required />
          <Field label="Reason" field="reason" error={replace.error} value={reason} onChange={(e) => setReason(e.target.value)} required maxLength={200} />
          <ProblemView error={replace.error} />
          <Submit busy={replace.isPending}>Replace value</Submit>
        </form>
      ) : null}
      {open === 'history' ? <CredentialHistory orgId={orgId} credentialId={c.id} /> : null}
      {open === 'uses' ? <CredentialUses orgId={orgId} credentialId={c.id} /> : null}
    </li>
  );
}
