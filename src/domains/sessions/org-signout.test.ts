/** An org's "sign out everywhere" for a member ends their sessions in that org only. Id F11: the first attacker review (174568f). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/support/app.js';
import { ENGINES } from '../../../test/support/db.js';
import { client, signedIn } from '../../../test/support/client.js';
import { newUser } from '../../../test/support/users.js';

describe.each(ENGINES)('an org signs a member out of itself only (%s)', (engine) => {
  let h: TestApp;
  beforeAll(async () => { h = await createTestApp(engine); });
  afterAll(async () => h?.close());

  // review F11
  it('an org you merely joined cannot sign you out of your other orgs', async () => {
    const globexOwner = h.user('globex', 'owner');
    const victimId = await h.userId(globexOwner.email);
    const attacker = await newUser(h);
    const ac = await signedIn(h, attacker.email);
    const evil = (await ac.call('POST', '/api/orgs', { name: 'Evil', slug: `evil-${attacker.id.slice(0, 8)}` })).json<{ id: string }>().id;
    await h.t.owner.query("insert into memberships (org_id, user_id, role) values ($1, $2, 'viewer')", [evil, victimId]);
    const victim = client(h, await h.cookieFor(globexOwner.email));
    expect((await victim.call('GET', `/api/orgs/${evil}`)).statusCode).toBe(200);

    h.clock.advance(1);
    const r = await ac.call('POST', `/api/orgs/${evil}/members/${victimId}/sessions/revoke`);
    expect(r.statusCode).toBe(200);
    // Cut off from the org that signed them out...
    const cut = await victim.call('GET', `/api/orgs/${evil}`);
    expect(cut.statusCode).toBe(401);
    expect(cut.json()).toMatchObject({ code: 'session_expired' });
    // ...and nowhere else.
    expect((await victim.call('GET', `/api/orgs/${h.orgId('globex')}`)).statusCode).toBe(200);
    expect((await victim.call('GET', '/api/me')).statusCode).toBe(200);
    // A new sign-in reaches the org again.
    h.clock.advance(1);
    const fresh = client(h, await h.cookieFor(globexOwner.email));
    expect((await fresh.call('GET', `/api/orgs/${evil}`)).statusCode).toBe(200);
  });

  it('a member of this org only is signed out everywhere', async () => {
    const acme = h.orgId('acme');
    const member = await newUser(h, acme, 'viewer');
    const m = await signedIn(h, member.email);
    const admin = await signedIn(h, h.user('acme', 'admin').email);
    const r = await admin.call('POST', `/api/orgs/${acme}/members/${member.id}/sessions/revoke`);
    expect(r.json()).toEqual({ revoked: 1 });
    expect((await m.call('GET', '/api/me')).statusCode).toBe(401);
  });
});
