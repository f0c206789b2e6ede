import { useState, type FormEvent } from 'react';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { Field, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';
import { keys, type Member } from './common';

/** Hands the browser a JSON document to save (the export never touches the server's disk). */
function download(name: string, doc: unknown): void {
  const url = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2)], { type: 'application/json' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

/**
 * A member's data-subject requests, for an owner: export everything the org holds about them,
 * or erase it (their address typed, then a step-up). Erasing deletes their account too when no
 * other organization holds them; the result says which.
 */
export function MemberPrivacy({ orgId, m, onErased }: { orgId: string; m: Member; onErased: (summary: string) => void }) {
  const [open, setOpen] = useState(false);
  const [typed, setTyped] = useState('');
  const path = { orgId, userId: m.userId };
  const exported = useAction(() => call(api.POST('/api/orgs/{orgId}/members/{userId}/personal-data', { params: { path } })), {
    onSuccess: (doc) => download(`personal-data-${m.email}.json`, doc),
  });
  const erase = useAction((confirm: string) => call(api.POST('/api/orgs/{orgId}/members/{userId}/erase', { params: { path }, body: { confirm } })), {
    // The row leaves the list: the page keeps the summary.
    invalidate: [keys.members(orgId)],
    onSuccess: (r) => onErased(
      `${m.email} erased: ${r.auditEventsErased} audit events lost their details, ${r.apiKeysRevoked} API keys revoked; ` +
      (r.account === 'deleted' ? 'their account is deleted.' : 'their account is kept (other organizations hold them).'),
    ),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    erase.mutate(typed);
  };
  return (
    <div className="row">
      <button type="button" className="secondary" disabled={exported.isPending} aria-busy={exported.isPending || undefined} onClick={() => exported.mutate(undefined)}>
        Export personal data
      </button>
      {exported.data ? <span role="status">Exported: {exported.data.auditEvents.length} audit events about {m.email}.</span> : null}
      <ProblemView error={exported.error} />
      {open ? (
        <form aria-label={`Erase ${m.email}`} onSubmit={submit} className="danger-zone">
          <p>
            Removes {m.email} from the organization with their API keys, SSO links and invitations, and destroys the details, addresses and
            user agents of every audit event about them (the events stay, under their user id). Their account is deleted too if no other
            organization holds them. This cannot be undone.
          </p>
          <Field label={`Type ${m.email} to confirm`} field="confirm" error={erase.error} value={typed} autoComplete="off" spellCheck={false}
            onChange={(e) => setTyped(e.target.value)} />
          <ProblemView error={erase.error} />
          <Submit busy={erase.isPending} className="danger" disabled={typed.trim().toLowerCase() !== m.email.toLowerCase()}>Erase {m.email}</Submit>
        </form>
      ) : (
        <button type="button" className="danger" onClick={() => setOpen(true)}>Erase personal data…</button>
      )}
    </div>
  );
}
