import { useState, type ReactNode } from 'react';
import { useParams } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import { api, call, ApiError } from '../../api/client';
import { can } from '../../api/access';
import { useOrg, type MyOrg } from '../../auth/session';
import type { paths } from '../../api/schema.gen';
import { ProblemView } from '../../ui/problem';

type Ok<P extends keyof paths> = paths[P] extends { get: { responses: { 200: { content: { 'application/json': infer T } } } } } ? T : never;

export type Member = Ok<'/api/orgs/{orgId}/members'>['members'][number];
export type Invitation = Ok<'/api/orgs/{orgId}/invitations'>['invitations'][number];
export type Role = Ok<'/api/orgs/{orgId}/roles'>['roles'][number];
export type Project = Ok<'/api/orgs/{orgId}/projects'>['projects'][number];
export type Catalogue = Ok<'/api/permissions'>;
export type PermissionName = Catalogue['permissions'][number]['name'];
export type RoleKey = Member['role'];

/** The org of the page (the route guard already checked the viewer may open it). */
export function useOrgPage(): { orgId: string; org: MyOrg | undefined } {
  const { orgId = '' } = useParams();
  return { orgId, org: useOrg(orgId) };
}

/** Query keys of the area, so an action re-reads exactly the lists it changed. */
export const keys = {
  members: (orgId: string) => ['people', orgId, 'members'],
  invitations: (orgId: string) => ['people', orgId, 'invitations'],
  roles: (orgId: string) => ['people', orgId, 'roles'],
  projects: (orgId: string) => ['people', orgId, 'projects'],
  projectMembers: (orgId: string, projectId: string) => ['people', orgId, 'projects', projectId, 'members'],
  catalogue: ['permissions'],
};

export function useMembers(orgId: string, enabled = true) {
  return useQuery({ queryKey: keys.members(orgId), enabled, queryFn: () => call(api.GET('/api/orgs/{orgId}/members', { params: { path: { orgId } } })) });
}

/** Custom roles are only readable with roles:read; without it the list is simply not asked for. */
export function useRoles(orgId: string, org: MyOrg | undefined) {
  return useQuery({ queryKey: keys.roles(orgId), enabled: can(org, 'GET /api/orgs/{orgId}/roles'), queryFn: () => call(api.GET('/api/orgs/{orgId}/roles', { params: { path: { orgId } } })) });
}

export function useProjects(orgId: string, org: MyOrg | undefined) {
  return useQuery({ queryKey: keys.projects(orgId), enabled: can(org, 'GET /api/orgs/{orgId}/projects'), queryFn: () => call(api.GET('/api/orgs/{orgId}/projects', { params: { path: { orgId } } })) });
}

export function useCatalogue() {
  return useQuery({ queryKey: keys.catalogue, staleTime: 300_000, queryFn: () => call(api.GET('/api/permissions')) });
}

const BUILTIN_LABELS: Record<string, string> = { owner: 'Owner', admin: 'Admin', member: 'Member', viewer: 'Viewer', project_viewer: 'Project viewer' };

export function builtinLabel(name: string): string {
  return BUILTIN_LABELS[name] ?? name;
}

/** A member's or invitation's role in words: a custom role by its name when the viewer may read roles. */
export function roleLabel(role: RoleKey, customRoleId: string | null, roles: readonly Role[] | undefined): string {
  if (role !== 'custom') return builtinLabel(role);
  const custom = roles?.find((r) => r.id === customRoleId);
  return custom ? `${custom.name} (custom role)` : 'Custom role';
}

/** The roles a viewer may hand out: owner only with owners:manage (the server refuses it otherwise). */
export function grantableRoles(org: MyOrg | undefined, roles: readonly Role[] | undefined): { value: string; label: string }[] {
  const builtin = Object.keys(BUILTIN_LABELS)
    .filter((r) => r !== 'owner' || org?.permissions.includes('owners:manage'))
    .map((r) => ({ value: r, label: builtinLabel(r) }));
  const custom = (roles ?? []).filter((r) => !r.builtin).map((r) => ({ value: `custom:${r.id}`, label: `${r.name} (custom role)` }));
  return [...builtin, ...custom];
}

/** The request body of a role choice encoded as a select value ("admin" or "custom:<uuid>"). */
export function assignmentOf(value: string): { role: RoleKey; customRoleId?: string } {
  if (value.startsWith('custom:')) return { role: 'custom', customRoleId: value.slice('custom:'.length) };
  return { role: value as RoleKey };
}

export function valueOf(role: RoleKey, customRoleId: string | null): string {
  return role === 'custom' && customRoleId ? `custom:${customRoleId}` : role;
}

const EXPLAINED: Record<string, string> = {
  last_owner: 'The organization must keep at least one owner. Make another member an owner first, then retry.',
  privilege_escalation: 'You can only grant roles and permissions you hold yourself, and only owners may grant or change the owner role.',
  conflict: 'The change conflicts with the current state (for example a name already taken, or a role still assigned to members).',
};

/** The server's refusal in words, with what to do about the ones people meet on these pages. */
export function Refusal({ error }: { error: unknown }) {
  if (!error) return null;
  const extra = error instanceof ApiError ? EXPLAINED[error.code] : undefined;
  return (
    <>
      <ProblemView error={error} />
      {extra ? <p className="hint">{extra}</p> : null}
    </>
  );
}

/** A destructive action asks once more in the page (no browser dialog), and shows it is busy. */
export function Confirm({ label, question, busy, onConfirm, className }: { label: string; question: ReactNode; busy?: boolean; onConfirm: () => void; className?: string }) {
  const [asking, setAsking] = useState(false);
  if (!asking) return <button type="button" className={className ?? 'danger'} onClick={() => setAsking(true)}>{label}</button>;
  return (
    <span className="row" role="group" aria-label={`Confirm: ${label}`}>
      <span>{question}</span>
      <button type="button" className="danger" disabled={busy} aria-busy={busy || undefined} onClick={() => { onConfirm(); setAsking(false); }}>
        {busy ? 'Working…' : `Yes, ${label.toLowerCase()}`}
      </button>
      <button type="button" className="secondary" onClick={() => setAsking(false)}>Cancel</button>
    </span>
  );
}
