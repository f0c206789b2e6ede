import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp } from '../../../test/support/app.js';
import { signUp } from '../../../test/support/accounts.js';
import { client, type Client } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { newId } from '../../crypto/index.js';

const DAY = 24 * 3600 * 1000;

const uniqueEmail = (tag: string) => `${tag}-${newId().slice(0, 8)}@example.test`;

describe.each(ENGINES)('invitations on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  const as = async (email: string) => client(h, await h.cookieFor(email));
  const orgUrl = (path = '') => `/api/orgs/${acme}${path}`;

  /** An invitee who registered and verified their address (accepting needs a proven mailbox). */
  async function newUser(email: string): Promise<string> {
    return (await signUp(h, { email, name: 'Invitee' })).id;
  }
  async function addMember(userId: string, role: string): Promise<void> {
    await h.t.owner.query('insert into memberships (org_id, user_id, role) values ($1, $2, $3)', [acme, userId, role]);
  }
  async function membership(userId: string) {
    const r = await h.t.owner.query<{ role: string; restricted: boolean }>(
      'select role, restricted from memberships where org_id = $1 and user_id = $2', [acme, userId]);
    return r[0] ?? null;
  }
  async function invite(by: Client, body: object): Promise<{ id: string; token: string }> {
    const res = await by.call('POST', orgUrl('/invitations'), body);
    expect(res.statusCode, res.body).toBe(201);
    const j = res.json<{ invitation: { id: string }; token: string }>();
    return { id: j.invitation.id, token: j.token };
  }
  const accept = (c: Client, token: string) => c.call('POST', '/api/invitations/accept', { token });

  beforeAll(async () => {
    h = await createTestApp(engine);
    acme = h.orgId('acme');
  });
  afterAll(async () => h?.close());

  it('refuses an invitation no one could accept: to a member, or beside a pending one (any case), until it is revoked', async () => {
    const admin = await as(h.user('acme', 'admin').email);
    const member = await admin.call('POST', orgUrl('/invitations'), { email: h.user('acme', 'viewer').email.toUpperCase(), role: 'member' });
    expect(member.statusCode, member.body).toBe(409);
    expect(member.json<{ detail: string }>().detail).toContain('already belongs to a member');
    const email = uniqueEmail('twice');
    const first = await invite(admin, { email, role: 'viewer' });
    const again = await admin.call('POST', orgUrl('/invitations'), { email: email.toUpperCase(), role: 'member' });
    expect(again.statusCode, again.body).toBe(409);
    expect(again.json<{ detail: string }>().detail).toContain('revoke it first');
    // Two at once: one is sent, the other refused.
    const racing = uniqueEmail('race');
    const both = await Promise.all([admin.call('POST', orgUrl('/invitations'), { email: racing, role: 'viewer' }), admin.call('POST', orgUrl('/invitations'), { email: racing, role: 'viewer' })]);
    expect(both.map((r) => r.statusCode).sort()).toEqual([201, 409]);
    // Revoked, the address may be invited again.
    expect((await admin.call('DELETE', orgUrl(`/invitations/${first.id}`))).statusCode).toBe(204);
    await invite(admin, { email, role: 'viewer' });
  });

  // In full: admin invites a viewer: token mailed and shown once; the registered invitee becomes a
  // viewer; single use
  it('admin invites a viewer: the registered invitee becomes a viewer; single use', async () => {
    const admin = await as(h.user('acme', 'admin').email);
    const email = uniqueEmail('viewer');
    const created = await admin.call('POST', orgUrl('/invitations'), { email, role: 'viewer' });
    expect(created.statusCode).toBe(201);
    const { invitation, token } = created.json<{ invitation: Record<string, unknown> & { id: string }; token: string }>();
    expect(token).toMatch(new RegExp(`^pal_inv_${acme}\\.${invitation.id}\\.[A-Za-z0-9_-]{43}$`));
    expect(invitation).toMatchObject({
      email, role: 'viewer', restricted: false, projectIds: [], status: 'pending',
      expiresAt: new Date(h.clock.now().getTime() + 7 * DAY).toISOString(),
    });

    const mail = await h.t.db.withSystem('t', (tx) => h.built.services.mail.read(tx, email));
    expect(mail).toHaveLength(1);
    expect(mail[0]?.body).toContain(`${ORIGIN}/invitations/accept#token=${token}`);

    // Shown once: neither the list nor the database holds the secret.
    const secret = token.split('.')[2] as string;
    const list = await admin.call('GET', orgUrl('/invitations'));
    expect(list.statusCode).toBe(200);
    expect(list.body).not.toContain(secret);
    expect(list.json<{ invitations: { id: string }[] }>().invitations.map((i) => i.id)).toContain(invitation.id);
    const stored = await h.t.owner.query<{ token_hash: string; email: string; email_sealed: string; email_index: string }>(
      'select token_hash, email, email_sealed, email_index from invitations where id = $1', [invitation.id]);
    expect(stored[0]?.token_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(stored[0]?.token_hash).not.toContain(secret);
    // The address at rest: sealed with the org's key and indexed under a key the database does not hold.
    expect(stored[0]).toMatchObject({ email: '', email_sealed: expect.stringMatching(/^v1\./), email_index: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(JSON.stringify(stored[0])).not.toContain(email.split('@')[0]);
    expect(list.json<{ invitations: { id: string; email: string }[] }>().invitations.find((i) => i.id === invitation.id)?.email).toBe(email);

    const registered = await signUp(h, { email, password: 'Invitee-passphrase-2026-long', name: 'New Viewer' });
    const userId = registered.id;
    const invitee = client(h, registered.cookie);

    const ok = await accept(invitee, token);
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json()).toEqual({ orgId: acme });
    expect(await membership(userId)).toEqual({ role: 'viewer', restricted: false });
    expect((await invitee.call('GET', orgUrl('/projects'))).json<{ projects: unknown[] }>().projects).toHaveLength(2);
    expect((await invitee.call('POST', orgUrl('/projects'), { name: 'nope' })).statusCode).toBe(403);

    const again = await accept(invitee, token);
    expect(again.statusCode).toBe(400);
    expect(again.json()).toMatchObject({ code: 'token_invalid' });
    const after = (await admin.call('GET', orgUrl('/invitations'))).json<{ invitations: { id: string; status: string }[] }>();
    expect(after.invitations.find((i) => i.id === invitation.id)?.status).toBe('accepted');
  });

  it('expires after 7 days (valid a minute before)', async () => {
    const admin = await as(h.user('acme', 'admin').email);
    const [e1, e2] = [uniqueEmail('early'), uniqueEmail('late')];
    const i1 = await invite(admin, { email: e1, role: 'viewer' });
    const i2 = await invite(admin, { email: e2, role: 'viewer' });
    const [u1, u2] = [await newUser(e1), await newUser(e2)];
    h.clock.advance(7 * DAY - 60_000);
    expect((await accept(await as(e1), i1.token)).statusCode).toBe(200);
    h.clock.advance(60_000);
    const late = await accept(await as(e2), i2.token);
    expect(late.statusCode).toBe(400);
    expect(late.json()).toMatchObject({ code: 'token_invalid' });
    expect(await membership(u1)).toEqual({ role: 'viewer', restricted: false });
    expect(await membership(u2)).toBeNull();
    const list = (await (await as(h.user('acme', 'admin').email)).call('GET', orgUrl('/invitations'))).json<{ invitations: { id: string; status: string }[] }>();
    expect(list.invitations.find((i) => i.id === i2.id)?.status).toBe('expired');
  });

  it('a revoked invitation cannot be accepted; revoking twice is 404', async () => {
    const admin = await as(h.user('acme', 'admin').email);
    const email = uniqueEmail('revoked');
    const inv = await invite(admin, { email, role: 'viewer' });
    expect((await admin.call('DELETE', orgUrl(`/invitations/${inv.id}`))).statusCode).toBe(204);
    expect((await admin.call('DELETE', orgUrl(`/invitations/${inv.id}`))).statusCode).toBe(404);
    const userId = await newUser(email);
    const res = await accept(await as(email), inv.token);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'token_invalid' });
    expect(await membership(userId)).toBeNull();
  });

  // review R5 finding D: an admin could revoke an owner's invitation of a co-owner, which it could not have made.
  it('revoking needs what inviting needs: an admin cannot undo an owner invitation', async () => {
    const owner = await as(h.user('acme', 'owner').email);
    const admin = await as(h.user('acme', 'admin').email);
    const { id } = await invite(owner, { email: uniqueEmail('co-owner'), role: 'owner' });
    const refused = await admin.call('DELETE', orgUrl(`/invitations/${id}`));
    expect(refused.statusCode).toBe(403);
    expect(refused.json<{ code: string }>().code).toBe('privilege_escalation');
    const pending = await h.t.owner.query<{ revoked_at: Date | null }>('select revoked_at from invitations where id = $1', [id]);
    expect(pending[0]?.revoked_at).toBeNull();
    const { id: viewerInvite } = await invite(owner, { email: uniqueEmail('viewer'), role: 'viewer' });
    expect((await admin.call('DELETE', orgUrl(`/invitations/${viewerInvite}`))).statusCode).toBe(204);
    expect((await owner.call('DELETE', orgUrl(`/invitations/${id}`))).statusCode).toBe(204);
  });

  it('tampered tokens are refused and do not burn the real one', async () => {
    const admin = await as(h.user('acme', 'admin').email);
    const email = uniqueEmail('tamper');
    const inv = await invite(admin, { email, role: 'viewer' });
    const userId = await newUser(email);
    const invitee = await as(email);
    const [org, id, secret] = inv.token.slice('pal_inv_'.length).split('.') as [string, string, string];
    const flipped = secret.slice(0, -1) + (secret.endsWith('A') ? 'B' : 'A');
    const forged = [
      `pal_inv_${org}.${id}.${flipped}`,
      `pal_inv_${org}.${newId()}.${secret}`,
      `pal_inv_${h.orgId('globex')}.${id}.${secret}`,
      `pal_inv_${org}.${id}.${secret}x`,
      `pal_inv_${org}.${id}`,
      inv.token.replace('pal_inv_', 'pal_key_'),
    ];
    for (const token of forged) {
      const res = await accept(invitee, token);
      expect(res.statusCode, token).toBe(400);
      expect(res.json()).toMatchObject({ code: 'token_invalid' });
    }
    expect(await membership(userId)).toBeNull();
    expect((await accept(invitee, inv.token)).statusCode).toBe(200);
    expect(await membership(userId)).toEqual({ role: 'viewer', restricted: false });
  });

  // review R4 finding 6
  // In full: the invited address must be proven: an unverified account is refused (403
  // email_unverified) and the invitation stays usable
  it('the invited address must be proven before the invitation is accepted', async () => {
    const admin = await as(h.user('acme', 'admin').email);
    const email = uniqueEmail('unproven');
    const inv = await invite(admin, { email, role: 'viewer' });
    // Whoever holds the link registers the invited address; the mailbox is not theirs.
    const reg = await h.built.app.inject({
      method: 'POST', url: '/api/auth/register', headers: { origin: ORIGIN },
      payload: { email, password: 'Link-holder-passphrase-2026', name: 'Link holder' },
    });
    expect(reg.statusCode).toBe(202);
    const userId = await h.userId(email);
    // A session issued behind the login's back (an unverified account gets none from it).
    const res = await accept(await as(email), inv.token);
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: 'email_unverified' });
    expect(await membership(userId)).toBeNull();
    const list = (await admin.call('GET', orgUrl('/invitations'))).json<{ invitations: { id: string; status: string }[] }>();
    expect(list.invitations.find((i) => i.id === inv.id)?.status).toBe('pending');
  });

  it('an account with another email cannot accept', async () => {
    const admin = await as(h.user('acme', 'admin').email);
    const email = uniqueEmail('intended');
    const inv = await invite(admin, { email, role: 'viewer' });
    const thief = uniqueEmail('thief');
    const thiefId = await newUser(thief);
    const res = await accept(await as(thief), inv.token);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'token_invalid' });
    expect(await membership(thiefId)).toBeNull();
    // An existing member of the org (a different email) cannot use it either.
    expect((await accept(await as(h.user('acme', 'viewer').email), inv.token)).statusCode).toBe(400);
    const userId = await newUser(email);
    expect((await accept(await as(email), inv.token)).statusCode).toBe(200);
    expect(await membership(userId)).toEqual({ role: 'viewer', restricted: false });
  });

  it('nobody invites above their own rights', async () => {
    const admin = await as(h.user('acme', 'admin').email);
    const owner = await as(h.user('acme', 'owner').email);
    const emails = [uniqueEmail('esc1'), uniqueEmail('esc2'), uniqueEmail('esc3')];
    const asOwner = await admin.call('POST', orgUrl('/invitations'), { email: emails[0], role: 'owner' });
    expect(asOwner.statusCode).toBe(403);
    expect(asOwner.json()).toMatchObject({ code: 'privilege_escalation' });

    const member = await (await as(h.user('acme', 'member').email)).call('POST', orgUrl('/invitations'), { email: emails[1], role: 'viewer' });
    expect(member.statusCode).toBe(403);
    expect(member.json()).toMatchObject({ code: 'forbidden' });

    const role = await owner.call('POST', orgUrl('/roles'), { name: `billing-${newId().slice(0, 6)}`, permissions: ['org:read', 'billing:manage'] });
    expect(role.statusCode).toBe(201);
    const custom = await admin.call('POST', orgUrl('/invitations'), { email: emails[2], role: 'custom', customRoleId: role.json<{ id: string }>().id });
    expect(custom.statusCode).toBe(403);
    expect(custom.json()).toMatchObject({ code: 'privilege_escalation' });

    const stored = await h.t.owner.query<{ n: number }>('select count(*)::int as n from invitations where email = any($1)', [emails]);
    expect(stored[0]?.n).toBe(0);
    // The boundary: an admin may invite an admin, an owner may invite an owner.
    expect((await admin.call('POST', orgUrl('/invitations'), { email: uniqueEmail('adm'), role: 'admin' })).statusCode).toBe(201);
    expect((await owner.call('POST', orgUrl('/invitations'), { email: uniqueEmail('own'), role: 'owner' })).statusCode).toBe(201);
  });

  it('an invitation from an inviter since demoted or removed grants nothing', async () => {
    const owner = await as(h.user('acme', 'owner').email);
    const [demotedEmail, removedEmail] = [uniqueEmail('inviter-a'), uniqueEmail('inviter-b')];
    const demotedId = await newUser(demotedEmail);
    const removedId = await newUser(removedEmail);
    await addMember(demotedId, 'admin');
    await addMember(removedId, 'admin');
    const demoted = await as(demotedEmail);
    const removed = await as(removedEmail);
    const [e1, e2] = [uniqueEmail('via-demoted'), uniqueEmail('via-removed')];
    const i1 = await invite(demoted, { email: e1, role: 'member' });
    const i2 = await invite(removed, { email: e2, role: 'viewer' });
    expect((await owner.call('PATCH', orgUrl(`/members/${demotedId}`), { role: 'viewer' })).statusCode).toBe(204);
    expect((await owner.call('DELETE', orgUrl(`/members/${removedId}`))).statusCode).toBe(204);

    const [u1, u2] = [await newUser(e1), await newUser(e2)];
    const r1 = await accept(await as(e1), i1.token);
    expect(r1.statusCode).toBe(400);
    expect(r1.json()).toMatchObject({ code: 'token_invalid' });
    const r2 = await accept(await as(e2), i2.token);
    expect(r2.statusCode).toBe(400);
    expect(r2.json()).toMatchObject({ code: 'token_invalid' });
    expect(await membership(u1)).toBeNull();
    expect(await membership(u2)).toBeNull();
  });

  it('a restricted invitation assigns exactly its projects', async () => {
    const admin = await as(h.user('acme', 'admin').email);
    const [production, staging] = h.demo.orgs[0]?.projects ?? [];
    const globexProject = h.demo.orgs[1]?.projects[0]?.id;
    const email = uniqueEmail('restricted');

    const unrestricted = await admin.call('POST', orgUrl('/invitations'), { email, role: 'member', projectIds: [staging?.id] });
    expect(unrestricted.statusCode).toBe(400);
    expect(unrestricted.json()).toMatchObject({ code: 'validation_failed' });
    const foreign = await admin.call('POST', orgUrl('/invitations'), { email, role: 'member', restricted: true, projectIds: [globexProject] });
    expect(foreign.statusCode).toBe(404);

    const inv = await invite(admin, { email, role: 'member', restricted: true, projectIds: [staging?.id] });
    const userId = await newUser(email);
    const invitee = await as(email);
    expect((await accept(invitee, inv.token)).statusCode).toBe(200);
    expect(await membership(userId)).toEqual({ role: 'member', restricted: true });

    const projects = (await invitee.call('GET', orgUrl('/projects'))).json<{ projects: { id: string; name: string }[] }>().projects;
    expect(projects).toEqual([expect.objectContaining({ id: staging?.id, name: 'Staging' })]);
    expect((await invitee.call('GET', orgUrl(`/projects/${production?.id}`))).statusCode).toBe(404);
    const members = (await admin.call('GET', orgUrl('/members'))).json<{ members: { userId: string; projectIds: string[]; restricted: boolean }[] }>();
    expect(members.members.find((m) => m.userId === userId)).toMatchObject({ restricted: true, projectIds: [staging?.id] });
  });
});
