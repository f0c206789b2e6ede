import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { useParams } from 'react-router';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { can } from '../../api/access';
import { useOrg } from '../../auth/session';
import { Checkbox, Field, Select, Submit } from '../../ui/form';
import { Loading, Paged } from '../../ui/table';
import { ProblemView } from '../../ui/problem';
import { ShownOnce } from '../../ui/secret';
import { StreamItem } from './StreamItem';

type NewStream =
  | { kind: 'https'; url: string; authorization?: string; description: string }
  | { kind: 'syslog'; host: string; port: number; tls: boolean; description: string };

/** The create form: an HTTPS receiver (NDJSON, signed) or a syslog collector (host, port, TLS). */
function StreamForm({ busy, error, onSubmit }: { busy: boolean; error: unknown; onSubmit: (s: NewStream) => void }) {
  const [kind, setKind] = useState<'https' | 'syslog'>('https');
  const [url, setUrl] = useState('');
  const [authorization, setAuthorization] = useState('');
  const [host, setHost] = useState('');
  const [port, setPort] = useState('6514');
  const [tls, setTls] = useState(true);
  const [description, setDescription] = useState('');
  const submit = (ev: FormEvent) => {
    ev.preventDefault();
    onSubmit(kind === 'https' ? { kind, url, ...(authorization ? { authorization } : {}), description } : { kind, host, port: Number(port), tls, description });
  };
  return (
    <form onSubmit={submit} aria-label="Add stream">
      <Select label="Destination type" value={kind} onChange={(e) => setKind(e.target.value === 'syslog' ? 'syslog' : 'https')}>
        <option value="https">HTTPS (NDJSON batches, signed)</option>
        <option value="syslog">Syslog over TCP (RFC 5424)</option>
      </Select>
      {kind === 'https' ? (
        <>
          <Field label="Receiver URL" type="url" field="url" error={error} value={url} onChange={(e) => setUrl(e.target.value)} required maxLength={2048}
            hint="Put the receiver's token in the Authorization header below, not in the URL: the URL is shown to everyone who manages streams." />
          <Field label="Authorization header (optional)" type="password" field="authorization" error={error} value={authorization} autoComplete="off"
            onChange={(e) => setAuthorization(e.target.value)} maxLength={1024} hint="e.g. Splunk <HEC token>, Bearer <token>; stored sealed, never shown again" />
        </>
      ) : (
        <>
          <Field label="Syslog host" field="host" error={error} value={host} onChange={(e) => setHost(e.target.value)} required maxLength={253} />
          <Field label="Port" type="number" field="port" error={error} value={port} min={1} max={65535} onChange={(e) => setPort(e.target.value)} required />
          <Checkbox label="TLS (RFC 5425; required in production)" checked={tls} onChange={(e) => setTls(e.target.checked)} />
        </>
      )}
      <Field label="Description" field="description" error={error} value={description} onChange={(e) => setDescription(e.target.value)} maxLength={200} />
      <ProblemView error={error} />
      <Submit busy={busy} disabled={kind === 'https' ? !url : !host || !port}>Add stream</Submit>
    </form>
  );
}

/** Audit streaming: the org's trail sent to its SIEM as events commit, with each stream's status and lag. */
export function AuditStreamsPage() {
  const { orgId = '' } = useParams();
  const org = useOrg(orgId);
  const key = ['org', orgId, 'audit-streams'];
  const list = useQuery({
    queryKey: key,
    queryFn: () => call(api.GET('/api/orgs/{orgId}/audit/streams', { params: { path: { orgId } } })),
    // Status and lag move on their own: look again now and then while the page is open.
    refetchInterval: 10_000,
  });
  const [secret, setSecret] = useState<string | null>(null);
  const [formKey, setFormKey] = useState(0);
  const create = useAction((body: NewStream) => call(api.POST('/api/orgs/{orgId}/audit/streams', { params: { path: { orgId } }, body })), {
    invalidate: [key],
    onSuccess: (r) => {
      setSecret(r.secret);
      setFormKey(formKey + 1);
    },
  });
  return (
    <>
      <p>
        Every audit event of this organization is sent, in order and at least once, to each enabled stream as it commits.
        A stream that cannot deliver keeps its place and retries; receivers deduplicate on the event&apos;s <code>seq</code>.
      </p>
      {can(org, 'POST /api/orgs/{orgId}/audit/streams') ? (
        <section aria-labelledby="new-stream">
          <h2 id="new-stream">Add a stream</h2>
          {secret ? <ShownOnce label="The stream signing secret" value={secret} filename="audit-stream-secret.txt" /> : null}
          <StreamForm key={formKey} busy={create.isPending} error={create.error} onSubmit={(s) => create.mutate(s)} />
        </section>
      ) : null}
      <h2>Streams</h2>
      <ProblemView error={list.error} />
      {list.isPending ? <Loading what="streams" /> : null}
      {list.data ? (
        <Paged label="Streams" empty="No audit streams yet." items={list.data.streams} render={(s) => <StreamItem key={s.id} orgId={orgId} org={org} stream={s} />} />
      ) : null}
    </>
  );
}
