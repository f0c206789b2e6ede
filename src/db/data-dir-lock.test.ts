import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lockDataDir } from './data-dir-lock.js';
import { openDatabase } from './open.js';

describe('one process per embedded data directory', () => {
  const dirs: string[] = [];
  const fresh = () => {
    const d = mkdtempSync(join(tmpdir(), 'palisade-lock-'));
    dirs.push(d);
    return d;
  };
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  // In full: refuses a second open of a directory in use (a CLI command while the server runs), and
  // frees it on close
  it('refuses a second open of a directory in use, and frees it on close', async () => {
    const dataDir = fresh();
    const cfg = { kind: 'pglite' as const, dataDir, runtimeRole: 'palisade_lock_test' };
    const first = await openDatabase(cfg, { migrate: false });
    await expect(openDatabase(cfg, { migrate: false })).rejects.toThrow(`in use by process ${process.pid}`);
    await first.db.close();
    const second = await openDatabase(cfg, { migrate: false });
    await second.db.close();
  });

  it('takes over a directory left by a process that is gone', () => {
    const dir = fresh();
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    writeFileSync(join(dir, 'palisade.pid'), gone);
    const release = lockDataDir(dir);
    expect(() => lockDataDir(dir)).toThrow('in use');
    release();
    lockDataDir(dir)();
  });
});
