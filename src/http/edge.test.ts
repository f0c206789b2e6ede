import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp } from '../../test/support/app.js';
import { ENGINES } from '../../test/support/db.js';
import { SYSTEM_ORG_ID } from '../kernel/ids.js';
import { auditRows } from '../../test/support/evidence.js';

const CONSOLE = 'https://console.example.com';
/** The alternative deployment: plain-http loopback (development-style cookies), a CORS origin and a trusted proxy. */
const LOCAL = 'http://127.0.0.1:3000';

describe.each(ENGINES)('HTTP edge on %s', (engine) => {
  let h: TestApp;
  let alt: TestApp;
  beforeAll(async () => {
    [h, alt] = await Promise.all([
      createTestApp(engine),
      createTestApp(engine, { config: { PUBLIC_ORIGIN: LOCAL, CORS_ORIGINS: CONSOLE, TRUSTED_PROXIES: '127.0.0.1' } }),
    ]);
  });
  afterAll(async () => {
    await h?.close();
    await alt?.close();
  });

  /** Fails a login with a marker user agent and returns the ip the audit trail recorded. */
  async function auditedIp(t: TestApp, origin: string, remoteAddress: string, headers: Record<string, string>): Promise<string | undefined> {
    const ua = `ip-probe-${Math.random().toString(36).slice(2)}`;
    const res = await t.built.app.inject({
      method: 'POST', url: '/api/auth/login', remoteAddress, headers: { origin, 'user-agent': ua, ...headers },
      payload: { email: 'nobody@example.com', password: 'not a real password' },
    });
    expect(res.statusCode).toBe(401);
    // The address and user agent are sealed: opened, then matched.
    const rows = (await auditRows(t, `where org_id = $1 and action = 'auth.login_failed'`, [SYSTEM_ORG_ID])).filter((e) => e.user_agent === ua);
    expect(rows).toHaveLength(1);
    return rows[0]?.ip;
  }

  describe('security headers', () => {
    it('sends HSTS, a strict CSP and nosniff on every answer', async () => {
      const cookie = await h.cookieFor('owner@acme.test');
      const answers = [
        await h.built.app.inject({ method: 'GET', url: '/api/me', headers: { cookie } }),
        await h.built.app.inject({ method: 'GET', url: '/api/me' }),
        await h.built.app.inject({ method: 'GET', url: '/no/such/route' }),
        await h.built.app.inject({ method: 'POST', url: '/api/auth/login', headers: { origin: 'https://evil.example' }, payload: {} }),
      ];
      expect(answers.map((r) => r.statusCode)).toEqual([200, 401, 404, 403]);
      for (const res of answers) {
        expect(res.headers['strict-transport-security'], `on a ${res.statusCode}`).toBe('max-age=31536000; includeSubDomains');
        const csp = String(res.headers['content-security-policy']).split(';').map((d) => d.trim());
        expect(csp).toContain("default-src 'self'");
        expect(csp).toContain("frame-ancestors 'none'");
        expect(csp).toContain("object-src 'none'");
        expect(csp).toContain("base-uri 'none'");
        expect(csp.some((d) => d.includes('unsafe-inline') || d.includes('unsafe-eval'))).toBe(false);
        expect(res.headers['x-content-type-options']).toBe('nosniff');
        expect(res.headers['referrer-policy']).toBe('no-referrer');
        expect(res.headers['cross-origin-resource-policy']).toBe('same-origin');
        expect(res.headers['x-powered-by']).toBeUndefined();
      }
    });

    it('sends no HSTS for a plain-http development origin', async () => {
      const res = await alt.built.app.inject({ method: 'GET', url: '/api/me' });
      expect(res.headers['strict-transport-security']).toBeUndefined();
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(String(res.headers['content-security-policy'])).toContain("frame-ancestors 'none'");
    });
  });

  describe('CORS', () => {
    it('sends no CORS grant when no CORS origin is configured, not even to the public origin', async () => {
      const res = await h.built.app.inject({ method: 'GET', url: '/api/me', headers: { origin: ORIGIN } });
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
    });

    it('echoes an allowed origin with credentials, on requests and preflights', async () => {
      const cookie = await alt.cookieFor('owner@acme.test');
      const res = await alt.built.app.inject({ method: 'GET', url: '/api/me', headers: { origin: CONSOLE, cookie } });
      expect(res.statusCode).toBe(200);
      expect(res.headers['access-control-allow-origin']).toBe(CONSOLE);
      expect(res.headers['access-control-allow-credentials']).toBe('true');
      expect(String(res.headers.vary)).toMatch(/Origin/i);

      const pre = await alt.built.app.inject({
        method: 'OPTIONS', url: `/api/orgs/${alt.orgId('acme')}/projects`,
        headers: { origin: CONSOLE, 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'content-type' },
      });
      expect(pre.statusCode).toBe(204);
      expect(pre.headers['access-control-allow-origin']).toBe(CONSOLE);
      expect(pre.headers['access-control-allow-credentials']).toBe('true');
      expect(String(pre.headers['access-control-allow-methods']).split(/,\s*/)).toEqual(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);

      // The CORS origin is also an allowed Origin for the CSRF check.
      const created = await alt.built.app.inject({
        method: 'POST', url: `/api/orgs/${alt.orgId('acme')}/projects`, headers: { origin: CONSOLE, cookie }, payload: { name: 'From console' },
      });
      expect(created.statusCode).toBe(201);
    });

    it('grants nothing to an unknown origin', async () => {
      for (const origin of ['https://evil.example', 'https://console.example.com.evil.example', 'http://console.example.com', 'null']) {
        const res = await alt.built.app.inject({ method: 'GET', url: '/api/me', headers: { origin } });
        expect(res.headers['access-control-allow-origin'], origin).toBeUndefined();
        const pre = await alt.built.app.inject({
          method: 'OPTIONS', url: '/api/me', headers: { origin, 'access-control-request-method': 'DELETE' },
        });
        // (@fastify/cors may still send allow-credentials: without allow-origin it grants nothing.)
        expect(pre.headers['access-control-allow-origin'], origin).toBeUndefined();
      }
    });
  });

  describe('client address and trusted proxies', () => {
    it('ignores X-Forwarded-For when no proxy is trusted', async () => {
      expect(await auditedIp(h, ORIGIN, '198.51.100.7', { 'x-forwarded-for': '203.0.113.50' })).toBe('198.51.100.7');
      expect(await auditedIp(h, ORIGIN, '127.0.0.1', { 'x-forwarded-for': '203.0.113.50', 'x-real-ip': '203.0.113.51' })).toBe('127.0.0.1');
    });

    it('honours X-Forwarded-For from a trusted proxy, taking the nearest untrusted hop', async () => {
      expect(await auditedIp(alt, LOCAL, '127.0.0.1', { 'x-forwarded-for': '203.0.113.50' })).toBe('203.0.113.50');
      // A client-supplied left-most entry cannot pick the recorded address.
      expect(await auditedIp(alt, LOCAL, '127.0.0.1', { 'x-forwarded-for': '6.6.6.6, 203.0.113.50' })).toBe('203.0.113.50');
      expect(await auditedIp(alt, LOCAL, '127.0.0.1', { 'x-forwarded-for': '6.6.6.6, 203.0.113.50, 127.0.0.1' })).toBe('203.0.113.50');
    });

    it('ignores X-Forwarded-For from an address that is not a trusted proxy', async () => {
      expect(await auditedIp(alt, LOCAL, '192.0.2.10', { 'x-forwarded-for': '203.0.113.50' })).toBe('192.0.2.10');
    });

    it('records the forwarded client address on the sessions it issues', async () => {
      const owner = alt.user('globex', 'owner');
      const res = await alt.built.app.inject({
        method: 'POST', url: '/api/auth/login', remoteAddress: '127.0.0.1',
        headers: { origin: LOCAL, 'x-forwarded-for': '203.0.113.77' }, payload: { email: owner.email, password: owner.password },
      });
      const c = res.cookies.find((x) => x.name === 'palisade_session');
      const list = await alt.built.app.inject({ method: 'GET', url: '/api/me/sessions', headers: { cookie: `palisade_session=${c?.value}` } });
      const current = list.json<{ sessions: { ip: string; current: boolean }[] }>().sessions.find((s) => s.current);
      expect(current?.ip).toBe('203.0.113.77');
    });
  });

  describe('development cookies on plain-http loopback', () => {
    it('issues palisade_session without Secure, still HttpOnly and SameSite=Lax', async () => {
      const member = alt.user('acme', 'member');
      const res = await alt.built.app.inject({ method: 'POST', url: '/api/auth/login', headers: { origin: LOCAL }, payload: { email: member.email, password: member.password } });
      expect(res.statusCode).toBe(200);
      expect(res.cookies.map((c) => c.name)).toEqual(['palisade_session']);
      const raw = String(res.headers['set-cookie']);
      expect(raw).toMatch(/^palisade_session=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43};/);
      expect(raw).not.toMatch(/;\s*Secure/i);
      expect(raw).toMatch(/;\s*HttpOnly/);
      expect(raw).toMatch(/;\s*SameSite=Lax/);
      expect(raw).toMatch(/;\s*Path=\//);
      const value = res.cookies[0]?.value ?? '';
      expect((await alt.built.app.inject({ method: 'GET', url: '/api/me', headers: { cookie: `palisade_session=${value}` } })).statusCode).toBe(200);
      // The secure name is not what this deployment reads.
      expect((await alt.built.app.inject({ method: 'GET', url: '/api/me', headers: { cookie: `__Host-palisade_session=${value}` } })).statusCode).toBe(401);
      // CSRF keys off this cookie name too.
      const csrf = await alt.built.app.inject({ method: 'POST', url: '/api/auth/logout', headers: { cookie: `palisade_session=${value}` } });
      expect(csrf.statusCode).toBe(403);
      expect(csrf.json<{ code: string }>().code).toBe('csrf_rejected');
      // Loopback aliases of the public origin are allowed origins in development-style deployments.
      const out = await alt.built.app.inject({ method: 'POST', url: '/api/auth/logout', headers: { cookie: `palisade_session=${value}`, origin: 'http://localhost:3000' } });
      expect(out.statusCode).toBe(204);
    });
  });
});
