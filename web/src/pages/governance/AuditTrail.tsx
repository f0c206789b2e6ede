import { useState, type FormEvent } from 'react';
import { useParams } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import { api, call } from '../../api/client';
import { Field, Submit } from '../../ui/form';
import { ProblemView } from '../../ui/problem';
import { Loading, when } from '../../ui/table';
import { ChainStatus } from './ChainStatus';
import { useAuditActions } from './actions';
import { can } from '../../api/access';
import { useOrg } from '../../auth/session';
import { useMembers } from '../people/common';

interface Filters { actor: string; action: string; target: string; from: string; to: string }
const EMPTY: Filters = { actor: '', action: '', target: '', from: '', to: '' };

/** Only the filters that are set (the server refuses empty strings). */
function query(f: Filters, before: number | undefined) {
  const q: { actor?: string; action?: string; target?: string; from?: string; to?: string; before?: number; limit: number } = { limit: 20 };
  for (const k of ['actor', 'action', 'target', 'from', 'to'] as const) if (f[k].trim()) q[k] = f[k].trim();
  if (before !== undefined) q.before = before;
  return q;
}

export function AuditTrail() {
  const { orgId = '' } = useParams();
  const actions = useAuditActions();
  // People by email where the viewer may list members; ids otherwise (the trail stands alone).
  const members = useMembers(orgId, can(useOrg(orgId), 'GET /api/orgs/{orgId}/members'));
  const emailOf = new Map((members.data?.members ?? []).map((m) => [m.userId, m.email]));
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [applied, setApplied] = useState<Filters>(EMPTY);
  // Cursors of the pages shown, newest first: "Older" pushes nextBefore, "Newer" pops.
  const [cursors, setCursors] = useState<(number | undefined)[]>([undefined]);
  const before = cursors[cursors.length - 1];
  const trail = useQuery({
    queryKey: ['audit', orgId, applied, before],
    queryFn: () => call(api.GET('/api/orgs/{orgId}/audit', { params: { path: { orgId }, query: query(applied, before) } })),
  });
  const apply = (f: Filters) => { setDraft(f); setApplied(f); setCursors([undefined]); };
  const submit = (e: FormEvent) => { e.preventDefault(); apply(draft); };
  const set = (k: keyof Filters) => (e: { target: { value: string } }) => setDraft({ ...draft, [k]: e.target.value });
  return (
    <>
      <ChainStatus orgId={orgId} />
      <section aria-labelledby="trail">
        <h2 id="trail">Events</h2>
        <form onSubmit={submit} aria-label="Filter the audit trail">
          <Field label="Actor (user or key id)" value={draft.actor} onChange={set('actor')} />
          <Field label="Action" list="audit-actions" value={draft.action} onChange={set('action')} hint="Pick from the catalogue or type an older name" />
          {/* A datalist, not a select: older events may carry retired action names. */}
          <datalist id="audit-actions">{actions.map((a) => <option key={a} value={a} />)}</datalist>
          <Field label="Target (entity id)" value={draft.target} onChange={set('target')} />
          <Field label="From (ISO date or date-time)" value={draft.from} onChange={set('from')} placeholder="2026-12-04" />
          <Field label="To (ISO date or date-time)" value={draft.to} onChange={set('to')} />
          <Submit busy={trail.isFetching}>Filter</Submit>
          <button type="button" onClick={() => apply(EMPTY)}>Clear filters</button>
        </form>
        <ProblemView error={trail.error} />
        {trail.isPending ? <Loading what="audit events" /> : null}
        {trail.data ? (
          trail.data.events.length === 0 ? <p className="empty">No events match.</p> : (
            <ul className="list" aria-label="Audit events">
              {trail.data.events.map((e) => (
                <li key={e.id}>
                  <p>
                    <strong>{e.action}</strong> — {e.result} — <time dateTime={e.at}>{when(e.at)}</time>
                  </p>
                  <p>
                    Actor: {e.actor.type}{' '}
                    {e.actor.id ? <span title={e.actor.id}>{emailOf.get(e.actor.id) ?? e.actor.id}</span> : null}
                    {e.actor.role ? ` (${e.actor.role})` : ''}
                    {e.ip ? ` · IP ${e.ip}` : ''}
                  </p>
                  {e.target ? (
                    <p>
                      Target: {e.target.type}{' '}
                      <button type="button" className="link" onClick={() => apply({ ...EMPTY, target: e.target?.id ?? '' })} aria-label={`History of ${e.target.type} ${e.target.id}`}>
                        {e.target.id}
                      </button>
                    </p>
                  ) : null}
                  {Object.keys(e.details).length ? <pre>{JSON.stringify(e.details, null, 2)}</pre> : null}
                  {e.personal === 'unreadable' ? <p className="hint">Details, address and user agent unreadable: their key was destroyed, or they do not match the chain.</p> : null}
                  {e.personal === 'erased' ? <p className="hint">Details, address and user agent erased (a data-subject erasure); the event stays in the chain.</p> : null}
                </li>
              ))}
            </ul>
          )
        ) : null}
        <nav className="pager" aria-label="Audit pages">
          <button type="button" disabled={cursors.length < 2} onClick={() => setCursors(cursors.slice(0, -1))}>Newer</button>
          <button type="button" disabled={!trail.data?.nextBefore} onClick={() => trail.data?.nextBefore && setCursors([...cursors, trail.data.nextBefore])}>Older</button>
        </nav>
      </section>
    </>
  );
}
