import type { FastifyReply } from 'fastify';
import type { RequestContext } from '../../kernel/context.js';
import type { SignInFinish, SignInService } from './sign-in.js';

export interface CookieSettings {
  name: string;
  secure: boolean;
}

export function setSessionCookie(reply: FastifyReply, c: CookieSettings, value: string, maxAgeSeconds: number): void {
  reply.setCookie(c.name, value, { path: '/', httpOnly: true, secure: c.secure, sameSite: 'lax', maxAge: maxAgeSeconds });
}

export function clearSessionCookie(reply: FastifyReply, c: CookieSettings): void {
  reply.clearCookie(c.name, { path: '/', httpOnly: true, secure: c.secure, sameSite: 'lax' });
}

/**
 * Finishes a proven sign-in for an HTTP caller: the session cookie the request brought goes to
 * the sign-in service to be revoked, and the new one is set on the reply. Every sign-in route ends
 * here, so the cookie is set one way. Returns the new session's id.
 */
export async function finishSignInOn(
  reply: FastifyReply,
  via: { signIn: SignInService; cookie: CookieSettings },
  ctx: RequestContext,
  input: Omit<SignInFinish, 'brought'>,
): Promise<string> {
  const cookies = (reply.request.cookies ?? {}) as Record<string, string | undefined>;
  const s = await via.signIn.finish(ctx, { ...input, brought: cookies[via.cookie.name] });
  setSessionCookie(reply, via.cookie, s.cookie, s.maxAgeSeconds);
  return s.sessionId;
}
