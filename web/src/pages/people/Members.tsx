import { useState } from 'react';
import { useNavigate } from 'react-router';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import { useRefreshMe } from '../../auth/session';
import { Loading, Paged } from '../../ui/table';
import { Confirm, Refusal, useMembers, useOrgPage, useProjects, useRoles } from './common';
import { MemberRow } from './MemberRow';
import { InviteForm, PendingInvitations } from './Invite';

/** The landing page of an org: who is in it, who is invited, and leaving it. */
export function Members() {
  const { orgId, org } = useOrgPage();
  const members = useMembers(orgId);
  const roles = useRoles(orgId, org);
  const projects = useProjects(orgId, org);
  const refresh = useRefreshMe();
  const navigate = useNavigate();
  const leave = useAction(() => call(api.POST('/api/orgs/{orgId}/leave', { params: { path: { orgId } } })), {
    onSuccess: () => { void refresh(); navigate('/', { replace: true }); },
  });
  const [erased, setErased] = useState<string | null>(null);
  const roleList = roles.data?.roles;
  const projectList = projects.data?.projects;
  return (
    <>
      <section aria-labelledby="members-h">
        <h2 id="members-h">People in this organization</h2>
        {members.isPending ? <Loading what="members" /> : null}
        <Refusal error={members.error} />
        {erased ? <p role="status">{erased}</p> : null}
        {members.data ? (
          <Paged label="Members" items={members.data.members} empty="No members." render={(m) => (
            <MemberRow key={m.userId} orgId={orgId} org={org} m={m} roles={roleList} projects={projectList} onErased={setErased} />
          )} />
        ) : null}
      </section>
      {can(org, 'POST /api/orgs/{orgId}/invitations') ? (
        <section aria-labelledby="invite-h">
          <h2 id="invite-h">Invite someone</h2>
          <InviteForm orgId={orgId} org={org} roles={roleList} projects={projectList} />
        </section>
      ) : null}
      {can(org, 'GET /api/orgs/{orgId}/invitations') ? (
        <section aria-labelledby="inv-h">
          <h2 id="inv-h">Pending invitations</h2>
          <PendingInvitations orgId={orgId} org={org} roles={roleList} />
        </section>
      ) : null}
      <section aria-labelledby="leave-h">
        <h2 id="leave-h">Leave the organization</h2>
        <Confirm label="Leave" question={`Leave ${org?.name ?? 'this organization'}? You lose access at once.`} busy={leave.isPending} onConfirm={() => leave.mutate(undefined)} />
        <Refusal error={leave.error} />
      </section>
    </>
  );
}
