import { sql } from 'kysely';
import { newId, randomToken } from './crypto/index.js';
import { exec, one, type Database } from './db/database.js';
import { systemContext } from './kernel/context.js';
import type { BuiltinRole } from './kernel/permissions.js';
import type { AuditWriter } from './domains/audit/index.js';
import { hashPassword } from './domains/identity/index.js';
import { insertUserSql } from './domains/identity/people.js';
import type { Sealer } from './domains/keys/sealer.js';
import { insertOrg } from './domains/tenancy/index.js';

export interface DemoLogin {
  org: string;
  role: BuiltinRole | 'restricted_member';
  email: string;
  password: string;
  /** The account's id (its address is sealed: nobody finds it by address in SQL). */
  userId: string;
}

export interface DemoData {
  orgs: { slug: string; id: string; projects: { id: string; name: string }[] }[];
  logins: DemoLogin[];
}

/** The demo orgs; their users' addresses are role@slug.test (the start-up check looks for them). */
export const DEMO_ORG_SLUGS = ['acme', 'globex'] as const;
export const DEMO_EMAIL_DOMAINS: readonly string[] = DEMO_ORG_SLUGS.map((slug) => `${slug}.test`);

const ROLES: (BuiltinRole | 'restricted_member')[] = ['owner', 'admin', 'member', 'viewer', 'project_viewer', 'restricted_member'];

export async function hasAnyUser(db: Database): Promise<boolean> {
  const r = await db.withSystem('first-start check', (tx) => one<{ n: number }>(tx, sql`select count(*)::int as n from users`));
  return (r?.n ?? 0) > 0;
}

/** A demo account's password and its argon2id hash. */
export interface DemoCredential {
  password: string;
  hash: string;
}

async function freshCredential(): Promise<DemoCredential> {
  const password = `demo-${randomToken(12)}`;
  return { password, hash: await hashPassword(password) };
}

/**
 * Seeds two orgs, acme and globex, each with one user per built-in role, two projects with
 * assets, and a member restricted to the first project. Passwords are random per seeding, unless
 * `credentialFor` gives them (the test suite reuses one worker's across its databases, sparing
 * twelve argon2id hashes a database).
 */
export async function seedDemo(
  db: Database,
  { audit, sealer }: { audit: AuditWriter; sealer: Sealer },
  credentialFor: (email: string) => Promise<DemoCredential> = freshCredential,
): Promise<DemoData> {
  const ctx = systemContext('demo');
  const data: DemoData = { orgs: [], logins: [] };
  for (const slug of DEMO_ORG_SLUGS) {
    const orgId = newId();
    const users: { id: string; role: (typeof ROLES)[number]; email: string; password: string; hash: string }[] = [];
    for (const role of ROLES) {
      const email = `${role.replace('_', '-')}@${slug}.test`;
      users.push({ id: newId(), role, email, ...(await credentialFor(email)) });
    }
    const projects = [
      { id: newId(), name: 'Production' },
      { id: newId(), name: 'Staging' },
    ];
    await db.withTenant({ orgId, projectIds: null }, async (tx) => {
      // Demo addresses (*.test) have no mailbox to prove: the operator who seeds them vouches.
      for (const u of users) {
        const at = new Date().toISOString();
        await exec(tx, await insertUserSql(sealer, tx, u.id, { email: u.email, name: `${slug} ${u.role}` }, { password_hash: u.hash, password_changed_at: at, email_verified_at: at }));
      }
      const owner = users[0] as (typeof users)[number];
      await insertOrg({ audit }, tx, ctx, { id: orgId, slug, name: slug === 'acme' ? 'Acme Corp' : 'Globex Inc' }, owner.id);
      for (const u of users.slice(1)) {
        const role = u.role === 'restricted_member' ? 'member' : u.role;
        const restricted = u.role === 'restricted_member' || u.role === 'project_viewer';
        await exec(tx, sql`insert into memberships (org_id, user_id, role, restricted) values (${orgId}, ${u.id}, ${role}, ${restricted})`);
        await audit.append(tx, orgId, ctx, { action: 'member.added', target: { type: 'user', id: u.id }, details: { role: u.role } });
      }
      for (const p of projects) {
        await exec(tx, sql`insert into projects (org_id, id, name) values (${orgId}, ${p.id}, ${p.name})`);
        await audit.append(tx, orgId, ctx, { action: 'project.created', target: { type: 'project', id: p.id }, details: { name: p.name } });
        for (let i = 1; i <= 3; i++) {
          await exec(tx, sql`insert into assets (org_id, project_id, id, name, kind)
                             values (${orgId}, ${p.id}, ${newId()}, ${`${p.name.toLowerCase()}-host-${i}`}, 'host')`);
        }
      }
      const first = projects[0] as (typeof projects)[number];
      for (const u of users.filter((x) => x.role === 'restricted_member' || x.role === 'project_viewer')) {
        await exec(tx, sql`insert into project_access (org_id, project_id, user_id) values (${orgId}, ${first.id}, ${u.id})`);
        await audit.append(tx, orgId, ctx, { action: 'project.member_assigned', target: { type: 'project', id: first.id }, details: { userId: u.id } });
      }
    });
    data.orgs.push({ slug, id: orgId, projects });
    data.logins.push(...users.map((u) => ({ org: slug, role: u.role, email: u.email, password: u.password, userId: u.id })));
  }
  return data;
}
