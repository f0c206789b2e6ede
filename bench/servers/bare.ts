import Fastify from 'fastify';
import pg from 'pg';
import { BENCH, dbUrl } from '../lib/env.js';

/**
 * Baseline: a plain Fastify route running the same tenant-filtered query as the protected
 * read, with no authentication, on a copy of the table without RLS.
 */
const pool = new pg.Pool({ connectionString: dbUrl(), max: BENCH.poolSize, idleTimeoutMillis: 1000 });
const app = Fastify({ logger: false });

interface Row {
  id: string;
  project_id: string;
  name: string;
  kind: string;
  created_at: Date;
}

app.get<{ Params: { orgId: string; projectId: string } }>('/bare/:orgId/:projectId/assets', async (req) => {
  const { rows } = await pool.query<Row>(
    `select id, project_id, name, kind, created_at from bench.assets
     where org_id = $1 and project_id = $2 order by created_at desc, id limit 20`,
    [req.params.orgId, req.params.projectId],
  );
  return { assets: rows.map((r) => ({ id: r.id, projectId: r.project_id, name: r.name, kind: r.kind, createdAt: r.created_at.toISOString() })) };
});

await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
process.stdout.write('ready\n');
