import { z } from 'zod';
import { createSealedBox } from '../../crypto/index.js';

/**
 * What the browser carries between `/api/auth/sso/start` and the identity provider's callback:
 * the org and connection, the OIDC state, nonce and PKCE verifier, and what the flow is for.
 * Sealed (AES-256-GCM under a key derived from the session secret), so the verifier stays
 * secret and nothing in it can be changed or forged; short-lived; in an HttpOnly cookie, so the
 * flow is bound to the browser that started it (a callback URL sent to someone else finds no
 * cookie in their browser and fails).
 */
export const flowState = z.object({
  v: z.literal(1),
  orgId: z.uuid(),
  connectionId: z.uuid(),
  state: z.string().min(16).max(128),
  nonce: z.string().min(16).max(128),
  verifier: z.string().min(43).max(128),
  /** Milliseconds since the epoch after which the flow is refused. */
  expiresAt: z.number().int(),
  /**
   * `sign_in`; `link`: a signed-in user links this IdP identity to their account; `test`: an
   * admin's trial run, which records the claims and signs nobody in.
   */
  purpose: z.enum(['sign_in', 'link', 'test']),
  /** For `link`: the session that asked (it must still be the caller's at the callback). */
  sessionId: z.uuid().optional(),
  /** For `test`: the run the callback records its result in. */
  testId: z.uuid().optional(),
  returnTo: z.string().max(512),
});
export type FlowState = z.infer<typeof flowState>;

/**
 * The same browser-bound, sealed flow for a social sign-in (social/sign-in.ts): the deployment's
 * provider instead of an org's connection; no nonce for a plain OAuth 2 provider (GitHub).
 * `kind` keeps the two apart: neither callback accepts the other's flow.
 */
export const socialFlowState = z.object({
  kind: z.literal('social'),
  v: z.literal(1),
  provider: z.string().min(2).max(32),
  state: z.string().min(16).max(128),
  nonce: z.string().min(16).max(128).optional(),
  verifier: z.string().min(43).max(128),
  expiresAt: z.number().int(),
  /** `sign_in`, or `link`: a signed-in user links their identity at the provider to their account. */
  purpose: z.enum(['sign_in', 'link']),
  sessionId: z.uuid().optional(),
  returnTo: z.string().max(512),
});
export type SocialFlowState = z.infer<typeof socialFlowState>;

/** Ten minutes: long enough to sign in at the IdP (with its own MFA), short enough to matter little if copied. */
export const FLOW_TTL_SECONDS = 600;

export function flowCookieName(secure: boolean): string {
  // `__Host-` needs Secure: the same development exception as the session cookie.
  return secure ? '__Host-palisade_sso' : 'palisade_sso';
}

export function createFlowSealer(sessionSecret: Buffer) {
  // A key of its own: the session secret signs session ids and is never an encryption key directly.
  const box = createSealedBox(sessionSecret, 'sso flow state v1');
  function openAs<T>(schema: z.ZodType<T & { expiresAt: number }>, value: string | undefined, nowMs: number): T | null {
    const text = value ? box.open(value) : null;
    if (text === null) return null;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return null;
    }
    const parsed = schema.safeParse(json);
    return parsed.success && parsed.data.expiresAt > nowMs ? parsed.data : null;
  }
  return {
    seal: (s: FlowState): string => box.seal(JSON.stringify(s)),
    /** The state, or null for anything that was not sealed here, was changed, or is past its expiry. */
    open: (value: string | undefined, nowMs: number): FlowState | null => openAs(flowState, value, nowMs),
    sealSocial: (s: SocialFlowState): string => box.seal(JSON.stringify(s)),
    /** A social sign-in's state, or null (as `open`; an SSO flow is not one). */
    openSocial: (value: string | undefined, nowMs: number): SocialFlowState | null => openAs(socialFlowState, value, nowMs),
  };
}

export type FlowSealer = ReturnType<typeof createFlowSealer>;

/**
 * The flow cookie's attributes. Lax: the identity provider's redirect back is a top-level GET
 * navigation, which carries it.
 */
export function flowCookieOptions(secure: boolean) {
  return { path: '/', httpOnly: true, secure, sameSite: 'lax' as const };
}

/**
 * Where to send the browser after the sign-in: a path on this origin only (an open redirect
 * would turn the sign-in into a phishing relay, and carry a handover code to another site).
 * Anything else becomes `/`. The answer is the path as a URL parser normalizes it: `/.//evil`
 * passes a prefix check but normalizes to `//evil`, another host (review 2026-12-06, social).
 */
export function safeReturnTo(value: string | undefined): string {
  if (!value || value.length > 512 || !value.startsWith('/')) return '/';
  // Control characters and backslashes let some browsers read a path as another host.
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (/[\u0000-\u001f\u007f\\]/.test(value)) return '/';
  return sameOriginPath(value) ?? '/';
}

/** `path` with `name=value` added to its query; `/` when the result would leave this origin. */
export function withParam(path: string, name: string, value: string): string {
  const url = new URL(safeReturnTo(path), BASE);
  url.searchParams.set(name, value);
  return sameOriginPath(`${url.pathname}${url.search}${url.hash}`) ?? '/';
}

const BASE = 'http://palisade.invalid';

/** The normalized path, query and fragment of `value` if it stays on this origin, else null. */
function sameOriginPath(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value, BASE);
  } catch {
    return null;
  }
  if (url.origin !== BASE) return null;
  const out = `${url.pathname}${url.search}${url.hash}`;
  return out.startsWith('//') || out.startsWith('/\\') ? null : out;
}
