import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { cliEnv, runBin } from '../support/bin.js';
import { ENGINES } from '../support/db.js';
import { auditSelect } from '../support/evidence.js';

/** `palisade plan --org SLUG PLAN`: the operator moves an org to a plan; its upload limits follow at once. */
describe.runIf(ENGINES.includes('postgres'))('palisade plan', () => {
  let h: TestApp;
  const PLANS = 'free=1M/10M,team=50M/5G';
  const env = () => cliEnv(h.t.ownerUrl, { PALISADE_UPLOAD_PLANS: PLANS });

  beforeAll(async () => {
    h = await createTestApp('postgres', { config: { PALISADE_UPLOAD_PLANS: PLANS } });
  });
  afterAll(async () => h?.close());

  it('moves the org, audited as the operator; the files list shows the new limits; unknown plans and orgs are refused', async () => {
    const acme = h.orgId('acme');
    const project = h.demo.orgs.find((o) => o.slug === 'acme')?.projects[0]?.id ?? '';
    const limits = async () => (await h.built.app.inject({
      method: 'GET', url: `/api/orgs/${acme}/projects/${project}/files`, headers: { cookie: await h.cookieFor(h.user('acme', 'viewer').email) },
    })).json<{ limits: { fileBytes: number; quotaBytes: number } }>().limits;
    expect(await limits()).toMatchObject({ fileBytes: 1024 ** 2, quotaBytes: 10 * 1024 ** 2 });

    const r = await runBin(['plan', '--org', 'acme', 'team'], env());
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('acme is on the team plan (was free)');
    expect(await limits()).toMatchObject({ fileBytes: 50 * 1024 ** 2, quotaBytes: 5 * 1024 ** 3 });
    const [ev] = await auditSelect<{ actor_id: string; details: unknown }>(h, ['actor_id', 'details'], `where org_id = $1 and action = 'org.plan_changed'`, [acme]);
    expect(ev).toEqual({ actor_id: 'cli plan', details: { from: 'free', to: 'team' } });

    const unknown = await runBin(['plan', '--org', 'acme', 'platinum'], env());
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('PALISADE_UPLOAD_PLANS defines free, team');
    expect((await runBin(['plan', '--org', 'no-such-org', 'team'], env())).code).toBe(2);
  }, 60_000);
});
