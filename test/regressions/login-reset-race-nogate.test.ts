import { afterAll, beforeAll, describe, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { expect } from './helpers.js';

describe('login racing a password reset, no instrumentation (postgres)', () => {
  let h: TestApp;
  beforeAll(async () => { h = await createTestApp('postgres'); });
  afterAll(async () => h?.close());

  it('F5b: hammering login with the old password leaves no session alive after the reset', async () => {
    const victim = h.user('acme', 'admin');
    const app = h.built.app;
    await app.inject({ method: 'POST', url: '/api/auth/password-reset/request', headers: { origin: ORIGIN }, payload: { email: victim.email } });
    const mails = await h.t.db.withSystem('test', (tx) => h.built.services.mail.read(tx, victim.email));
    const token = /token=(pal_pwr_[A-Za-z0-9_-]{43})/.exec(mails.at(-1)!.body)![1]!;
    let stop = false;
    const cookies: string[] = [];
    const attacker = async () => {
      while (!stop) {
        const r = await app.inject({ method: 'POST', url: '/api/auth/login', headers: { origin: ORIGIN }, payload: { email: victim.email, password: victim.password } });
        const c = r.cookies.find((x) => x.name === h.built.cookie.name);
        if (c) cookies.push(`${c.name}=${c.value}`);
      }
    };
    const workers = [attacker(), attacker(), attacker()];
    await new Promise((r) => setTimeout(r, 200));
    const reset = await app.inject({ method: 'POST', url: '/api/auth/password-reset/confirm', headers: { origin: ORIGIN }, payload: { token, password: 'a-brand-new-long-passphrase-91' } });
    expect(reset.statusCode).toBe(204);
    stop = true;
    await Promise.all(workers);
    let alive = 0;
    for (const c of cookies) if ((await app.inject({ method: 'GET', url: '/api/me', headers: { cookie: c } })).statusCode === 200) alive++;
    console.log(`attacker logins: ${cookies.length}, sessions alive after reset: ${alive}`);
    expect(alive).toBe(0);
  });
});
