import type { Keyring, WrappedKey } from '../../crypto/index.js';
import type { OwnerConnection } from '../../db/migrate.js';
import { headMac, headMacProblem, type ChainKeys } from '../audit/index.js';

/**
 * KEK rotation as an operator job (`palisade keys status`, `palisade keys rotate-kek`).
 *
 * Who writes: the owner connection, one transaction per batch with each org bound
 * (`palisade.org_id`, transaction-local) before its statement, so the tenant policy of org_keys
 * applies as it does to every tenant write. The runtime role keeps no UPDATE on data keys
 * (review R4 finding 3: a compromised server must not be able to overwrite them and shred a
 * tenant), so the server's connection is not used. Who reads every org: the same owner
 * connection, which must be superuser or BYPASSRLS, as for `palisade audit verify`.
 */

export interface KekUsage {
  kekId: string;
  configured: boolean;
  active: boolean;
  orgKeys: number;
  systemKeys: number;
  /** Chain MAC keys derive from KEKs: events and heads authenticated under this id. */
  auditEvents: number;
  auditHeads: number;
}

export class RotationRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RotationRefused';
  }
}

const SEES_ALL =
  'this command reads every org\u2019s data keys over the owner connection (DATABASE_URL), whose role must be superuser or have BYPASSRLS, as for `palisade audit verify`';

async function requireSeesAll(owner: OwnerConnection): Promise<void> {
  const [me] = await owner.query<{ sees_all: boolean }>('select rolsuper or rolbypassrls as sees_all from pg_roles where rolname = current_user');
  if (me?.sees_all !== true) throw new RotationRefused(SEES_ALL);
}

