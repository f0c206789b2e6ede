import { useState, type FormEvent } from 'react';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { Field, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';

type Change = { name?: string; clientSecret?: string };

/** Rename a connection, or rotate an OIDC client secret (the old one is never shown). */
export function EditConnection({ orgId, id, name, oidc }: { orgId: string; id: string; name: string; oidc: boolean }) {
  const [next, setNext] = useState(name);
  const [secret, setSecret] = useState('');
  const save = useAction((body: Change) => call(api.PATCH('/api/orgs/{orgId}/sso/connections/{connectionId}', { params: { path: { orgId, connectionId: id } }, body })), {
    invalidate: [['sso-connections', orgId]],
    onSuccess: () => setSecret(''),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate({ ...(next !== name ? { name: next } : {}), ...(secret ? { clientSecret: secret } : {}) });
  };
  return (
    <details>
      <summary>Edit {name}</summary>
      <form onSubmit={submit} aria-label={`Edit ${name}`}>
        <Field label="Name" field="body.name" error={save.error} value={next} onChange={(e) => setNext(e.target.value)} />
        {oidc ? <Field label="New client secret (leave empty to keep)" type="password" autoComplete="off" field="body.clientSecret" error={save.error} value={secret} onChange={(e) => setSecret(e.target.value)} /> : null}
        <ProblemView error={save.error} />
        {save.isSuccess ? <p role="status">Saved.</p> : null}
        <Submit busy={save.isPending}>Save changes</Submit>
      </form>
    </details>
  );
}
