import { useParams } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { useAction } from '../../api/action';
import { ProblemView } from '../../ui/problem';
import { Loading, when } from '../../ui/table';

const STATE: Record<string, string> = {
  queued: 'Queued',
  running: 'Being written',
  done: 'Ready to download',
  failed: 'Failed',
  expired: 'Deleted (past its retention)',
};

/**
 * The owner's tenant export: ask for an archive of every row the org owns, watch it being written
 * (polled while it is), and download it through a single-use link. Also shown while the org awaits
 * its shredding: exporting before the keys are destroyed is the point.
 */
export function DataExport({ orgId }: { orgId: string }) {
  const list = useQuery({
    queryKey: ['exports', orgId],
    queryFn: () => call(api.GET('/api/orgs/{orgId}/exports', { params: { path: { orgId } } })),
    refetchInterval: (q) => (q.state.data?.exports.some((e) => e.state === 'queued' || e.state === 'running') ? 1500 : false),
  });
  const request = useAction(() => call(api.POST('/api/orgs/{orgId}/exports', { params: { path: { orgId } } })), { invalidate: [['exports', orgId]] });
  // The link is spent by the browser's download at once: it is never shown, stored or reused.
  const download = useAction(
    (exportId: string) => call(api.POST('/api/orgs/{orgId}/exports/{exportId}/link', { params: { path: { orgId, exportId } } })),
    { onSuccess: (link) => window.location.assign(link.url) },
  );
  if (list.isPending) return <Loading what="the exports" />;
  if (!list.data) return <ProblemView error={list.error} />;
  const busy = list.data.exports.some((e) => e.state === 'queued' || e.state === 'running');
  return (
    <section aria-labelledby="data-export">
      <h2 id="data-export">Export all data</h2>
      <p>
        An archive (tar) of every row the organization owns, its audit trail included: one NDJSON file per table and batch, and a
        manifest with row counts and SHA-256 digests, signed with this deployment&rsquo;s published key. Secrets (key and token hashes,
        sealed credentials, data keys) are left out; the manifest says what and why. Each download link works once, for a few minutes.
      </p>
      <button type="button" disabled={busy || request.isPending} aria-busy={request.isPending || undefined} onClick={() => request.mutate(undefined)}>
        Export all data
      </button>
      <ProblemView error={request.error} />
      <ProblemView error={download.error} />
      {list.data.exports.length === 0 ? <p>No export yet.</p> : (
        <ul aria-label="Exports">
          {list.data.exports.map((e) => {
            const pct = e.rowsTotal === 0 ? (e.state === 'done' ? 100 : 0) : Math.floor((e.rowsDone / e.rowsTotal) * 100);
            return (
              <li key={e.id}>
                <p>
                  Requested {when(e.requestedAt)}: <strong>{STATE[e.state] ?? e.state}</strong>
                  {e.state === 'done' && e.expiresAt ? <>, kept until {when(e.expiresAt)}</> : null}
                  {e.error ? <> ({e.error})</> : null}.
                </p>
                {e.state === 'queued' || e.state === 'running' ? (
                  <>
                    <label htmlFor={`export-${e.id}`}>Rows written: {e.rowsDone} of {e.rowsTotal}</label>{' '}
                    <progress id={`export-${e.id}`} max={100} value={pct}>{pct}%</progress>
                  </>
                ) : null}
                {e.state === 'done' ? (
                  <>
                    <p>{e.rowsDone} rows; manifest SHA-256 <code>{e.manifestSha256?.slice(0, 16)}&hellip;</code></p>
                    <button type="button" disabled={download.isPending} onClick={() => download.mutate(e.id)}>Download export</button>
                  </>
                ) : null}
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}

export function DataExportPage() {
  const { orgId = '' } = useParams();
  return <DataExport orgId={orgId} />;
}
