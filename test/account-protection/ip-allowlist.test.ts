/**
 * The admin IP allowlist attacked: checked on every admin-level request (a cookie carried to
 * another network stops there, audited), member-level routes unaffected, IPv4/IPv6/IPv4-mapped
 * entries and ranges matched as the addresses they are, spoofed X-Forwarded-For ignored, and an
 * owner cannot lock themselves out by accident or save entries that mean something else. Only
 * owners change the list, and no list locks them out of changing it or of removing a rogue admin
 * and seeing what it did (owner-recovery routes, with a fresh step-up from outside).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/crypto/index.js';
import { orgScoped } from '../../src/http/route.js';
import { ipInList, normalizeCidr } from '../../src/kernel/ip.js';
import { BUILTIN_ROLE_PERMISSIONS, isAdminLevel, type Permission } from '../../src/kernel/permissions.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ENGINES } from '../support/db.js';
import { audit } from '../support/evidence.js';
import { call, code } from '../support/client.js';
import { freshOrg, passwordUser } from '../support/users.js';
import { stepUp } from '../support/mfa.js';

const PROXY = '10.9.9.9';

describe.each(ENGINES)('admin IP allowlist on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine, { config: { TRUSTED_PROXIES: PROXY } });
  });
  afterAll(async () => h?.close());

  /**
   * An org whose owner saved `list` from `from`, with an admin: `cookie` is the admin's (the list
   * holds them to it everywhere), `ownerCookie` the owner's.
   */
  async function restricted(list: string[], from: string) {
    const o = await freshOrg(h);
    const res = await call(h, 'PATCH', `/api/orgs/${o.orgId}/settings`, { cookie: o.cookie, ip: from, payload: { adminIpAllowlist: list } });
    expect(res.statusCode, res.body).toBe(200);
    const admin = await passwordUser(h, o.orgId, 'admin');
    return { ...o, admin, ownerCookie: o.cookie, cookie: await h.cookieFor(admin.email), saved: res.json<{ adminIpAllowlist: string[] }>().adminIpAllowlist };
  }

  // In full: IPv4 range: admin-level routes only from inside; member-level routes from anywhere;
  // refusals audited
  it('IPv4 range: admin-level routes only from inside, member-level from anywhere', async () => {
    const { orgId, cookie } = await restricted(['198.51.100.0/24'], '198.51.100.7');
    const member = await passwordUser(h, orgId, 'member');
    const settings = (ip: string) => call(h, 'GET', `/api/orgs/${orgId}/settings`, { cookie, ip });
    expect((await settings('198.51.100.200')).statusCode).toBe(200);
    const out = await settings('203.0.113.9');
    expect(out.statusCode).toBe(403);
    expect(code(out)).toBe('ip_not_allowed');
    // Writes too: a role change and a settings change from outside.
    const role = await call(h, 'PATCH', `/api/orgs/${orgId}/members/${member.id}`, { cookie, ip: '203.0.113.9', payload: { role: 'viewer' } });
    expect(code(role)).toBe('ip_not_allowed');
    const clear = await call(h, 'PATCH', `/api/orgs/${orgId}/settings`, { cookie, ip: '203.0.113.9', payload: { sessionIdleMinutes: 5 } });
    expect(code(clear)).toBe('ip_not_allowed');
    const [row] = await h.t.owner.query<{ role: string }>('select role from memberships where org_id = $1 and user_id = $2', [orgId, member.id]);
    expect(row?.role).toBe('member');
    // Member-level routes of the same session still work from outside.
    expect((await call(h, 'GET', `/api/orgs/${orgId}`, { cookie, ip: '203.0.113.9' })).statusCode).toBe(200);
    expect((await call(h, 'GET', `/api/orgs/${orgId}/projects`, { cookie, ip: '203.0.113.9' })).statusCode).toBe(200);
    // And a plain member is not affected by the list at all.
    expect((await call(h, 'GET', `/api/orgs/${orgId}/members`, { cookie: await h.cookieFor(member.email), ip: '203.0.113.9' })).statusCode).toBe(200);

    const denied = (await audit(h, orgId, 'authz.denied')).filter((e) => e.details.reason === 'ip');
    expect(denied).toHaveLength(3);
    expect(denied[0]).toMatchObject({ result: 'denied', ip: '203.0.113.9', details: { route: 'GET /api/orgs/:orgId/settings', reason: 'ip' } });
    expect(denied.map((e) => e.details.route)).toContain('PATCH /api/orgs/:orgId/members/:userId');
  });

  it('IPv6 ranges and single addresses, in any spelling', async () => {
    const { orgId, cookie, saved } = await restricted(['2001:db8:abcd::/48', '2001:0DB8:0000:0000:0000:0000:0000:0042'], '2001:db8:abcd:12::5');
    expect(saved).toEqual(['2001:db8:abcd::/48', '2001:db8::42/128']);
    const get = (ip: string) => call(h, 'GET', `/api/orgs/${orgId}/settings`, { cookie, ip });
    expect((await get('2001:db8:abcd:ffff::1')).statusCode).toBe(200);
    expect((await get('2001:db8::42')).statusCode).toBe(200);
    expect(code(await get('2001:db8:abce::1'))).toBe('ip_not_allowed');
    expect(code(await get('2001:db8::43'))).toBe('ip_not_allowed');
    expect(code(await get('198.51.100.7'))).toBe('ip_not_allowed');
  });

  // In full: IPv4-mapped IPv6: a dual-stack socket’s ::ffff:a.b.c.d matches IPv4 entries, and
  // mapped entries match IPv4 clients
  it('IPv4-mapped IPv6 addresses and IPv4 entries match each other', async () => {
    const v4 = await restricted(['198.51.100.0/24'], '198.51.100.7');
    expect((await call(h, 'GET', `/api/orgs/${v4.orgId}/settings`, { cookie: v4.cookie, ip: '::ffff:198.51.100.9' })).statusCode).toBe(200);
    expect(code(await call(h, 'GET', `/api/orgs/${v4.orgId}/settings`, { cookie: v4.cookie, ip: '::ffff:203.0.113.9' }))).toBe('ip_not_allowed');

    const mapped = await restricted(['::ffff:198.51.100.7', '::ffff:192.0.2.0/120'], '198.51.100.7');
    for (const ip of ['198.51.100.7', '::ffff:198.51.100.7', '192.0.2.77', '::ffff:192.0.2.77']) {
      expect((await call(h, 'GET', `/api/orgs/${mapped.orgId}/settings`, { cookie: mapped.cookie, ip })).statusCode, ip).toBe(200);
    }
    expect(code(await call(h, 'GET', `/api/orgs/${mapped.orgId}/settings`, { cookie: mapped.cookie, ip: '192.0.3.1' }))).toBe('ip_not_allowed');
  });

  it('a spoofed X-Forwarded-For does not get an outsider in; the configured proxy\u2019s does decide', async () => {
    const { orgId, cookie } = await restricted(['198.51.100.0/24'], '198.51.100.7');
    const get = (ip: string, xff: string) => call(h, 'GET', `/api/orgs/${orgId}/settings`, { cookie, ip, headers: { 'x-forwarded-for': xff } });
    expect(code(await get('203.0.113.9', '198.51.100.7'))).toBe('ip_not_allowed');
    expect((await get(PROXY, '198.51.100.7')).statusCode).toBe(200);
    expect(code(await get(PROXY, '198.51.100.7, 203.0.113.9'))).toBe('ip_not_allowed'); // the hop the proxy saw decides
    // The proxy itself is not in the list: without a forwarded address it is refused.
    expect(code(await call(h, 'GET', `/api/orgs/${orgId}/settings`, { cookie, ip: PROXY }))).toBe('ip_not_allowed');
  });

  // In full: saving a list that excludes the caller is refused (409) unless confirmLockout: true,
  // which is audited
  it('saving a list that excludes the caller needs confirmLockout: true, audited', async () => {
    const { orgId, cookie } = await freshOrg(h);
    const save = (payload: object) => call(h, 'PATCH', `/api/orgs/${orgId}/settings`, { cookie, ip: '203.0.113.50', payload });
    const refused = await save({ adminIpAllowlist: ['198.51.100.0/24'] });
    expect(refused.statusCode).toBe(409);
    expect(code(refused)).toBe('conflict');
    expect((await call(h, 'GET', `/api/orgs/${orgId}/settings`, { cookie, ip: '203.0.113.50' })).json()).toMatchObject({ adminIpAllowlist: [] });
    // A mapped spelling of the caller's own address counts as including it.
    expect((await save({ adminIpAllowlist: ['::ffff:203.0.113.50'] })).statusCode).toBe(200);
    const confirmed = await save({ adminIpAllowlist: ['198.51.100.0/24'], confirmLockout: true });
    expect(confirmed.statusCode).toBe(200);
    // The owner is outside now: admin-level work waits (owner recovery aside, below).
    expect(code(await call(h, 'GET', `/api/orgs/${orgId}/webhooks`, { cookie, ip: '203.0.113.50' }))).toBe('ip_not_allowed');
    const [ev] = (await audit(h, orgId, 'org.settings_updated')).slice(-1);
    expect(ev?.details).toMatchObject({ adminIpAllowlist: ['198.51.100.0/24'], excludesCaller: true });
  });

  it('refuses entries that are not plainly an address or range (400), and saves nothing', async () => {
    const { orgId, cookie } = await freshOrg(h);
    const bad = [
      'not-an-ip', '10.0.0.0/33', '300.1.1.1', '', ' ', '1.2.3.4/', '2001:db8::/129', '10.0.0.1/-1',
      // Shorthand and octal forms some parsers accept: "010.0.0.1" would silently mean 8.0.0.1.
      '1', '10.1', '010.0.0.1', '0x0a.0.0.1', '10.0.0.01/24', '::ffff:010.0.0.1',
    ];
    for (const entry of bad) {
      const res = await call(h, 'PATCH', `/api/orgs/${orgId}/settings`, { cookie, payload: { adminIpAllowlist: [entry], confirmLockout: true } });
      expect(res.statusCode, JSON.stringify(entry)).toBe(400);
      expect(res.body).not.toMatch(/"status":5/);
    }
    expect((await call(h, 'GET', `/api/orgs/${orgId}/settings`, { cookie })).json()).toMatchObject({ adminIpAllowlist: [] });
  });

  // review R4 finding 1
  // In full: only owners change the list: an admin’s PATCH touching it is refused (403
  // privilege_escalation, audited), other settings stay theirs
  it('only owners change the list: an admin\u2019s change to it is refused and audited', async () => {
    const { orgId } = await freshOrg(h);
    const admin = await passwordUser(h, orgId, 'admin');
    const cookie = await h.cookieFor(admin.email);
    // The review's attack: the admin's own address, so no confirmLockout is even needed.
    for (const payload of [{ adminIpAllowlist: ['127.0.0.5/32'] }, { adminIpAllowlist: [] }, { adminIpAllowlist: ['127.0.0.5'], sessionIdleMinutes: 20 }]) {
      const res = await call(h, 'PATCH', `/api/orgs/${orgId}/settings`, { cookie, ip: '127.0.0.5', payload });
      expect(res.statusCode, JSON.stringify(payload)).toBe(403);
      expect(res.json()).toMatchObject({ code: 'privilege_escalation', detail: expect.stringContaining('owners:manage') });
    }
    expect((await call(h, 'GET', `/api/orgs/${orgId}/settings`, { cookie, ip: '127.0.0.5' })).json()).toMatchObject({ adminIpAllowlist: [], sessionIdleMinutes: null });
    const denied = (await audit(h, orgId, 'authz.denied')).filter((e) => e.details.reason === 'privilege_escalation');
    expect(denied).toHaveLength(3);
    expect(denied[0]).toMatchObject({ actor_id: admin.id, details: { route: 'PATCH /api/orgs/:orgId/settings' } });
    // The other settings are still an admin's to change.
    expect((await call(h, 'PATCH', `/api/orgs/${orgId}/settings`, { cookie, ip: '127.0.0.5', payload: { sessionIdleMinutes: 20 } })).statusCode).toBe(200);
  });

  // review R4 finding 1
  // In full: a list an admin saved (before only owners could) never locks the owners out: from
  // outside, after a step-up, an owner reads the trail, revokes the admin’s keys, invitations and
  // sessions, demotes and removes the admin, and clears the list
  it('a list an admin saved never locks the owners out', async () => {
    const { orgId, cookie: ownerCookie, owner } = await freshOrg(h);
    const rogue = await passwordUser(h, orgId, 'admin');
    const other = await passwordUser(h, orgId, 'admin');
    const [inside, outside] = ['127.0.0.5', '127.0.0.1'];
    const rogueCookie = await h.cookieFor(rogue.email);
    // The rogue admin's doings, from its own address: a key, an invitation, then the list as the
    // review saved it (written directly: the API no longer lets an admin save it).
    const key = await call(h, 'POST', `/api/orgs/${orgId}/api-keys`, { cookie: rogueCookie, ip: inside, payload: { name: 'exfil', kind: 'secret', permissions: ['projects:read'] } });
    expect(key.statusCode, key.body).toBe(201);
    const { key: { id: keyId }, token } = key.json<{ key: { id: string }; token: string }>();
    const invite = await call(h, 'POST', `/api/orgs/${orgId}/invitations`, { cookie: rogueCookie, ip: inside, payload: { email: `accomplice-${newId().slice(0, 8)}@example.test`, role: 'admin' } });
    expect(invite.statusCode, invite.body).toBe(201);
    const invitationId = invite.json<{ invitation: { id: string } }>().invitation.id;
    await h.t.owner.query('update org_settings set admin_ip_allowlist = $2 where org_id = $1', [orgId, ['127.0.0.5/32']]);

    const asOwner = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, payload?: object) =>
      call(h, method, `/api/orgs/${orgId}${path}`, { cookie: ownerCookie, ip: outside, ...(payload ? { payload } : {}) });
    // Everything else admin-level stays behind the list, and the refusal says how out.
    const webhooks = await asOwner('GET', '/webhooks');
    expect(webhooks.json()).toMatchObject({ code: 'ip_not_allowed', detail: expect.stringContaining(`PATCH /api/orgs/${orgId}/settings`) });
    // Outside the list the owner proves it is them again: a cookie carried elsewhere is not enough.
    h.clock.advance(11 * 60_000);
    expect(code(await asOwner('GET', '/audit'))).toBe('step_up_required');
    expect(code(await asOwner('DELETE', `/members/${rogue.id}`))).toBe('step_up_required');
    expect((await stepUp(h, ownerCookie, { password: owner.password })).statusCode).toBe(200);

    const trail = await asOwner('GET', '/audit');
    expect(trail.statusCode, trail.body).toBe(200);
    expect(trail.json<{ events: { action: string }[] }>().events.map((e) => e.action)).toEqual(expect.arrayContaining(['api_key.created', 'invitation.created']));
    expect((await asOwner('GET', '/settings')).json()).toMatchObject({ adminIpAllowlist: ['127.0.0.5/32'] });
    const keys = (await asOwner('GET', '/api-keys')).json<{ keys: { id: string }[] }>().keys;
    expect(keys.map((k) => k.id)).toContain(keyId);
    expect((await asOwner('DELETE', `/api-keys/${keyId}`)).statusCode).toBe(204);
    expect((await h.built.app.inject({ method: 'GET', url: `/v1/orgs/${orgId}/projects`, headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(401);
    expect((await asOwner('DELETE', `/invitations/${invitationId}`)).statusCode).toBe(204);
    expect((await asOwner('POST', `/members/${rogue.id}/sessions/revoke`)).statusCode).toBe(200);
    expect((await call(h, 'GET', `/api/orgs/${orgId}/settings`, { cookie: rogueCookie, ip: inside })).statusCode).toBe(401);
    expect((await asOwner('PATCH', `/members/${rogue.id}`, { role: 'viewer' })).statusCode).toBe(204);
    expect((await asOwner('DELETE', `/members/${rogue.id}`)).statusCode).toBe(204);
    // The settings route serves the list only, from outside.
    expect(code(await asOwner('PATCH', '/settings', { sessionIdleMinutes: 5 }))).toBe('ip_not_allowed');
    // Owners only: another admin from outside keeps nothing of this.
    const otherCookie = await h.cookieFor(other.email);
    for (const [method, path] of [['GET', '/audit'], ['PATCH', '/settings'], ['DELETE', `/members/${owner.id}`]] as const) {
      const res = await call(h, method, `/api/orgs/${orgId}${path}`, { cookie: otherCookie, ip: outside, ...(method === 'PATCH' ? { payload: { adminIpAllowlist: [] } } : {}) });
      expect(code(res), `${method} ${path}`).toBe('ip_not_allowed');
    }
    const cleared = await asOwner('PATCH', '/settings', { adminIpAllowlist: [] });
    expect(cleared.statusCode, cleared.body).toBe(200);
    expect(cleared.json()).toMatchObject({ adminIpAllowlist: [] });
    expect((await asOwner('GET', '/webhooks')).statusCode).toBe(200);
    // The evidence names the owner and the address outside the list.
    const [removed] = await audit(h, orgId, 'member.removed', rogue.id);
    expect(removed).toMatchObject({ actor_id: owner.id, ip: outside, details: { role: 'viewer' } });
  });

  // In full: walks the live route table: every admin-level org route is refused from outside the
  // list, no other route is, owner recovery aside
  it('walks the live route table: only admin-level org routes are refused from outside', async () => {
    const { orgId, cookie, ownerCookie } = await restricted(['198.51.100.0/24'], '198.51.100.7');
    // Console routes with a cookie; the key routes (/v1) meet the allowlist in the matrix's org-policy test.
    // Leaving (member-level) ends the admin's membership and rotates the cookie: walked last.
    const routes = h.built.routes
      .filter((r) => r.auth.mode === 'session' && orgScoped(r) && r.permission !== 'self' && r.permission !== 'none')
      .sort((a, b) => Number(a.url.endsWith('/leave')) - Number(b.url.endsWith('/leave')));
    const admin = routes.filter((r) => isAdminLevel(r.permission));
    expect(admin.length).toBeGreaterThan(10);
    // What an owner keeps from outside: the list itself, people and their credentials, the trail (and its verification),
    // and the restore of an org scheduled for deletion (the list cannot be changed meanwhile).
    const recovery = routes.filter((r) => r.ownerRecovery).map((r) => `${r.method} ${r.url}`).sort();
    expect(recovery).toEqual([
      'DELETE /api/orgs/:orgId/api-keys/:keyId', 'DELETE /api/orgs/:orgId/invitations/:invitationId', 'DELETE /api/orgs/:orgId/members/:userId',
      'GET /api/orgs/:orgId/api-keys', 'GET /api/orgs/:orgId/audit', 'GET /api/orgs/:orgId/audit/verification', 'GET /api/orgs/:orgId/settings',
      'PATCH /api/orgs/:orgId/members/:userId', 'PATCH /api/orgs/:orgId/settings', 'POST /api/orgs/:orgId/members/:userId/sessions/revoke',
      'POST /api/orgs/:orgId/restore',
    ]);
    const wrong: string[] = [];
    for (const [who, c] of [['admin', cookie], ['owner', ownerCookie]] as const) {
      for (const r of routes) {
        const url = r.url.replace(':orgId', orgId).replace(/:[A-Za-z]+/g, () => newId());
        // The settings example changes a session length, which an owner outside may not: send the list.
        const payload = r.method === 'GET' ? undefined : r.ownerRecovery && r.method === 'PATCH' && r.url.endsWith('/settings') ? { adminIpAllowlist: ['198.51.100.0/24'] } : (r.example?.() ?? {});
        // Whatever else refuses (an id that does not exist), only the list may say ip_not_allowed.
        const res = await call(h, r.method, url, { cookie: c, ip: '203.0.113.9', payload });
        const refusedByList = res.statusCode === 403 && code(res) === 'ip_not_allowed';
        // An owner-only route (owners:manage) is refused to an admin by its permission first.
        const held = who === 'owner' || BUILTIN_ROLE_PERMISSIONS.admin.includes(r.permission as Permission);
        const wanted = held && isAdminLevel(r.permission) && !(who === 'owner' && r.ownerRecovery);
        if (refusedByList !== wanted) wrong.push(`${who}: ${r.method} ${r.url} (${r.permission}) -> ${res.statusCode} ${code(res)}`);
      }
    }
    expect(wrong).toEqual([]);
    console.log(`allowlist walk (${engine}): ${admin.length} admin-level routes refused from outside (owners keep ${recovery.length}), ${routes.length - admin.length} others not`);
  });
});

describe('address list matching (unit)', () => {
  it('normalizes and matches what it accepts', () => {
    expect(normalizeCidr('198.51.100.7')).toBe('198.51.100.7/32');
    expect(normalizeCidr(' 2001:DB8::1 ')).toBe('2001:db8::1/128');
    expect(normalizeCidr('::ffff:192.0.2.0/120')).toBe('192.0.2.0/24');
    expect(normalizeCidr('::ffff:192.0.2.1')).toBe('192.0.2.1/32');
    expect(ipInList('192.0.2.1', ['::ffff:192.0.2.0/120'])).toBe(true);
    expect(ipInList('::ffff:192.0.2.1', ['192.0.2.0/24'])).toBe(true);
    expect(ipInList('192.0.2.1', ['::/0'])).toBe(false); // an IPv6 range does not admit IPv4 clients
    expect(ipInList('2001:db8::1', ['0.0.0.0/0'])).toBe(false);
    expect(ipInList('not-an-ip', ['0.0.0.0/0', '::/0'])).toBe(false);
    expect(ipInList('8.0.0.1', ['010.0.0.1'])).toBe(false); // refused entry: never matches anything
  });

});
