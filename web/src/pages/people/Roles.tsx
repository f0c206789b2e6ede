import { useState } from 'react';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import { Loading, Paged } from '../../ui/table';
import { builtinLabel, Confirm, keys, Refusal, useCatalogue, useOrgPage, useRoles, type Role } from './common';
import { RoleEditor } from './RoleEditor';

/** Built-in roles (read-only) and the org's custom roles. */
export function Roles() {
  const { orgId, org } = useOrgPage();
  const roles = useRoles(orgId, org);
  const catalogue = useCatalogue();
  const [editing, setEditing] = useState<Role | 'new' | null>(null);
  const remove = useAction((roleId: string) => call(api.DELETE('/api/orgs/{orgId}/roles/{roleId}', { params: { path: { orgId, roleId } } })), { invalidate: [keys.roles(orgId)] });
  const writable = can(org, 'POST /api/orgs/{orgId}/roles');
  if (roles.isPending) return <Loading what="roles" />;
  if (roles.error) return <Refusal error={roles.error} />;
  const all = roles.data.roles;
  return (
    <>
      <section aria-labelledby="custom-h">
        <h2 id="custom-h">Custom roles</h2>
        {writable && editing === null ? <button type="button" onClick={() => setEditing('new')}>Create custom role</button> : null}
        {editing !== null && catalogue.data ? (
          <RoleEditor key={editing === 'new' ? 'new' : editing.id} orgId={orgId} org={org} catalogue={catalogue.data} role={editing === 'new' ? undefined : editing} onDone={() => setEditing(null)} />
        ) : null}
        <Refusal error={catalogue.error} />
        <Paged label="Custom roles" items={all.filter((r) => !r.builtin)} empty="No custom roles yet." render={(r) => (
          <li key={r.id} aria-label={r.name}>
            <div>
              <strong>{r.name}</strong> <span>{r.description}</span>
              <div className="hint">{r.permissions.join(', ')}</div>
            </div>
            {writable ? (
              <div className="row">
                <button type="button" className="secondary" onClick={() => setEditing(r)}>Edit {r.name}</button>
                <Confirm label={`Delete ${r.name}`} question="Delete this role?" busy={remove.isPending} onConfirm={() => remove.mutate(r.id)} />
              </div>
            ) : null}
          </li>
        )} />
        <Refusal error={remove.error} />
      </section>
      <section aria-labelledby="builtin-h">
        <h2 id="builtin-h">Built-in roles</h2>
        <Paged label="Built-in roles" items={all.filter((r) => r.builtin)} empty="No built-in roles." render={(r) => (
          <li key={r.id}>
            <details>
              <summary><strong>{builtinLabel(r.name)}</strong> — {r.description} ({r.permissions.length} permissions)</summary>
              <p>{r.permissions.join(', ')}</p>
            </details>
          </li>
        )} />
      </section>
    </>
  );
}
