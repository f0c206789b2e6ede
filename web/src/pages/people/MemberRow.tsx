import { useState, type FormEvent } from 'react';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import { useMe, type MyOrg } from '../../auth/session';
import { Checkbox, Select, Submit } from '../../ui/form';
import { MemberPrivacy } from './MemberPrivacy';
import { assignmentOf, Confirm, grantableRoles, keys, Refusal, roleLabel, valueOf, type Member, type Project, type Role } from './common';

/** One member: role, restriction and projects, and what the viewer may do to them. */
export function MemberRow({ orgId, org, m, roles, projects, onErased }: {
  orgId: string; org: MyOrg | undefined; m: Member; roles?: Role[]; projects?: Project[]; onErased: (summary: string) => void;
}) {
  const me = useMe();
  const [choice, setChoice] = useState(valueOf(m.role, m.customRoleId));
  const [restricted, setRestricted] = useState(m.restricted);
  const [addTo, setAddTo] = useState('');
  const invalidate = { invalidate: [keys.members(orgId)] };
  const change = useAction((body: ReturnType<typeof assignmentOf> & { restricted: boolean }) =>
    call(api.PATCH('/api/orgs/{orgId}/members/{userId}', { params: { path: { orgId, userId: m.userId } }, body })), invalidate);
  const remove = useAction(() => call(api.DELETE('/api/orgs/{orgId}/members/{userId}', { params: { path: { orgId, userId: m.userId } } })), invalidate);
  const revoke = useAction(() => call(api.POST('/api/orgs/{orgId}/members/{userId}/sessions/revoke', { params: { path: { orgId, userId: m.userId } } })));
  const assign = useAction((projectId: string) => call(api.PUT('/api/orgs/{orgId}/projects/{projectId}/members/{userId}', { params: { path: { orgId, projectId, userId: m.userId } } })), invalidate);
  const unassign = useAction((projectId: string) => call(api.DELETE('/api/orgs/{orgId}/projects/{projectId}/members/{userId}', { params: { path: { orgId, projectId, userId: m.userId } } })), invalidate);
  const options = grantableRoles(org, roles);
  const current = valueOf(m.role, m.customRoleId);
  if (!options.some((o) => o.value === current)) options.unshift({ value: current, label: roleLabel(m.role, m.customRoleId, roles) });
  const nameOf = (id: string) => projects?.find((p) => p.id === id)?.name ?? id;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    change.mutate({ ...assignmentOf(choice), restricted: choice === 'project_viewer' || restricted });
  };
  const self = m.userId === me.user.id;
  return (
    <li aria-label={m.email}>
      <div>
        <strong>{m.name}</strong> <span>{m.email}</span>{self ? ' (you)' : ''}
        <div className="row">
          <span className="badge">{roleLabel(m.role, m.customRoleId, roles)}</span>
          {m.restricted ? <span className="badge">Restricted to projects: {m.projectIds.length ? m.projectIds.map(nameOf).join(', ') : 'none yet'}</span> : null}
        </div>
      </div>
      <div>
        {can(org, 'PATCH /api/orgs/{orgId}/members/{userId}') ? (
          <form onSubmit={submit} aria-label={`Change the role of ${m.email}`}>
            <Select label={`Role of ${m.email}`} value={choice} onChange={(e) => setChoice(e.target.value)}>
              {options.map((o) => <option key={o.value} value={o.value}>{o.label}</option>)}
            </Select>
            <Checkbox label="Restricted to assigned projects" checked={choice === 'project_viewer' || restricted} disabled={choice === 'project_viewer'} onChange={(e) => setRestricted(e.target.checked)} />
            <Submit busy={change.isPending}>Change role</Submit>
            <Refusal error={change.error} />
          </form>
        ) : null}
        {m.restricted && can(org, 'PUT /api/orgs/{orgId}/projects/{projectId}/members/{userId}') && projects ? (
          <div className="row">
            {m.projectIds.map((id) => (
              <button key={id} type="button" className="secondary" disabled={unassign.isPending} onClick={() => unassign.mutate(id)}>Unassign from {nameOf(id)}</button>
            ))}
            <Select label={`Assign ${m.email} to a project`} value={addTo} onChange={(e) => setAddTo(e.target.value)}>
              <option value="">Choose a project…</option>
              {projects.filter((p) => !m.projectIds.includes(p.id)).map((p) => <option key={p.id} value={p.id}>{p.name}</option>)}
            </Select>
            <button type="button" disabled={!addTo || assign.isPending} aria-busy={assign.isPending || undefined} onClick={() => { assign.mutate(addTo); setAddTo(''); }}>Assign</button>
            <Refusal error={assign.error ?? unassign.error} />
          </div>
        ) : null}
        <div className="row">
          {can(org, 'POST /api/orgs/{orgId}/members/{userId}/sessions/revoke') && !self ? (
            <Confirm className="secondary" label="Revoke sessions" question={`Sign ${m.email} out everywhere?`} busy={revoke.isPending} onConfirm={() => revoke.mutate(undefined)} />
          ) : null}
          {revoke.isSuccess ? <span role="status">Sessions revoked.</span> : null}
          {can(org, 'DELETE /api/orgs/{orgId}/members/{userId}') && !self ? (
            <Confirm label="Remove" question={`Remove ${m.email} from the organization?`} busy={remove.isPending} onConfirm={() => remove.mutate(undefined)} />
          ) : null}
        </div>
        <Refusal error={revoke.error ?? remove.error} />
        {can(org, 'POST /api/orgs/{orgId}/members/{userId}/erase') && !self ? <MemberPrivacy orgId={orgId} m={m} onErased={onErased} /> : null}
      </div>
    </li>
  );
}
