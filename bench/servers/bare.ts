import Fastify from 'fastify';
import pg from 'pg';
import { BENCH, dbUrl } from '../lib/env.js';
import { ASSETS_SQL, assetsJson, type AssetRow } from '../lib/rows.js';

/**
 * Baseline: a plain Fastify route running the same tenant-filtered query as the protected
 * read, with no authentication, on a copy of the table without RLS.
 */
const pool = new pg.Pool({ connectionString: dbUrl(), max: BENCH.poolSize, idleTimeoutMillis: 1000 });
const app = Fastify({ logger: false });


app.get<{ Params: { orgId: string; projectId: string } }>('/bare/:orgId/:projectId/assets', async (req) => {
  const { rows } = await pool.query<AssetRow>(ASSETS_SQL, [req.params.orgId, req.params.projectId]);
  return assetsJson(rows);
});

await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
process.stdout.write('ready\n');
