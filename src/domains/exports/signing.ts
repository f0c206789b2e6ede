import { sql } from 'kysely';
import { generateExportSigningKey, publicXOf, SealedValueError, type FieldRef } from '../../crypto/index.js';
import { exec, one, rows, type Database, type Tx } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import type { Sealer } from '../keys/index.js';

/** The system scope whose data key seals the private half (system_keys, wrapped by the KEK). */
export const SIGNING_SCOPE = 'export-signing';

const privateRef = (kid: string): FieldRef => ({ scope: SIGNING_SCOPE, table: 'export_signing_keys', column: 'private_sealed', row: kid });

export interface PublishedKey {
  kty: string;
  crv: string;
  x: string;
  kid: string;
  alg: string;
  use: string;
}

/**
 * The deployment's manifest signing keys. Made on first use; the private half is sealed with
 * the `export-signing` system data key (so it is as safe at rest as any sealed value, and follows
 * KEK rotation), and opened only to sign. Every key ever made stays published: an archive made
 * before a new key still verifies.
 */
export function createSigningKeys(deps: { db: Database; sealer: Sealer; clock: Clock }) {
  /** Keys whose private half has opened to them in this process (a key row is never edited). */
  const vouched = new Set<string>();
  async function activeRow(tx: Tx) {
    return one<{ id: string; private_sealed: string }>(tx, sql`select id, private_sealed from export_signing_keys where active`);
  }
  return {
    /** The active key's id and its private half (PKCS#8, base64), made if there is none yet. */
    async signer(): Promise<{ kid: string; privatePkcs8: string }> {
      return deps.db.withSystem('tenant export: the manifest signing key', async (tx) => {
        let row = await activeRow(tx);
        if (!row) {
          const k = generateExportSigningKey();
          const sealed = await deps.sealer.seal(tx, privateRef(k.kid), k.privatePkcs8);
          // Two workers making the first key at once: the unique index keeps one.
          await exec(tx, sql`insert into export_signing_keys (id, public_jwk, private_sealed, active, created_at)
                             values (${k.kid}, ${JSON.stringify(k.publicJwk)}::jsonb, ${sealed}, true, ${deps.clock.now().toISOString()})
                             on conflict do nothing`);
          row = await activeRow(tx);
          if (!row) throw new Error('no active export signing key');
        }
        return { kid: row.id, privatePkcs8: await deps.sealer.open(tx, privateRef(row.id), row.private_sealed) };
      });
    },
    /**
     * Every public key, as JWKs (RFC 8037 OKP, Ed25519), each published only once its sealed
     * private half opened (under the KEK the database does not hold) to the very key: a row
     * written with the database role alone, to make forged archives verify, is never published.
     */
    async published(): Promise<PublishedKey[]> {
      return deps.db.withSystem('tenant export: published signing keys', async (tx) => {
        const list = await rows<{ id: string; public_jwk: unknown; private_sealed: string }>(
          tx, sql`select id, public_jwk, private_sealed from export_signing_keys order by created_at, id`);
        const out: PublishedKey[] = [];
        for (const r of list) {
          const jwk = (typeof r.public_jwk === 'string' ? JSON.parse(r.public_jwk) : r.public_jwk) as PublishedKey;
          if (!vouched.has(`${r.id}:${jwk.x}`)) {
            try {
              if (publicXOf(await deps.sealer.open(tx, privateRef(r.id), r.private_sealed)) !== jwk.x || jwk.kid !== r.id) continue;
            } catch (err) {
              if (err instanceof SealedValueError) continue;
              throw err;
            }
            vouched.add(`${r.id}:${jwk.x}`);
          }
          out.push(jwk);
        }
        return out;
      });
    },
  };
}

export type SigningKeys = ReturnType<typeof createSigningKeys>;
