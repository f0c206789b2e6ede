import { Webhook } from 'standardwebhooks';
import { randomKey } from '../../crypto/index.js';

/** A Standard Webhooks secret: whsec_ + base64 of 32 random bytes. */
export function newWebhookSecret(): string {
  return `whsec_${randomKey().toString('base64')}`;
}

/**
 * The three Standard Webhooks headers for one attempt. With two secrets (a rotation's overlap)
 * the signature header carries both signatures, so a receiver holding either one verifies.
 */
export function signedHeaders(messageId: string, at: Date, payload: string, secrets: readonly string[]): Record<string, string> {
  const signatures = secrets.map((secret) => new Webhook(secret).sign(messageId, at, payload));
  return {
    'webhook-id': messageId,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': signatures.join(' '),
  };
}
