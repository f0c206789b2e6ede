import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { userText, uuid } from '../../http/schemas.js';
import { userActorOf } from '../../kernel/context.js';
import type { PasskeyService } from './passkeys.js';
import { passkeyList, passkeyRegistrationStart, passkeyView } from './responses.js';
import type { RegistrationResponseJSON } from '@simplewebauthn/server';

const name = userText(64);
/** The browser's PublicKeyCredential as JSON; bounded here, checked field by field by the verifier. */
export const credentialJson = z
  .object({ id: z.string().min(1).max(1400), rawId: z.string().min(1).max(1400), type: z.literal('public-key'), response: z.record(z.string(), z.unknown()) })
  .passthrough();

/** Managing your passkeys. Signing in and stepping up with one: sessions/passkey-routes.ts. */
export function passkeyRoutes(passkeys: PasskeyService): AnyRoute[] {
  const tags = ['passkeys'];
  return [
    defineRoute({
      method: 'GET', url: '/api/me/passkeys', summary: 'Your passkeys', tags,
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { response: passkeyList }, errors: [],
      handler: async ({ ctx }) => ({ passkeys: await passkeys.list(userActorOf(ctx).userId) }),
    }),
    defineRoute({
      method: 'POST', url: '/api/me/passkeys/registration-options', summary: 'Start adding a passkey: WebAuthn creation options and a ceremony token', tags,
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { action: 'auth.passkey_challenge' },
      stepUp: true, schema: { response: passkeyRegistrationStart },
      // conflict: the account already holds the most passkeys allowed.
      errors: ['conflict'],
      handler: ({ ctx }) => {
        const actor = userActorOf(ctx);
        return passkeys.registrationOptions(ctx, actor.userId);
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/me/passkeys', summary: 'Add a passkey (the authenticator\u2019s attestation for the ceremony token)', tags,
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { action: 'auth.passkey_added' }, stepUp: true, status: 201,
      schema: { body: z.strictObject({ ceremonyToken: z.string().min(1).max(200), name, response: credentialJson }), response: passkeyView },
      // token_invalid: an unknown, spent, expired or other user's ceremony; invalid_credentials: the
      // attestation does not verify; conflict: the cap, or a passkey already registered.
      errors: ['token_invalid', 'invalid_credentials', 'conflict'],
      example: () => ({ ceremonyToken: 'pal_wac_x', name: 'Laptop', response: { id: 'AA', rawId: 'AA', type: 'public-key', response: {} } }),
      handler: ({ ctx, body }) =>
        passkeys.register(ctx, userActorOf(ctx).userId, { ceremonyToken: body.ceremonyToken, name: body.name, response: body.response as unknown as RegistrationResponseJSON }),
    }),
    defineRoute({
      method: 'PATCH', url: '/api/me/passkeys/:passkeyId', summary: 'Rename a passkey', tags,
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { action: 'auth.passkey_renamed' },
      schema: { params: z.strictObject({ passkeyId: uuid }), body: z.strictObject({ name }), response: passkeyView }, example: () => ({ name: 'Phone' }),
      errors: ['not_found'],
      handler: ({ ctx, params, body }) => passkeys.rename(ctx, userActorOf(ctx).userId, params.passkeyId, body.name),
    }),
    defineRoute({
      method: 'DELETE', url: '/api/me/passkeys/:passkeyId', summary: 'Remove a passkey', tags,
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { action: 'auth.passkey_removed' }, stepUp: true, status: 204,
      schema: { params: z.strictObject({ passkeyId: uuid }) },
      errors: ['not_found'],
      handler: ({ ctx, params }) => passkeys.remove(ctx, userActorOf(ctx).userId, params.passkeyId),
    }),
  ];
}
