/** An org's idle policy counts from the last request, not from sign-in. Id F4: the first attacker review (174568f). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/support/app.js';
import { signedIn } from '../../../test/support/client.js';
import { newUser } from '../../../test/support/users.js';

describe('org idle policy (pglite)', () => {
  let h: TestApp;
  beforeAll(async () => { h = await createTestApp('pglite'); });
  afterAll(async () => h?.close());

  // review F4
  it('a member active every 45 s stays signed in under a 1-minute org idle policy', async () => {
    const u = await newUser(h);
    const c = await signedIn(h, u.email);
    const org = await c.call('POST', '/api/orgs', { name: 'Strict', slug: `strict-${Date.now()}` });
    const orgId = org.json<{ id: string }>().id;
    expect((await c.call('PATCH', `/api/orgs/${orgId}/settings`, { sessionIdleMinutes: 1 })).statusCode).toBe(200);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      h.clock.advance(45_000); // never idle for more than 45 s
      statuses.push((await c.call('GET', `/api/orgs/${orgId}`)).statusCode);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200]);
    // ...while a real gap longer than the limit still expires it.
    h.clock.advance(61_000);
    expect((await c.call('GET', `/api/orgs/${orgId}`)).statusCode).toBe(401);
  });
});
