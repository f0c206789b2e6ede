import type { Config } from './config/index.js';
import { createPkcs11Kek, KEK_ID, KeyProviderError, type Keyring } from './crypto/index.js';
import type { Database } from './db/database.js';
import type { OwnerConnection } from './db/migrate.js';
import type { AuditWriter } from './domains/audit/index.js';
import { kekUsage, renderStatus, rotateKek, RotationRefused } from './domains/keys/index.js';
import { progressReporter } from './domains/keys/progress.js';
import { systemContext } from './kernel/context.js';
import { SYSTEM_ORG_ID } from './kernel/ids.js';

interface KeysDeps {
  config: Pick<Config, 'kekProvider'>;
  keyring: Keyring;
  audit: AuditWriter;
  db: Database;
  owner: OwnerConnection;
}

/** The setting an operator edits to add or remove a KEK, named in what the commands print. */
function kekSetting(config: Pick<Config, 'kekProvider'>): string {
  switch (config.kekProvider.kind) {
    case 'file':
      return 'PALISADE_KEK_DIR';
    case 'pkcs11':
      return 'PALISADE_PKCS11_KEYS';
    default:
      return 'PALISADE_KEKS';
  }
}

/** `palisade keys status` and `palisade keys rotate-kek`: output on stdout, progress and refusals on stderr. */
export async function keysCommand(sub: 'status' | 'rotate-kek', deps: KeysDeps, batchOrgs: number | undefined, newKek?: string): Promise<number> {
  try {
    if (sub === 'status') {
      const { out, code } = renderStatus(await kekUsage(deps.owner, deps.keyring.kekIds), kekSetting(deps.config));
      process.stdout.write(out);
      return code;
    }
    const ctx = systemContext('cli keys rotate-kek');
    const result = await rotateKek({
      owner: deps.owner,
      keyring: deps.keyring,
      ...(batchOrgs === undefined ? {} : { batchOrgs }),
      ...(newKek === undefined ? {} : { newKek }),
      onProgress: progressReporter(process.stderr, 'rewrapping data keys'),
      record: (event, details) =>
        deps.db.withTenant({ orgId: SYSTEM_ORG_ID, projectIds: null }, async (tx) => {
          await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, { action: event === 'started' ? 'keys.kek_rotation_started' : 'keys.kek_rotation_finished', details });
        }),
    });
    const rate = result.seconds > 0 ? Math.round(result.rewrapped / result.seconds) : 0;
    if (result.pending === 0 && result.heads === 0) {
      process.stdout.write(result.alreadyActive === 0
        ? 'nothing to rewrap: no data key is stored yet\n'
        : `nothing to rewrap: all ${result.alreadyActive} data keys are wrapped by the active KEK ${result.kekId}\n`);
      return 0;
    }
    process.stdout.write(
      `rewrapped ${result.rewrapped} data keys (${result.orgs} orgs, ${result.systemKeys} system) under ${result.kekId} in ${result.seconds.toFixed(1)} s (${rate} keys/s); ` +
        `${result.alreadyActive} were already under it; re-signed ${result.headsResigned} of ${result.heads} audit chain heads. ` +
        '`palisade keys status` says which KEKs can now be removed\n',
    );
    if (result.headsResigned < result.heads) {
      process.stdout.write(`${result.heads - result.headsResigned} chain heads moved meanwhile (signed by a server still on the old KEK?): restart every server with the new KEK first, then run \`palisade keys rotate-kek\` again\n`);
    }
    // A key changed by someone else while it was rewrapped is left alone (compare-and-set).
    if (result.rewrapped < result.pending) {
      process.stdout.write(`${result.pending - result.rewrapped} data keys changed meanwhile and were left as they are: run \`palisade keys rotate-kek\` again\n`);
    }
    return 0;
  } catch (err) {
    if (err instanceof RotationRefused) {
      process.stderr.write(`refusing: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

/**
 * `palisade keys create-kek LABEL`: needs no database, only the token settings. The new label
 * is then put first in PALISADE_PKCS11_KEYS (servers restarted) and `keys rotate-kek` run.
 */
export function createKekCommand(config: Pick<Config, 'kekProvider'>, label: string | undefined): number {
  const provider = config.kekProvider;
  if (provider.kind !== 'pkcs11') {
    process.stderr.write('keys create-kek makes a KEK inside a PKCS#11 token: set PALISADE_KEK_PROVIDER=pkcs11 and its settings (for PALISADE_KEKS: openssl rand -base64 32)\n');
    return 2;
  }
  if (!label || !KEK_ID.test(label)) {
    process.stderr.write('keys create-kek needs a LABEL: 1-32 of A-Z a-z 0-9 _ - (it becomes the KEK id)\n');
    return 2;
  }
  try {
    createPkcs11Kek(provider, label);
  } catch (err) {
    if (err instanceof KeyProviderError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
  process.stdout.write(`created KEK ${label} (and ${label}.mac) in token "${provider.token}": put ${label} first in PALISADE_PKCS11_KEYS, restart, then run \`palisade keys rotate-kek\`\n`);
  return 0;
}
