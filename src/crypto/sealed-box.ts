import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

/**
 * Authenticated encryption (AES-256-GCM) of short texts a client carries for us and must
 * neither read nor change (an SSO flow's PKCE verifier and nonce in a cookie). The key is
 * derived from `secret` for one `purpose` (HKDF-SHA256), which is also the associated data,
 * so a box sealed for one purpose never opens for another.
 */
export function createSealedBox(secret: Buffer, purpose: string) {
  const key = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), `palisade sealed box: ${purpose}`, 32));
  const aad = Buffer.from(purpose, 'utf8');
  return {
    seal(text: string): string {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', key, iv);
      c.setAAD(aad);
      const body = Buffer.concat([c.update(text, 'utf8'), c.final()]);
      return Buffer.concat([iv, c.getAuthTag(), body]).toString('base64url');
    },
    /** The text, or null for anything not sealed by this box (changed, truncated, another purpose). */
    open(value: string, maxLength = 4096): string | null {
      if (value.length > maxLength || !/^[A-Za-z0-9_-]+$/.test(value)) return null;
      const raw = Buffer.from(value, 'base64url');
      if (raw.length < 29) return null;
      try {
        const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
        d.setAAD(aad);
        d.setAuthTag(raw.subarray(12, 28));
        return Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8');
      } catch {
        return null;
      }
    },
  };
}

export type SealedBox = ReturnType<typeof createSealedBox>;
