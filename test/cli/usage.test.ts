import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { runBin } from '../support/bin.js';
import { PG_ADMIN_URL } from '../support/db.js';

/** What `palisade` answers before it touches a database: help, a typo, a missing command. */
describe('palisade usage', () => {
  it('names an unknown command, prints the usage and exits 2', async () => {
    const r = await runBin(['frobnicate'], {});
    expect(r.code).toBe(2);
    expect(r.err.split('\n')[0]).toBe('unknown command: frobnicate');
    expect(r.err).toContain('usage: palisade <command>');
    expect(r.out).toBe('');
  });

  it('says so when no command is given, with the usage, exit 2', async () => {
    const r = await runBin([], {});
    expect(r.code).toBe(2);
    expect(r.err.split('\n')[0]).toBe('no command given');
    expect(r.err).toContain('usage: palisade <command>');
  });

  it('answers an unknown command even where the configuration would be refused', async () => {
    // Malformed keys refuse every real command; a typo is still answered as a typo.
    const refused = await runBin(['migrate'], { PALISADE_KEKS: 'garbage' });
    expect(refused.code).toBe(2);
    expect(refused.err).toContain('PALISADE_KEKS');
    const r = await runBin(['frobnicate'], { PALISADE_KEKS: 'garbage' });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^unknown command: frobnicate\n/);
  });

  it('help says the outbox holds security notices and that worker runs without the API', async () => {
    const r = await runBin(['--help'], {});
    expect(r.code).toBe(0);
    const outbox = r.out.slice(r.out.indexOf('  outbox'), r.out.indexOf('  unlock'));
    expect(outbox).toContain('security notices');
    expect(outbox).toContain('account locked');
    const worker = r.out.slice(r.out.indexOf('  worker'));
    expect(worker).toContain('without the API');
  });

  // new-user trial 2026-12-05: this answered 'role "palisade_app" does not exist' and created an empty directory.
  it('names the database it looked for when none is there, and creates nothing', async () => {
    const state = mkdtempSync(join(tmpdir(), 'palisade-nodb-'));
    const r = await runBin(['outbox'], { PALISADE_ENV: 'development', PALISADE_STATE_DIR: state });
    expect(r.code).toBe(1);
    expect(r.err).toContain(`no Palisade database in the embedded database ${join(state, 'data')}`);
    expect(r.err).toContain('palisade migrate');
    expect(existsSync(join(state, 'data'))).toBe(false);
  });

  it('names an unmigrated PostgreSQL database to the worker instead of a missing role', async () => {
    const name = `palisade_nodb_${Date.now().toString(36)}`;
    const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
    await admin.connect();
    await admin.query(`create database ${name}`);
    try {
      const url = new URL(PG_ADMIN_URL);
      url.pathname = `/${name}`;
      const state = mkdtempSync(join(tmpdir(), 'palisade-nodb-'));
      const r = await runBin(['worker'], { PALISADE_ENV: 'development', PALISADE_STATE_DIR: state, DATABASE_URL: url.toString() });
      expect(r.code).toBe(1);
      expect(r.err).toContain(`no Palisade database in the PostgreSQL database ${name}`);
    } finally {
      await admin.query(`drop database if exists ${name} with (force)`);
      await admin.end();
    }
  });

  it('says what a known command lacks before the usage', async () => {
    const cases: [string[], string][] = [
      [['allowlist', 'clear'], 'allowlist clear needs --org SLUG'],
      [['allowlist', 'open'], 'allowlist has one subcommand: clear'],
      [['unlock'], 'unlock takes one argument: the account\u2019s email address'],
      [['unlock', 'a@example.test', 'b@example.test'], 'unlock takes one argument: the account\u2019s email address'],
      [['outbox', '--to'], 'outbox takes no argument, or --to EMAIL'],
      [['outbox', 'owner@acme.test'], 'outbox takes no argument, or --to EMAIL'],
    ];
    for (const [args, first] of cases) {
      const r = await runBin(args, { PALISADE_ENV: 'development', PALISADE_STATE_DIR: mkdtempSync(join(tmpdir(), 'palisade-args-')) });
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err.split('\n')[0], args.join(' ')).toBe(first);
    }
  });
});
