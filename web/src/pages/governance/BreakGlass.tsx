import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { Checkbox, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';

/** The owners (at most three) who keep a local way in under SSO enforcement. */
export function BreakGlass({ orgId, current }: { orgId: string; current: readonly string[] }) {
  const members = useQuery({ queryKey: ['members', orgId], queryFn: () => call(api.GET('/api/orgs/{orgId}/members', { params: { path: { orgId } } })) });
  const [chosen, setChosen] = useState<string[]>([...current]);
  const save = useAction((owners: string[]) => call(api.PUT('/api/orgs/{orgId}/sso/break-glass', { params: { path: { orgId } }, body: { owners } })), { invalidate: [['sso-enforcement', orgId]] });
  const owners = members.data?.members.filter((m) => m.role === 'owner') ?? [];
  const submit = (e: FormEvent) => { e.preventDefault(); save.mutate(chosen); };
  return (
    <form onSubmit={submit} aria-label="Break-glass owners">
      <fieldset>
        <legend>Break-glass owners (at most three)</legend>
        {owners.map((o) => (
          <Checkbox key={o.userId} label={o.email} checked={chosen.includes(o.userId)}
            onChange={(e) => setChosen(e.target.checked ? [...chosen, o.userId] : chosen.filter((id) => id !== o.userId))} />
        ))}
      </fieldset>
      <ProblemView error={members.error ?? save.error} />
      {save.isSuccess ? <p role="status">Break-glass owners saved.</p> : null}
      <Submit busy={save.isPending}>Save break-glass owners</Submit>
    </form>
  );
}
