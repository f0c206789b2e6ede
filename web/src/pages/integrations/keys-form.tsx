import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import type { MyOrg } from '../../auth/session';
import type { paths } from '../../api/schema.gen';
import { Checkbox, Field, Select, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';
import { ShownOnce } from '../../ui/secret';

/** A scope an API key may carry (the server's enum, a subset of the permissions). */
type KeyPerm = paths['/api/orgs/{orgId}/api-keys']['post']['requestBody']['content']['application/json']['permissions'][number];

/**
 * The new-key form. Scopes offered are only those the viewer holds AND an API key may carry (the
 * server refuses anything else as privilege escalation); publishable keys only browser-safe ones,
 * project-bound keys only project-key ones. The token is shown once, from memory.
 */
export function NewKeyForm({ org, orgId }: { org: MyOrg; orgId: string }) {
  const catalogue = useQuery({ queryKey: ['permissions'], queryFn: () => call(api.GET('/api/permissions')) });
  const projects = useQuery({
    queryKey: ['org', orgId, 'projects'],
    queryFn: () => call(api.GET('/api/orgs/{orgId}/projects', { params: { path: { orgId } } })),
    enabled: can(org, 'GET /api/orgs/{orgId}/projects'),
  });
  const [name, setName] = useState('');
  const [kind, setKind] = useState<'secret' | 'publishable'>('secret');
  const [projectId, setProjectId] = useState('');
  const [expires, setExpires] = useState('');
  const [picked, setPicked] = useState<KeyPerm[]>([]);
  const [token, setToken] = useState<string | null>(null);
  const create = useAction(
    () =>
      call(
        api.POST('/api/orgs/{orgId}/api-keys', {
          params: { path: { orgId } },
          body: {
            name,
            kind,
            permissions: picked,
            projectId: projectId || null,
            expiresAt: expires ? new Date(`${expires}T23:59:59`).toISOString() : null,
          },
        }),
      ),
    {
      invalidate: [['org', orgId, 'api-keys']],
      onSuccess: (r) => {
        setToken(r.token);
        setName('');
        setPicked([]);
      },
    },
  );
  const offered = (catalogue.data?.permissions ?? []).filter(
    (p) => org.permissions.includes(p.name) && (kind === 'publishable' ? p.browserSafe : p.apiKey) && (!projectId || p.projectKey),
  );
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(undefined);
  };
  return (
    <section aria-labelledby="new-key">
      <h2 id="new-key">Create an API key</h2>
      {token ? <ShownOnce label="The API key token" value={token} filename="api-key.txt" /> : null}
      <form onSubmit={submit}>
        <Field label="Name" field="name" error={create.error} value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
        <Select label="Kind" value={kind} onChange={(e) => { setKind(e.target.value as 'secret' | 'publishable'); setPicked([]); }}>
          <option value="secret">Secret (server-side)</option>
          <option value="publishable">Publishable (browser, registered origins only)</option>
        </Select>
        {projects.data ? (
          <Select label="Project binding" value={projectId} onChange={(e) => { setProjectId(e.target.value); setPicked([]); }}>
            <option value="">Every project I reach</option>
            {projects.data.projects.map((p) => (
              <option key={p.id} value={p.id}>{p.name}</option>
            ))}
          </Select>
        ) : null}
        <Field label="Expires on (optional)" type="date" field="expiresAt" error={create.error} value={expires} onChange={(e) => setExpires(e.target.value)} />
        <fieldset>
          <legend>Scopes</legend>
          {offered.length === 0 ? <p className="empty">No scope you hold can be given to this kind of key.</p> : null}
          {offered.map((p) => (
            <Checkbox
              key={p.name}
              label={<><code>{p.name}</code> — {p.description}</>}
              checked={picked.includes(p.name as KeyPerm)}
              onChange={(e) => setPicked(e.target.checked ? [...picked, p.name as KeyPerm] : picked.filter((x) => x !== p.name))}
            />
          ))}
        </fieldset>
        <ProblemView error={create.error} />
        <Submit busy={create.isPending} disabled={picked.length === 0 || !name}>Create key</Submit>
      </form>
    </section>
  );
}