/** Per KEK id, configured or only named by stored rows: what it wraps and what it authenticates. */
export async function kekUsage(owner: OwnerConnection, kekIds: readonly string[]): Promise<KekUsage[]> {
  await requireSeesAll(owner);
  const wrapped = await owner.query<{ kek_id: string; org: number; system: number }>(
    `select kek_id, count(*) filter (where src = 'org')::int as org, count(*) filter (where src = 'system')::int as system
     from (select kek_id, 'org' as src from org_keys where kek_id is not null union all select kek_id, 'system' from system_keys) k group by kek_id`,
  );
  const events = await owner.query<{ key_id: string; n: number }>('select key_id, count(*)::int as n from audit_events group by key_id');
  const heads = await owner.query<{ key_id: string; n: number }>(`select key_id, count(*)::int as n from audit_heads where key_id <> '' group by key_id`);
  const ids = [...kekIds, ...new Set([...wrapped.map((w) => w.kek_id), ...events.map((e) => e.key_id), ...heads.map((h) => h.key_id)])]
    .filter((id, i, all) => all.indexOf(id) === i);
  return ids.map((kekId) => {
    const w = wrapped.find((r) => r.kek_id === kekId);
    return {
      kekId,
      configured: kekIds.includes(kekId),
      active: kekIds[0] === kekId,
      orgKeys: w?.org ?? 0,
      systemKeys: w?.system ?? 0,
      auditEvents: events.find((e) => e.key_id === kekId)?.n ?? 0,
      auditHeads: heads.find((h) => h.key_id === kekId)?.n ?? 0,
    };
  });
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/** What `keys status` prints; exit 1 when a wrapped key needs a KEK that is not configured. */
export function renderStatus(usage: readonly KekUsage[], setting: string): { out: string; code: number } {
  const lines: string[] = [];
  let missing = 0;
  const pending = usage.filter((u) => u.configured && !u.active).reduce((n, u) => n + u.orgKeys + u.systemKeys + u.auditHeads, 0);
  for (const u of usage) {
    const keys = u.orgKeys + u.systemKeys;
    const wraps = `wraps ${plural(keys, 'data key')} (${u.orgKeys} org, ${u.systemKeys} system)`;
    const audit = u.auditEvents + u.auditHeads > 0 ? `; authenticates ${plural(u.auditEvents, 'audit event')} and ${plural(u.auditHeads, 'chain head')}` : '';
    let verdict: string;
    if (!u.configured) {
      if (keys > 0 || u.auditHeads > 0) {
        missing += keys + u.auditHeads;
        const needs = [
          keys > 0 ? `${plural(keys, 'data key')} cannot be opened` : '',
          u.auditHeads > 0 ? `${plural(u.auditHeads, 'chain head')} cannot be checked (their orgs' next audited change would fail)` : '',
        ].filter(Boolean).join(' and ');
        verdict = `NOT CONFIGURED and needed: ${needs}; add ${u.kekId} back to ${setting} (after the active KEK)`;
      } else {
        verdict = `not configured: no data key needs it; its audit events verify only where it is configured (palisade audit verify)`;
      }
    } else if (u.active) {
      verdict = 'active: wraps every new data key';
    } else if (keys > 0 || u.auditHeads > 0) {
      // A chain head signed under it is checked before the org's next event: without the KEK,
      // every audited change of that org would fail (review of issue 14, P1).
      verdict = `still needed: run \`palisade keys rotate-kek\` to rewrap its keys and re-sign its chain heads under ${usage.find((x) => x.active)?.kekId ?? 'the active KEK'}`;
    } else if (u.auditEvents > 0) {
      verdict = `no data key or chain head needs it: it can be removed from ${setting}; but the audit events above were authenticated under it, and \`palisade audit verify\` can check them only while it is configured (keep it for that, it never wraps again)`;
    } else {
      verdict = `can be removed from ${setting}: nothing needs it`;
    }
    lines.push(`${u.kekId}: ${wraps}${audit}\n  ${verdict}`);
  }
  const summary = missing > 0
    ? `${plural(missing, 'data key or chain head', 'data keys and chain heads')} need${missing === 1 ? 's' : ''} a KEK that is not configured: their orgs' sealed values cannot be opened, or their audited changes fail`
    : pending > 0
      ? `${plural(pending, 'data key or chain head', 'data keys and chain heads')} still under an older KEK: run \`palisade keys rotate-kek\``
      : 'every data key is wrapped by the active KEK';
  return { out: `${lines.join('\n')}\n${summary}\n`, code: missing > 0 ? 1 : 0 };
}

interface PendingKey extends WrappedKey {
  /** The org id, or null for a system scope. */
  org: string | null;
  scope: string;
}

const PAGE = 1000;

/** Every key not under `active`, page by page: org keys in (org, id) order, then the system scopes'. */
async function* pendingKeys(owner: OwnerConnection, active: string, pageOrgs: number): AsyncGenerator<PendingKey[]> {
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    // A page ends on an org boundary: an org's keys are rewrapped in one statement.
    const orgs = await owner.query<{ org_id: string }>(
      `select distinct org_id::text from org_keys where kek_id <> $1 and org_id > $2::uuid order by 1 limit $3`,
      [active, after, pageOrgs],
    );
    if (orgs.length === 0) break;
    const rows = await owner.query<{ org_id: string; id: string; kek_id: string; wrapped: string }>(
      `select org_id::text, id::text, kek_id, wrapped from org_keys where kek_id <> $1 and org_id = any($2::uuid[]) order by org_id, id`,
      [active, orgs.map((o) => o.org_id)],
    );
    yield rows.map((r) => ({ org: r.org_id, scope: r.org_id, id: r.id, kekId: r.kek_id, wrapped: r.wrapped }));
    after = orgs[orgs.length - 1]?.org_id as string;
    if (orgs.length < pageOrgs) break;
  }
  const system = await owner.query<{ scope: string; id: string; kek_id: string; wrapped: string }>(
    'select scope, id::text, kek_id, wrapped from system_keys where kek_id <> $1 order by scope, id', [active],
  );
  if (system.length > 0) yield system.map((r) => ({ org: null, scope: r.scope, id: r.id, kekId: r.kek_id, wrapped: r.wrapped }));
}

interface StaleHead {
  org_id: string;
  seq: number;
  hash: string;
  key_id: string;
  mac: string;
}

/** Chain heads signed under another KEK than `active`, page by page in org order. */
async function* staleHeads(owner: OwnerConnection, active: string, page: number): AsyncGenerator<StaleHead[]> {
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const rows = await owner.query<{ org_id: string; seq: number | string; hash: string; key_id: string; mac: string }>(
      `select org_id::text, seq, hash, key_id, mac from audit_heads where key_id <> $1 and org_id > $2::uuid order by org_id limit $3`,
      [active, after, page],
    );
    if (rows.length === 0) return;
    yield rows.map((r) => ({ ...r, seq: Number(r.seq) }));
    after = rows[rows.length - 1]?.org_id as string;
    if (rows.length < page) return;
  }
}

/**
 * Review of issue 14 (P2): a rotation under a KEK no server holds (a typo, a fresh
 * `openssl rand` in the wrong shell) would wrap every data key under a key that exists nowhere.
 * Evidence that the servers hold it: a data key or a chain head already under it (a server
 * restarted with it wraps new orgs' keys and signs each org's next head with it), and such a head
 * must verify under the key configured here. Without any, the operator says it is new.
 */
