import { writeFileSync } from 'node:fs';
import { betterAuth } from 'better-auth';
import { getMigrations } from 'better-auth/db/migration';
import { fromNodeHeaders } from 'better-auth/node';
import { organization } from 'better-auth/plugins';
import Fastify from 'fastify';
import pg from 'pg';
import { BENCH, dbUrl } from '../lib/env.js';
import { ASSETS_SQL, assetsJson, type AssetRow } from '../lib/rows.js';

/**
 * Better Auth (PostgreSQL adapter, organization plugin): getSession, then the same
 * tenant-filtered query as the bare route, scoped to the session's active organization.
 * BA_COOKIE_CACHE=1 turns its signed session cookie cache on. BA_SEED=FILE seeds one account
 * per Palisade bench user and writes their cookies to FILE.
 */
const cache = process.env.BA_COOKIE_CACHE === '1';
const port = Number(process.env.PORT);
const baUrl = new URL(dbUrl());
baUrl.searchParams.set('options', '-c search_path=better_auth');
// Two pools sharing the same connection budget as each other contender (PostgreSQL allows 100).
const baPool = new pg.Pool({ connectionString: baUrl.toString(), max: Math.ceil(BENCH.poolSize / 2), idleTimeoutMillis: 1000 });
const dataPool = new pg.Pool({ connectionString: dbUrl(), max: Math.ceil(BENCH.poolSize / 2), idleTimeoutMillis: 1000 });

const auth = betterAuth({
  database: baPool,
  secret: 'bench-better-auth-secret-0123456789abcdef',
  baseURL: `http://127.0.0.1:${port}`,
  emailAndPassword: { enabled: true },
  plugins: [organization()],
  session: { cookieCache: { enabled: cache, maxAge: 300 } },
  logger: { level: 'error' },
  telemetry: { enabled: false },
});

const seedFile = process.env.BA_SEED;
if (seedFile) {
  const { runMigrations } = await getMigrations(auth.options);
  await runMigrations();
  const targets = JSON.parse(process.env.BA_TARGETS ?? '[]') as { email: string; orgId: string }[];
  const cookies: { email: string; orgId: string; cookie: string }[] = [];
  const jar = (res: Response, prev: Map<string, string>) => {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = (pair ?? '').indexOf('=');
      prev.set((pair ?? '').slice(0, i), (pair ?? '').slice(i + 1));
    }
    return prev;
  };
  const header = (m: Map<string, string>) => [...m].map(([k, v]) => `${k}=${v}`).join('; ');
  for (const t of targets) {
    const m = new Map<string, string>();
    jar(await auth.api.signUpEmail({ body: { email: t.email, password: BENCH.password, name: t.email }, asResponse: true }), m);
    const existing = await baPool.query<{ id: string }>('select id from organization where slug = $1', [t.orgId]);
    if (existing.rows[0]) {
      await baPool.query(`insert into member (id, "organizationId", "userId", role, "createdAt")
                          select gen_random_uuid()::text, $1, id, 'member', now() from "user" where email = $2`, [existing.rows[0].id, t.email]);
      jar(await auth.api.setActiveOrganization({ body: { organizationId: existing.rows[0].id }, headers: new Headers({ cookie: header(m) }), asResponse: true }), m);
    } else {
      jar(await auth.api.createOrganization({ body: { name: t.orgId, slug: t.orgId }, headers: new Headers({ cookie: header(m) }), asResponse: true }), m);
    }
    cookies.push({ email: t.email, orgId: t.orgId, cookie: header(m) });
  }
  writeFileSync(seedFile, JSON.stringify(cookies));
  process.stdout.write('seeded\n');
  process.exit(0);
}

const orgs = new Map((await baPool.query<{ id: string; slug: string }>('select id, slug from organization')).rows.map((r) => [r.id, r.slug]));


const app = Fastify({ logger: false });
app.get<{ Params: { projectId: string } }>('/ba/:projectId/assets', async (req, reply) => {
  const s = await auth.api.getSession({ headers: fromNodeHeaders(req.headers) });
  const activeOrg = s?.session.activeOrganizationId;
  const orgId = activeOrg ? orgs.get(activeOrg) : undefined;
  if (!orgId) return reply.code(401).send({ error: 'unauthenticated' });
  const { rows } = await dataPool.query<AssetRow>(ASSETS_SQL, [orgId, req.params.projectId]);
  return assetsJson(rows);
});
await app.listen({ port, host: '127.0.0.1' });
process.stdout.write('ready\n');
