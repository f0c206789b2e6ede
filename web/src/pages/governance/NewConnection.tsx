import { useState, type FormEvent } from 'react';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { Field, Select, Submit, TextArea } from '../../ui/form';
import { ProblemView } from '../../ui/problem';

type Body =
  | { kind: 'oidc'; name: string; issuer: string; clientId: string; clientSecret: string }
  | { kind: 'saml'; name: string; metadataXml?: string; metadataUrl?: string };

/** Add an OIDC connection (issuer discovered by the server) or a SAML one (from IdP metadata). */
export function NewConnection({ orgId }: { orgId: string }) {
  const [kind, setKind] = useState<'oidc' | 'saml'>('oidc');
  const [f, setF] = useState({ name: '', issuer: '', clientId: '', clientSecret: '', metadataXml: '', metadataUrl: '' });
  const create = useAction((body: Body) => call(api.POST('/api/orgs/{orgId}/sso/connections', { params: { path: { orgId } }, body })), {
    invalidate: [['sso-connections', orgId]],
    onSuccess: () => setF({ name: '', issuer: '', clientId: '', clientSecret: '', metadataXml: '', metadataUrl: '' }),
  });
  const set = (k: keyof typeof f) => (e: { target: { value: string } }) => setF({ ...f, [k]: e.target.value });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (kind === 'oidc') create.mutate({ kind, name: f.name, issuer: f.issuer, clientId: f.clientId, clientSecret: f.clientSecret });
    else create.mutate({ kind, name: f.name, ...(f.metadataXml ? { metadataXml: f.metadataXml } : {}), ...(f.metadataUrl ? { metadataUrl: f.metadataUrl } : {}) });
  };
  return (
    <form onSubmit={submit} aria-label="New SSO connection">
      <h3>New connection</h3>
      <Select label="Protocol" value={kind} onChange={(e) => setKind(e.target.value === 'saml' ? 'saml' : 'oidc')}>
        <option value="oidc">OpenID Connect</option>
        <option value="saml">SAML 2.0</option>
      </Select>
      <Field label="Name" field="body.name" error={create.error} value={f.name} onChange={set('name')} />
      {kind === 'oidc' ? (
        <>
          <Field label="Issuer URL" field="body.issuer" error={create.error} value={f.issuer} onChange={set('issuer')} />
          <Field label="Client ID" field="body.clientId" error={create.error} value={f.clientId} onChange={set('clientId')} />
          <Field label="Client secret" type="password" autoComplete="off" field="body.clientSecret" error={create.error} value={f.clientSecret} onChange={set('clientSecret')} />
        </>
      ) : (
        <>
          <Field label="Metadata URL" field="body.metadataUrl" error={create.error} value={f.metadataUrl} onChange={set('metadataUrl')} />
          <TextArea label="Or metadata XML" rows={4} value={f.metadataXml} onChange={set('metadataXml')} />
        </>
      )}
      <ProblemView error={create.error} />
      {create.isSuccess ? <p role="status">Connection created (disabled until you enable it).</p> : null}
      <Submit busy={create.isPending}>Create connection</Submit>
    </form>
  );
}
