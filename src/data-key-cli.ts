import type { DataKeyState } from './domains/keys/index.js';
import type { OwnerConnection } from './db/migrate.js';
import { systemContext } from './kernel/context.js';
import { AppError } from './kernel/errors.js';
import type { Services } from './services.js';

/** `palisade keys rotate-data-key | rollback-data-key | rotation-status`: the operator's side of data-key rotation. */
export const DATA_KEY_SUBCOMMANDS = ['rotate-data-key', 'rollback-data-key', 'rotation-status'] as const;
export type DataKeySubcommand = (typeof DATA_KEY_SUBCOMMANDS)[number];

export const isDataKeySubcommand = (s: string | undefined): s is DataKeySubcommand => (DATA_KEY_SUBCOMMANDS as readonly string[]).includes(s ?? '');

const pct = (done: number, total: number) => (total === 0 ? 100 : Math.floor((done / total) * 100));

/** One org's key state in a few lines, for people. */
export function describeState(slug: string, s: DataKeyState): string {
  const lines = [`${slug}:`];
  if (!s.activeKey) return `${slug}: no data key yet (nothing sealed)\n`;
  lines.push(`  active key ${s.activeKey.id} since ${s.activeKey.createdAt}${s.activeKey.nextRotationAt ? `, next scheduled rotation ${s.activeKey.nextRotationAt}` : ''}`);
  const r = s.rotation;
  if (r) {
    const what = r.status === 'running'
      ? r.phase === 'wait' ? `waiting for the final sweep at ${r.sweepAfter}` : `${r.phase === 'sweep' ? 'final sweep' : 're-encrypting'}`
      : r.status;
    lines.push(`  rotation ${r.id} (${r.trigger}) ${what}: ${r.done}/${r.total} values (${pct(r.done, r.total)}%), started ${r.startedAt}${r.finishedAt ? `, finished ${r.finishedAt}` : ''}`);
  }
  for (const k of s.retiredKeys) {
    lines.push(`  retired key ${k.id}: ${k.destroyedAt ? `destroyed ${k.destroyedAt}` : `rollback possible until ${k.destroyAfter ?? '?'}, then destroyed`}`);
  }
  return `${lines.join('\n')}\n`;
}

export async function dataKeyCommand(
  sub: DataKeySubcommand, slug: string | undefined, services: Services, owner: OwnerConnection,
  out: (s: string) => void, err: (s: string) => void,
): Promise<number> {
  // Orgs by slug over the owner connection, as `audit verify` does (nothing is bound yet); their keys through the runtime role.
  const orgs = slug
    ? await owner.query<{ org_id: string; slug: string }>('select org_id, slug from organizations where slug = $1', [slug])
    : await owner.query<{ org_id: string; slug: string }>('select org_id, slug from organizations order by slug');
  if (slug && orgs.length === 0) {
    err(`no organization ${slug}\n`);
    return 2;
  }
  const { dataKeys } = services;
  if (sub === 'rotation-status') {
    for (const o of orgs) out(describeState(o.slug, await dataKeys.state(o.org_id)));
    return 0;
  }
  const org = orgs[0];
  if (!slug || !org) {
    err(`keys ${sub} needs --org SLUG\n`);
    return 2;
  }
  try {
    const ctx = systemContext(`cli keys ${sub}`);
    const s = sub === 'rotate-data-key' ? await dataKeys.rotate(ctx, org.org_id) : await dataKeys.rollback(ctx, org.org_id);
    out(`${sub === 'rotate-data-key' ? 'rotated' : 'rolled back'} the data key of ${slug}: ${s.activeKey?.id ?? '?'} is active; re-encrypting ${s.rotation?.total ?? 0} values\n`);
  } catch (e) {
    if (e instanceof AppError) {
      err(`${e.message}\n`);
      return 2;
    }
    throw e;
  }
  // The pass runs here with progress, this org only. A server or worker beside it may advance
  // the same rotation: each batch locks the rotation row and starts from the cursor it finds.
  // The final sweep is due after the cache TTL and is left to the worker.
  for (;;) {
    const step = await dataKeys.step(org.org_id, 500);
    const s = await dataKeys.state(org.org_id);
    const r = s.rotation;
    if (r) out(`\r  ${r.done}/${r.total} values (${pct(r.done, r.total)}%)`);
    if (step !== 'more' || !r || r.status !== 'running' || r.phase === 'wait') {
      out('\n');
      out(describeState(slug, s));
      if (r?.status === 'running') out(`the final sweep runs from ${r.sweepAfter} in \`palisade serve\` or \`palisade worker\`\n`);
      return 0;
    }
  }
}
