import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import type { MyOrg } from '../../auth/session';
import { Submit, TextArea } from '../../ui/form';
import { ProblemView } from '../../ui/problem';

/** The origins publishable keys are accepted from (settings.browserOrigins, only that field). */
export function BrowserOrigins({ org, orgId }: { org: MyOrg; orgId: string }) {
  const readable = can(org, 'GET /api/orgs/{orgId}/settings');
  const settings = useQuery({
    queryKey: ['org', orgId, 'settings'],
    queryFn: () => call(api.GET('/api/orgs/{orgId}/settings', { params: { path: { orgId } } })),
    enabled: readable,
  });
  const [draft, setDraft] = useState<string | null>(null);
  const save = useAction(
    (origins: string[]) => call(api.PATCH('/api/orgs/{orgId}/settings', { params: { path: { orgId } }, body: { browserOrigins: origins } })),
    { invalidate: [['org', orgId, 'settings']], onSuccess: () => setDraft(null) },
  );
  if (!readable || !settings.data) return null;
  const current = settings.data.browserOrigins;
  const text = draft ?? current.join('\n');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate(text.split('\n').map((s) => s.trim()).filter(Boolean));
  };
  const editable = can(org, 'PATCH /api/orgs/{orgId}/settings');
  return (
    <section aria-labelledby="origins">
      <h2 id="origins">Browser origins for publishable keys</h2>
      <form onSubmit={submit}>
        <TextArea label="Origins, one a line (https://app.example.com)" value={text} readOnly={!editable} onChange={(e) => setDraft(e.target.value)} />
        <ProblemView error={save.error} />
        {editable ? <Submit busy={save.isPending}>Save origins</Submit> : null}
      </form>
    </section>
  );
}