async function assertServersUseActive(owner: OwnerConnection, chain: ChainKeys, active: string, newKek: string | undefined): Promise<void> {
  const [head] = await owner.query<{ org_id: string; seq: number | string; hash: string; key_id: string; mac: string }>(
    'select org_id::text, seq, hash, key_id, mac from audit_heads where key_id = $1 limit 1', [active]);
  if (head) {
    const problem = headMacProblem(chain, { ...head, seq: Number(head.seq) });
    if (problem) {
      throw new RotationRefused(`the KEK configured here as ${active} is not the one the servers sign with: a chain head signed under ${active} does not verify (${problem}). Nothing was changed.`);
    }
    return;
  }
  const [used] = await owner.query<{ used: boolean }>(
    'select exists (select 1 from org_keys where kek_id = $1) or exists (select 1 from system_keys where kek_id = $1) as used', [active]);
  if (used?.used === true || newKek === active) return;
  throw new RotationRefused(
    `nothing in the database is under the active KEK ${active} yet, so nothing shows that the servers hold it: restart them with it first ` +
      `(each org's next audited change signs its chain head under it) and run again, or pass --new-kek ${active} if this run is its first use. Nothing was changed.`,
  );
}

export interface RotationProgress {
  done: number;
  total: number;
}

export interface RotationResult {
  kekId: string;
  /** Keys not under the active KEK when the run started. */
  pending: number;
  rewrapped: number;
  orgs: number;
  systemKeys: number;
  /** Keys found already under the active KEK, skipped (a resumed run's earlier work). */
  alreadyActive: number;
  /** Audit chain heads signed under an older KEK when the run started, and how many were re-signed. */
  heads: number;
  headsResigned: number;
  seconds: number;
  /** Of which the check before the first write. */
  checkSeconds: number;
}

export interface RotationDeps {
  owner: OwnerConnection;
  keyring: Keyring;
  /** Orgs per transaction. */
  batchOrgs?: number;
  onProgress?: (p: RotationProgress) => void;
  /**
   * The operator's word that this run is the active KEK's first use (`--new-kek ID`): without it,
   * a rotation needs evidence that the servers already hold the active KEK.
   */
  newKek?: string;
  /** Evidence in the system chain, before the first change and after the last (the server's audit writer). */
  record?: (event: 'started' | 'finished', details: Record<string, string | number>) => Promise<void>;
}

/**
 * Checks, then rewraps. Nothing changes unless every stored key names a configured KEK and
 * opens under it (each pending key is unwrapped once beforehand, and one key already under the
 * active KEK, so a resumed run with a mistyped active KEK cannot wrap half the keys under
 * another key). Each batch commits on its own: a run stopped midway resumes where it was, and
 * keys already under the active KEK are skipped. A key changed meanwhile (compare-and-set on
 * its old wrapping) is left for the next run, never overwritten.
 */
