import { useState, type FormEvent } from 'react';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { useRefreshMe, type MyOrg } from '../../auth/session';
import { Field, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';

/**
 * The owner's "delete this organization": the slug typed, then a step-up. Everyone's sessions stop
 * reaching the org and its API keys are revoked at once; the org can be restored until its grace
 * period ends, when its data keys are destroyed.
 */
export function DeleteOrg({ org }: { org: MyOrg }) {
  const [typed, setTyped] = useState('');
  const refresh = useRefreshMe();
  const remove = useAction(
    (confirm: string) => call(api.DELETE('/api/orgs/{orgId}', { params: { path: { orgId: org.id } }, body: { confirm } })),
    { onSuccess: () => void refresh() },
  );
  const submit = (e: FormEvent) => {
    e.preventDefault();
    remove.mutate(typed);
  };
  return (
    <section aria-labelledby="delete-org" className="danger-zone">
      <h2 id="delete-org">Delete this organization</h2>
      <p>
        Every member, you included, is signed out of {org.name} at once, and every API key is revoked. Until the grace period ends an
        owner can sign in again and restore it (API keys stay revoked). Then its data keys are destroyed: what it stored sealed can never
        be read again, by anyone. Its audit trail is kept.
      </p>
      <form aria-label="Delete this organization" onSubmit={submit}>
        <Field label={`Type the organization\u2019s slug (${org.slug}) to confirm`} field="confirm" error={remove.error} value={typed}
          autoComplete="off" spellCheck={false} onChange={(e) => setTyped(e.target.value)} />
        <ProblemView error={remove.error} />
        <Submit busy={remove.isPending} className="danger" disabled={typed !== org.slug}>Delete {org.name}</Submit>
      </form>
    </section>
  );
}
