import { startAuthentication, startRegistration } from '@simplewebauthn/browser';

// The server sends WebAuthn options as JSON (base64url fields) and takes the authenticator's
// answer as JSON; @simplewebauthn/browser converts both ways around navigator.credentials.
type RequestOptions = Parameters<typeof startAuthentication>[0]['optionsJSON'];
type CreationOptions = Parameters<typeof startRegistration>[0]['optionsJSON'];

/** The authenticator's answer in the shape the server's schema takes (an open JSON object). */
export interface CredentialJson {
  id: string;
  rawId: string;
  type: 'public-key';
  response: Record<string, unknown>;
  [extra: string]: unknown;
}

function asJson(answer: { id: string; rawId: string; response: object }): CredentialJson {
  return { ...answer, type: 'public-key', response: { ...answer.response } };
}

export async function assertPasskey(options: unknown): Promise<CredentialJson> {
  return asJson(await startAuthentication({ optionsJSON: options as RequestOptions }));
}

export async function createPasskey(options: unknown): Promise<CredentialJson> {
  return asJson(await startRegistration({ optionsJSON: options as CreationOptions }));
}

export function passkeysAvailable(): boolean {
  return typeof window.PublicKeyCredential === 'function';
}
