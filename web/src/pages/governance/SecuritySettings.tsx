import { useEffect, useState, type FormEvent } from 'react';
import { useParams } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import { useOrg } from '../../auth/session';
import { Checkbox, Field, Submit, TextArea } from '../../ui/form';
import { ProblemView } from '../../ui/problem';
import { Loading, when } from '../../ui/table';
import { allows } from './cidr';
import { DataKey } from './DataKey';
import { DeleteOrg } from './DeleteOrg';

type Change = { sessionIdleMinutes?: number | null; sessionAbsoluteHours?: number | null; mfaRequired?: boolean; mfaGraceDays?: number; adminIpAllowlist?: string[]; confirmLockout?: boolean };

const numberOrNull = (s: string): number | null => (s.trim() === '' ? null : Number(s));

export function SecuritySettings() {
  const { orgId = '' } = useParams();
  const org = useOrg(orgId);
  const settings = useQuery({ queryKey: ['settings', orgId], queryFn: () => call(api.GET('/api/orgs/{orgId}/settings', { params: { path: { orgId } } })) });
  // The viewer's address as the server sees it: the current session's ip (GET /api/me/sessions).
  const sessions = useQuery({ queryKey: ['me-sessions'], queryFn: () => call(api.GET('/api/me/sessions')) });
  const myIp = sessions.data?.sessions.find((s) => s.current)?.ip;
  const [idle, setIdle] = useState('');
  const [absolute, setAbsolute] = useState('');
  const [mfa, setMfa] = useState(false);
  const [grace, setGrace] = useState('7');
  const [list, setList] = useState('');
  const [pending, setPending] = useState<Change | null>(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    if (!settings.data) return;
    setIdle(settings.data.sessionIdleMinutes?.toString() ?? '');
    setAbsolute(settings.data.sessionAbsoluteHours?.toString() ?? '');
    setMfa(settings.data.mfaRequired);
    setList(settings.data.adminIpAllowlist.join('\n'));
  }, [settings.data]);
  const save = useAction(
    (body: Change) => call(api.PATCH('/api/orgs/{orgId}/settings', { params: { path: { orgId } }, body })),
    { invalidate: [['settings', orgId], ['audit', orgId]], onSuccess: () => { setPending(null); setSaved(true); } },
  );
  const writable = can(org, 'PATCH /api/orgs/{orgId}/settings');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setSaved(false);
    const entries = list.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
    const body: Change = { sessionIdleMinutes: numberOrNull(idle), sessionAbsoluteHours: numberOrNull(absolute), mfaRequired: mfa, ...(mfa ? { mfaGraceDays: Number(grace) } : {}) };
    const before = settings.data?.adminIpAllowlist ?? [];
    if (entries.join('\n') !== before.join('\n')) body.adminIpAllowlist = entries;
    // A list that leaves the viewer out locks them out of admin work: ask first, save nothing yet.
    if (body.adminIpAllowlist && myIp && !allows(body.adminIpAllowlist, myIp)) { setPending(body); return; }
    save.mutate(body);
  };
  if (settings.isPending) return <Loading what="security settings" />;
  if (!settings.data) return <ProblemView error={settings.error} />;
  return (
    <>
      <section aria-labelledby="sec">
        <h2 id="sec">Session and access policy</h2>
        {settings.data.mfaEnforcedFrom ? <p>Second factor enforced from {when(settings.data.mfaEnforcedFrom)}.</p> : null}
        <form onSubmit={submit}>
          <fieldset disabled={!writable}>
            <legend>Sessions and second factor</legend>
            <Field label="Session idle limit (minutes, empty for the default)" type="number" min={1} max={1440} field="body.sessionIdleMinutes" error={save.error} value={idle} onChange={(e) => setIdle(e.target.value)} />
            <Field label="Session absolute limit (hours, empty for the default)" type="number" min={1} max={720} field="body.sessionAbsoluteHours" error={save.error} value={absolute} onChange={(e) => setAbsolute(e.target.value)} />
            <Checkbox label="Require a second factor for every member" checked={mfa} onChange={(e) => setMfa(e.target.checked)} />
            {mfa ? <Field label="Grace period (days)" type="number" min={0} max={90} field="body.mfaGraceDays" error={save.error} value={grace} onChange={(e) => setGrace(e.target.value)} /> : null}
            <TextArea label="Admin IP allowlist (one address or CIDR range a line; empty for anywhere)" rows={4} value={list} onChange={(e) => setList(e.target.value)} />
            <p className="hint">Your current address: {myIp ?? 'unknown'}</p>
          </fieldset>
          {!writable ? <p>Your role may read these settings but not change them.</p> : null}
          {pending ? (
            <div role="alert" className="warning">
              <p><strong>This allowlist does not include your current address ({myIp}).</strong> Saving it blocks your own admin work from here.</p>
              <button type="button" onClick={() => save.mutate({ ...pending, confirmLockout: true })}>Save anyway</button>
              <button type="button" onClick={() => setPending(null)}>Cancel</button>
            </div>
          ) : null}
          <ProblemView error={save.error} />
          {saved ? <p role="status">Settings saved.</p> : null}
          {writable ? <Submit busy={save.isPending}>Save settings</Submit> : null}
        </form>
      </section>
      <DataKey org={org} orgId={orgId} />
      {org && can(org, 'DELETE /api/orgs/{orgId}') ? <DeleteOrg org={org} /> : null}
    </>
  );
}
