import { useState, type FormEvent } from 'react';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import type { MyOrg } from '../../auth/session';
import { Checkbox, Field, Submit } from '../../ui/form';
import { keys, Refusal, type Catalogue, type PermissionName, type Role } from './common';

/** Create or edit a custom role from the server's catalogue; only what the viewer holds can be granted. */
export function RoleEditor({ orgId, org, catalogue, role, onDone }: { orgId: string; org: MyOrg | undefined; catalogue: Catalogue; role?: Role; onDone: () => void }) {
  const [name, setName] = useState(role?.name ?? '');
  const [description, setDescription] = useState(role?.description ?? '');
  const [chosen, setChosen] = useState<PermissionName[]>(role?.permissions ?? []);
  const save = useAction(
    (body: { name: string; description: string; permissions: PermissionName[] }) =>
      role
        ? call(api.PATCH('/api/orgs/{orgId}/roles/{roleId}', { params: { path: { orgId, roleId: role.id } }, body }))
        : call(api.POST('/api/orgs/{orgId}/roles', { params: { path: { orgId } }, body })),
    { invalidate: [keys.roles(orgId)], onSuccess: onDone },
  );
  // Grouped by the part before the colon (members, projects, …), in catalogue order.
  const groups = new Map<string, Catalogue['permissions']>();
  for (const p of catalogue.permissions) {
    const g = p.name.split(':')[0] ?? p.name;
    groups.set(g, [...(groups.get(g) ?? []), p]);
  }
  const held = (p: PermissionName) => org?.permissions.includes(p) ?? false;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate({ name, description, permissions: chosen });
  };
  return (
    <form onSubmit={submit} aria-label={role ? `Edit role ${role.name}` : 'New custom role'}>
      <Field label="Role name" field="name" error={save.error} value={name} onChange={(e) => setName(e.target.value)} required maxLength={60} />
      <Field label="Description" field="description" error={save.error} value={description} onChange={(e) => setDescription(e.target.value)} maxLength={500} />
      {[...groups].map(([group, perms]) => (
        <fieldset key={group}>
          <legend>{group}</legend>
          {perms.map((p) => (
            <Checkbox
              key={p.name}
              checked={chosen.includes(p.name)}
              disabled={!held(p.name)}
              onChange={(e) => setChosen(e.target.checked ? [...chosen, p.name] : chosen.filter((x) => x !== p.name))}
              label={
                <>
                  <code>{p.name}</code> — {p.description}
                  {p.orgWide ? <span className="badge">org-wide</span> : null}
                  {!held(p.name) ? <span className="hint"> (you do not hold it, so you cannot grant it)</span> : null}
                </>
              }
            />
          ))}
        </fieldset>
      ))}
      <Refusal error={save.error} />
      <div className="row">
        <Submit busy={save.isPending} disabled={chosen.length === 0}>{role ? 'Save role' : 'Create role'}</Submit>
        <button type="button" className="secondary" onClick={onDone}>Cancel</button>
      </div>
    </form>
  );
}
