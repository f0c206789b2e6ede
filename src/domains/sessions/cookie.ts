import type { FastifyReply } from 'fastify';

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
