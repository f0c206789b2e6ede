import { z } from 'zod';
import { timestamp, uuid } from '../../http/schemas.js';

/**
 * What the identity routes answer (registration, verification, password reset, second factors,
 * passkeys). The services' view types are derived from these schemas (one definition); the
 * reply is serialized through them, so a column nobody named here (a password hash, a sealed
 * TOTP secret, a passkey's public key or counter) never leaves.
 */

/**
 * The answer of the routes that mail a link: the same for every address, so that it tells
 * nobody which addresses have accounts.
 */
export const mailboxNotice = z.object({
  status: z.string().meta({ description: 'What to look for in the mailbox; the same whatever the address' }),
});

export const userView = z.object({
  id: uuid,
  email: z.string(),
  name: z.string(),
});
export type UserView = z.infer<typeof userView>;

export const mfaStatus = z.object({
  enabled: z.boolean().meta({ description: 'A second factor is on (an authenticator app or a passkey)' }),
  totp: z.boolean().meta({ description: 'A confirmed authenticator app' }),
  passkeys: z.number().int().nonnegative(),
  recoveryCodesLeft: z.number().int().nonnegative(),
});
export type MfaStatus = z.infer<typeof mfaStatus>;

/** One-time secret: the only answer that ever holds the authenticator app's secret. */
export const totpEnrollment = z.object({
  secret: z.string().meta({ description: 'The TOTP secret (base32): shown in this answer only, stored sealed' }),
  otpauthUri: z.string().meta({ description: 'otpauth:// URI carrying the secret, for authenticator apps: shown in this answer only' }),
  qrCode: z.string().meta({ description: 'The otpauth URI as a QR code (a data: URL of an image): shown in this answer only' }),
});
export type TotpEnrollment = z.infer<typeof totpEnrollment>;

/** One-time secret: the only answer that holds these codes (they are stored hashed). */
export const recoveryCodes = z.object({
  recoveryCodes: z.array(z.string()).meta({
    description: 'Single-use recovery codes (xxxx-xxxx-xxxx), replacing any earlier set: shown in this answer only, stored hashed',
  }),
});
export type RecoveryCodes = z.infer<typeof recoveryCodes>;

export const mfaDisabled = z.object({
  enabled: z.boolean().meta({ description: 'Whether MFA is still on (passkeys remain)' }),
});

export const passkeyView = z.object({
  id: uuid,
  name: z.string(),
  createdAt: timestamp,
  lastUsedAt: timestamp.nullable(),
  transports: z.array(z.string()).meta({ description: 'What the authenticator said it can be reached over (usb, nfc, ble, internal, hybrid…)' }),
});
export type PasskeyView = z.infer<typeof passkeyView>;

export const passkeyList = z.object({ passkeys: z.array(passkeyView).meta({ description: 'Oldest first' }) });

// WebAuthn options as the browser's JSON forms define them (PublicKeyCredentialCreationOptionsJSON
// and PublicKeyCredentialRequestOptionsJSON, as @simplewebauthn/server builds them).

const credentialDescriptor = z.object({
  id: z.string().meta({ description: 'Credential id (base64url)' }),
  type: z.string().meta({ description: 'public-key' }),
  transports: z.array(z.string()).optional(),
});

const hints = z.array(z.enum(['hybrid', 'security-key', 'client-device'])).optional();

const extensions = z
  .object({ appid: z.string().optional(), credProps: z.boolean().optional(), hmacCreateSecret: z.boolean().optional(), minPinLength: z.boolean().optional() })
  .optional();

const userVerification = z.enum(['discouraged', 'preferred', 'required']);

export const creationOptions = z
  .object({
    rp: z.object({ name: z.string(), id: z.string().optional() }),
    user: z.object({ id: z.string().meta({ description: 'User handle (base64url)' }), name: z.string(), displayName: z.string() }),
    challenge: z.string().meta({ description: 'base64url' }),
    pubKeyCredParams: z.array(z.object({ alg: z.number().int().meta({ description: 'COSE algorithm identifier' }), type: z.literal('public-key') })),
    timeout: z.number().optional(),
    excludeCredentials: z.array(credentialDescriptor).optional(),
    authenticatorSelection: z
      .object({
        authenticatorAttachment: z.enum(['cross-platform', 'platform']).optional(),
        requireResidentKey: z.boolean().optional(),
        residentKey: z.enum(['discouraged', 'preferred', 'required']).optional(),
        userVerification: userVerification.optional(),
      })
      .optional(),
    hints,
    attestation: z.enum(['direct', 'enterprise', 'indirect', 'none']).optional(),
    attestationFormats: z.array(z.string()).optional(),
    extensions,
  })
  .meta({ description: 'PublicKeyCredentialCreationOptionsJSON: pass to navigator.credentials.create (after PublicKeyCredential.parseCreationOptionsFromJSON)' });

export const requestOptions = z
  .object({
    challenge: z.string().meta({ description: 'base64url' }),
    timeout: z.number().optional(),
    rpId: z.string().optional(),
    allowCredentials: z.array(credentialDescriptor).optional().meta({ description: 'The user\u2019s passkeys; absent for a discoverable sign-in' }),
    userVerification: userVerification.optional(),
    hints,
    extensions,
  })
  .meta({ description: 'PublicKeyCredentialRequestOptionsJSON: pass to navigator.credentials.get (after PublicKeyCredential.parseRequestOptionsFromJSON)' });

const ceremonyToken = z.string().meta({ description: 'Names this ceremony (single use, two minutes): send it back with the authenticator\u2019s response' });

export const passkeyRegistrationStart = z.object({ ceremonyToken, options: creationOptions });

export const passkeyAssertionStart = z.object({ ceremonyToken, options: requestOptions });
