import { useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { ProblemView } from '../../ui/problem';
import { Loading, when } from '../../ui/table';

const PAGE = 20;

/** Server-side pages, newest first: `before` is the cursor of the page shown, the stack the way back. */
function useCursor() {
  const [stack, setStack] = useState<number[]>([]);
  const before = stack.at(-1);
  return {
    before,
    older: (next: number) => setStack([...stack, next]),
    newer: () => setStack(stack.slice(0, -1)),
    first: stack.length === 0,
  };
}

function Pager({ label, first, next, onNewer, onOlder }: { label: string; first: boolean; next: number | null; onNewer: () => void; onOlder: (n: number) => void }) {
  if (first && next === null) return null;
  return (
    <nav className="pager" aria-label={`${label} pages`}>
      <button type="button" disabled={first} onClick={onNewer}>Newer</button>
      <button type="button" disabled={next === null} onClick={() => next !== null && onOlder(next)}>Older</button>
    </nav>
  );
}

/** Who set the value, when and why. */
export function CredentialHistory({ orgId, credentialId }: { orgId: string; credentialId: string }) {
  const cursor = useCursor();
  const page = useQuery({
    queryKey: ['org', orgId, 'credentials', credentialId, 'rotations', cursor.before ?? 0],
    queryFn: () => call(api.GET('/api/orgs/{orgId}/integrations/credentials/{credentialId}/rotations', {
      params: { path: { orgId, credentialId }, query: { limit: PAGE, ...(cursor.before ? { before: cursor.before } : {}) } },
    })),
  });
  if (page.isPending) return <Loading what="rotation history" />;
  return (
    <>
      <ProblemView error={page.error} />
      <ul className="list" aria-label="Rotation history">
        {(page.data?.rotations ?? []).map((r) => (
          <li key={r.version}>
            Version {r.version}: {r.event} {when(r.at)} by <code>{r.by}</code>{r.reason ? <> — {r.reason}</> : null}
          </li>
        ))}
      </ul>
      <Pager label="Rotation history" first={cursor.first} next={page.data?.nextBefore ?? null} onNewer={cursor.newer} onOlder={cursor.older} />
    </>
  );
}

/** What each use came to, as the integration reported it. */
export function CredentialUses({ orgId, credentialId }: { orgId: string; credentialId: string }) {
  const cursor = useCursor();
  const page = useQuery({
    queryKey: ['org', orgId, 'credentials', credentialId, 'uses', cursor.before ?? 0],
    queryFn: () => call(api.GET('/api/orgs/{orgId}/integrations/credentials/{credentialId}/uses', {
      params: { path: { orgId, credentialId }, query: { limit: PAGE, ...(cursor.before ? { before: cursor.before } : {}) } },
    })),
  });
  if (page.isPending) return <Loading what="use log" />;
  const uses = page.data?.uses ?? [];
  return (
    <>
      <ProblemView error={page.error} />
      {uses.length === 0 ? <p className="empty">Not used yet.</p> : (
        <ul className="list" aria-label="Use log">
          {uses.map((u) => (
            <li key={u.use}>
              #{u.use} {u.status === 'ok' ? 'ok' : 'failed'} · {when(u.finishedAt)} · by <code>{u.by}</code>{u.message ? <> — {u.message}</> : null}
            </li>
          ))}
        </ul>
      )}
      <Pager label="Use log" first={cursor.first} next={page.data?.nextBefore ?? null} onNewer={cursor.newer} onOlder={cursor.older} />
    </>
  );
}