export async function rotateKek(deps: RotationDeps): Promise<RotationResult> {
  const { owner, keyring } = deps;
  const started = performance.now();
  const active = keyring.activeKekId;
  const usage = await kekUsage(owner, keyring.kekIds);
  const unknown = usage.filter((u) => !u.configured && u.orgKeys + u.systemKeys > 0);
  if (unknown.length > 0) {
    throw new RotationRefused(
      `data keys are wrapped by KEK ids that are not configured: ${unknown.map((u) => `${u.kekId} (${plural(u.orgKeys + u.systemKeys, 'key')})`).join(', ')}; ` +
        'add them back (after the active KEK) and run again. Nothing was changed.',
    );
  }
  const total = usage.filter((u) => !u.active).reduce((n, u) => n + u.orgKeys + u.systemKeys, 0);
  const alreadyActive = usage.filter((u) => u.active).reduce((n, u) => n + u.orgKeys + u.systemKeys, 0);
  const refuse = (k: PendingKey, err: unknown): never => {
    const why = err instanceof Error && err.name === 'SealedValueError' ? 'does not open it' : 'cannot be used';
    throw new RotationRefused(
      `KEK ${k.kekId} ${why}: data key ${k.id} of ${k.org ? `org ${k.org}` : `system scope ${k.scope}`} fails to unwrap, so the KEK configured under that id is not the one that wrapped it (or the row was altered). Nothing was changed.`,
    );
  };
  // The active KEK too: a resumed run must wrap with the key it started with.
  const [sample] = await owner.query<{ org_id: string; id: string; wrapped: string }>(
    'select org_id::text, id::text, wrapped from org_keys where kek_id = $1 limit 1', [active]);
  if (sample) {
    const k = { org: sample.org_id, scope: sample.org_id, id: sample.id, kekId: active, wrapped: sample.wrapped };
    try {
      keyring.assertUnwraps(k.scope, k);
    } catch (err) {
      refuse(k, err);
    }
  }
  // Chain heads: each org's writer checks its head's MAC before the next event, so a head left
  // under a KEK that is later removed stops that org's audited changes. Re-signed below, after
  // its MAC is checked under the old KEK here: a head that does not verify is refused, never
  // laundered under the new key.
  const chain: ChainKeys = { activeKeyId: active, mac: (purpose, keyId, data) => keyring.mac(purpose, keyId, data) };
  let heads = 0;
  for await (const page of staleHeads(owner, active, PAGE)) {
    for (const h of page) {
      const problem = headMacProblem(chain, h);
      if (problem) {
        throw new RotationRefused(`the audit chain head of org ${h.org_id} does not verify (${problem}): run \`palisade audit verify --org ${h.org_id}\`. Nothing was changed.`);
      }
    }
    heads += page.length;
  }
  if (total === 0 && heads === 0) {
    const seconds = (performance.now() - started) / 1000;
    return { kekId: active, pending: 0, rewrapped: 0, orgs: 0, systemKeys: 0, alreadyActive, heads: 0, headsResigned: 0, seconds, checkSeconds: seconds };
  }
  for await (const page of pendingKeys(owner, active, PAGE)) {
    for (const k of page) {
      try {
        keyring.assertUnwraps(k.scope, k);
      } catch (err) {
        refuse(k, err);
      }
    }
  }

  await assertServersUseActive(owner, chain, active, deps.newKek);
  const checkSeconds = (performance.now() - started) / 1000;
  await deps.record?.('started', { kekId: active, pending: total });
  const batchOrgs = deps.batchOrgs ?? 200;
  let done = 0;
  let orgs = 0;
  let systemKeys = 0;
  deps.onProgress?.({ done, total });
  for await (const page of pendingKeys(owner, active, batchOrgs)) {
    const byScope = new Map<string, PendingKey[]>();
    for (const k of page) byScope.set(k.scope, [...(byScope.get(k.scope) ?? []), k]);
    const n = await owner.transaction(async (tx) => {
      let changed = 0;
      for (const [scope, keys] of byScope) {
        const org = keys[0]?.org ?? null;
        const next = keys.map((k) => keyring.rewrap(scope, k));
        const params = [keys.map((k) => k.id), next.map((w) => w.wrapped), keys.map((k) => k.kekId), keys.map((k) => k.wrapped), active];
        if (org !== null) {
          // This org only, by the tenant policy as well as by the statement.
          await tx.query(`select set_config('palisade.org_id', $1, true)`, [org]);
          const r = await tx.query<{ id: string }>(
            `update org_keys k set kek_id = $6, wrapped = x.wrapped
             from unnest($2::uuid[], $3::text[], $4::text[], $5::text[]) as x(id, wrapped, old_kek, old_wrapped)
             where k.org_id = $1::uuid and k.id = x.id and k.kek_id = x.old_kek and k.wrapped = x.old_wrapped
             returning k.id`, [org, ...params]);
          changed += r.length;
          orgs += 1;
        } else {
          const r = await tx.query<{ id: string }>(
            `update system_keys k set kek_id = $6, wrapped = x.wrapped
             from unnest($2::uuid[], $3::text[], $4::text[], $5::text[]) as x(id, wrapped, old_kek, old_wrapped)
             where k.scope = $1 and k.id = x.id and k.kek_id = x.old_kek and k.wrapped = x.old_wrapped
             returning k.id`, [scope, ...params]);
          changed += r.length;
          systemKeys += r.length;
        }
      }
      await tx.query(`select set_config('palisade.org_id', '', true)`);
      return changed;
    });
    done += n;
    deps.onProgress?.({ done, total });
  }
  // Each head compare-and-set on the position and MAC it was checked at: a head the org's writer
  // moved meanwhile is already signed by that server's active KEK (left for the next run if
  // that is still the old one).
  let headsResigned = 0;
  for await (const page of staleHeads(owner, active, batchOrgs)) {
    headsResigned += await owner.transaction(async (tx) => {
      let changed = 0;
      for (const h of page) {
        if (headMacProblem(chain, h)) continue; // moved and re-signed since the check; the next run looks again
        await tx.query(`select set_config('palisade.org_id', $1, true)`, [h.org_id]);
        const r = await tx.query<{ org_id: string }>(
          `update audit_heads set key_id = $6, mac = $7
           where org_id = $1::uuid and seq = $2 and hash = $3 and key_id = $4 and mac = $5 returning org_id`,
          [h.org_id, h.seq, h.hash, h.key_id, h.mac, active, headMac(chain, active, h)],
        );
        changed += r.length;
      }
      await tx.query(`select set_config('palisade.org_id', '', true)`);
      return changed;
    });
  }
  const result = {
    kekId: active, pending: total, rewrapped: done, orgs, systemKeys, alreadyActive, heads, headsResigned,
    seconds: (performance.now() - started) / 1000, checkSeconds,
  };
  await deps.record?.('finished', { kekId: active, rewrapped: done, orgs, systemKeys, headsResigned });
  return result;
}
