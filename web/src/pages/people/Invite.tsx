import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import type { MyOrg } from '../../auth/session';
import { Checkbox, Field, Select, Submit } from '../../ui/form';
import { Paged, when } from '../../ui/table';
import { assignmentOf, grantableRoles, keys, Refusal, roleLabel, type Project, type Role } from './common';

/** Invite someone with a role no higher than the viewer's, optionally restricted to projects. */
export function InviteForm({ orgId, org, roles, projects }: { orgId: string; org: MyOrg | undefined; roles?: Role[]; projects?: Project[] }) {
  const [email, setEmail] = useState('');
  const [choice, setChoice] = useState('member');
  const [restricted, setRestricted] = useState(false);
  const [picked, setPicked] = useState<string[]>([]);
  const [sent, setSent] = useState('');
  const invite = useAction(
    (body: { email: string; restricted: boolean; projectIds?: string[] } & ReturnType<typeof assignmentOf>) => call(api.POST('/api/orgs/{orgId}/invitations', { params: { path: { orgId } }, body })),
    { invalidate: [keys.invitations(orgId)], onSuccess: (r) => { setSent(r.invitation.email); setEmail(''); setPicked([]); } },
  );
  const limited = choice === 'project_viewer' || restricted;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setSent('');
    invite.mutate({ email, ...assignmentOf(choice), restricted: limited, ...(limited ? { projectIds: picked } : {}) });
  };
  return (
    <form onSubmit={submit} aria-label="Invite someone">
      <Field label="Email" type="email" field="email" error={invite.error} value={email} onChange={(e) => setEmail(e.target.value)} required />
      <Select label="Role" value={choice} onChange={(e) => setChoice(e.target.value)}>
        {grantableRoles(org, roles).map((o) => <option key={o.value} value={o.value}>{o.label}</option>)}
      </Select>
      <Checkbox label="Restricted to chosen projects" checked={limited} disabled={choice === 'project_viewer'} onChange={(e) => setRestricted(e.target.checked)} />
      {limited && projects ? (
        <fieldset>
          <legend>Projects</legend>
          {projects.map((p) => (
            <Checkbox key={p.id} label={p.name} checked={picked.includes(p.id)} onChange={(e) => setPicked(e.target.checked ? [...picked, p.id] : picked.filter((x) => x !== p.id))} />
          ))}
        </fieldset>
      ) : null}
      <Refusal error={invite.error} />
      {sent ? <p role="status">Invitation sent to {sent}.</p> : null}
      <Submit busy={invite.isPending}>Send invitation</Submit>
    </form>
  );
}

/** Pending invitations, each revocable by whoever may invite. */
export function PendingInvitations({ orgId, org, roles }: { orgId: string; org: MyOrg | undefined; roles?: Role[] }) {
  const list = useQuery({ queryKey: keys.invitations(orgId), queryFn: () => call(api.GET('/api/orgs/{orgId}/invitations', { params: { path: { orgId } } })) });
  const revoke = useAction((invitationId: string) => call(api.DELETE('/api/orgs/{orgId}/invitations/{invitationId}', { params: { path: { orgId, invitationId } } })), { invalidate: [keys.invitations(orgId)] });
  if (list.error) return <Refusal error={list.error} />;
  const pending = (list.data?.invitations ?? []).filter((i) => i.status === 'pending');
  return (
    <>
      <Paged label="Pending invitations" items={pending} empty={list.isPending ? 'Loading invitations…' : 'No pending invitations.'} render={(i) => (
        <li key={i.id} aria-label={`Invitation for ${i.email}`}>
          <span><strong>{i.email}</strong> <span className="badge">{roleLabel(i.role, i.customRoleId, roles)}</span>{i.restricted ? ' restricted to projects' : ''} · expires {when(i.expiresAt)}</span>
          {can(org, 'DELETE /api/orgs/{orgId}/invitations/{invitationId}') ? (
            <button type="button" className="danger" disabled={revoke.isPending} onClick={() => revoke.mutate(i.id)}>Revoke invitation for {i.email}</button>
          ) : null}
        </li>
      )} />
      <Refusal error={revoke.error} />
    </>
  );
}
