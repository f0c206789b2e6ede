import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import type { MyOrg } from '../../auth/session';
import { Field, Submit } from '../../ui/form';
import { Loading, Paged, when } from '../../ui/table';
import { Confirm, keys, Refusal, useOrgPage, useProjects, type Project } from './common';

/** The org's projects: create, rename, delete, and who is assigned to each. */
export function Projects() {
  const { orgId, org } = useOrgPage();
  const projects = useProjects(orgId, org);
  const [name, setName] = useState('');
  const create = useAction((n: string) => call(api.POST('/api/orgs/{orgId}/projects', { params: { path: { orgId } }, body: { name: n } })), {
    invalidate: [keys.projects(orgId)], onSuccess: () => setName(''),
  });
  const submit = (e: FormEvent) => { e.preventDefault(); create.mutate(name); };
  return (
    <>
      {can(org, 'POST /api/orgs/{orgId}/projects') ? (
        <form onSubmit={submit} aria-label="New project">
          <Field label="Project name" field="name" error={create.error} value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
          <Refusal error={create.error} />
          <Submit busy={create.isPending}>Create project</Submit>
        </form>
      ) : null}
      {projects.isPending ? <Loading what="projects" /> : null}
      <Refusal error={projects.error} />
      {projects.data ? (
        <Paged label="Projects" items={projects.data.projects} empty="No projects." render={(p) => <ProjectRow key={p.id} orgId={orgId} org={org} p={p} />} />
      ) : null}
    </>
  );
}

function ProjectRow({ orgId, org, p }: { orgId: string; org: MyOrg | undefined; p: Project }) {
  const [renaming, setRenaming] = useState(false);
  const [name, setName] = useState(p.name);
  const [open, setOpen] = useState(false);
  const inv = { invalidate: [keys.projects(orgId)] };
  const rename = useAction((n: string) => call(api.PATCH('/api/orgs/{orgId}/projects/{projectId}', { params: { path: { orgId, projectId: p.id } }, body: { name: n } })), { ...inv, onSuccess: () => setRenaming(false) });
  const remove = useAction(() => call(api.DELETE('/api/orgs/{orgId}/projects/{projectId}', { params: { path: { orgId, projectId: p.id } } })), inv);
  const members = useQuery({
    queryKey: keys.projectMembers(orgId, p.id), enabled: open,
    queryFn: () => call(api.GET('/api/orgs/{orgId}/projects/{projectId}/members', { params: { path: { orgId, projectId: p.id } } })),
  });
  return (
    <li aria-label={p.name}>
      <div>
        <strong>{p.name}</strong> <span className="hint">created {when(p.createdAt)}</span>
        {open ? (
          members.data ? (
            <ul aria-label={`Members of ${p.name}`}>
              {members.data.members.length ? members.data.members.map((m) => <li key={m.userId}>{m.email}</li>) : <li>No member is assigned.</li>}
            </ul>
          ) : <Refusal error={members.error} />
        ) : null}
      </div>
      <div className="row">
        {can(org, 'GET /api/orgs/{orgId}/projects/{projectId}/members') ? (
          <button type="button" className="secondary" aria-expanded={open} onClick={() => setOpen(!open)}>Members of {p.name}</button>
        ) : null}
        {can(org, 'PATCH /api/orgs/{orgId}/projects/{projectId}') ? (
          renaming ? (
            <form onSubmit={(e) => { e.preventDefault(); rename.mutate(name); }} aria-label={`Rename ${p.name}`}>
              <Field label="New name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
              <Submit busy={rename.isPending}>Save name</Submit>
              <button type="button" className="secondary" onClick={() => setRenaming(false)}>Cancel</button>
            </form>
          ) : <button type="button" className="secondary" onClick={() => setRenaming(true)}>Rename {p.name}</button>
        ) : null}
        {can(org, 'DELETE /api/orgs/{orgId}/projects/{projectId}') ? (
          <Confirm label={`Delete ${p.name}`} question="Delete this project and its assets?" busy={remove.isPending} onConfirm={() => remove.mutate(undefined)} />
        ) : null}
      </div>
      <Refusal error={rename.error ?? remove.error} />
    </li>
  );
}
