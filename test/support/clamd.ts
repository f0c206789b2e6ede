import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clamdScanner, type ClamdAddress } from '../../src/domains/files/clamd.js';
import { freePort } from './redis.js';

/**
 * A real clamd of the test's own (Debian's clamav-daemon), on a free loopback port, with a
 * signature database of one signature: the EICAR test file's, written here (no download: the
 * machines have no route to ClamAV's mirrors; production uses freshclam, docs/operations.md).
 * clamd unpacks archives itself, so the signature is found inside a zip, or a zip in a zip.
 */

export const CLAMD_BIN = process.env.PALISADE_CLAMD_BIN ?? '/usr/sbin/clamd';

/** The EICAR anti-virus test file, kept encoded so that no scanner flags this source file. */
export const EICAR = Buffer.from('WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNULUZJTEUhJEgrSCo=', 'base64');
/** clamd marks signatures from a database it does not know as its own with .UNOFFICIAL. */
export const EICAR_SIGNATURE = 'Eicar-Test-Signature.UNOFFICIAL';

/**
 * Why the clamd tests cannot run here, or null. CI installs clamav-daemon and sets
 * PALISADE_REQUIRE_CLAMD (.ci/run): there a missing daemon fails the suite instead.
 */
export function clamdMissing(): string | null {
  const why = existsSync(CLAMD_BIN) ? null : `${CLAMD_BIN} is absent (apt-get install clamav-daemon)`;
  if (why && process.env.PALISADE_REQUIRE_CLAMD === '1') throw new Error(`PALISADE_REQUIRE_CLAMD=1 but ${why}`);
  return why;
}

export interface Clamd {
  address: ClamdAddress;
  port: number;
  process: ChildProcess;
  /** SIGSTOP: the daemon accepts connections (the kernel does) but never answers. */
  pause(): void;
  resume(): void;
  /** SIGKILL and wait: connections are refused from then on. */
  kill(): Promise<void>;
  /** The daemon's own log, for a failing test's message. */
  log(): string;
  stop(): Promise<void>;
}

export async function startClamd(opts: { streamMaxLength?: string } = {}): Promise<Clamd> {
  const dir = mkdtempSync(join(tmpdir(), 'palisade-clamd-'));
  mkdirSync(join(dir, 'db'));
  mkdirSync(join(dir, 'tmp'));
  // An extended signature (.ndb): the test file's bytes at any offset of any file type.
  writeFileSync(join(dir, 'db', 'palisade-test.ndb'), `Eicar-Test-Signature:0:*:${EICAR.toString('hex')}\n`);
  const port = await freePort();
  const logFile = join(dir, 'clamd.log');
  const conf = join(dir, 'clamd.conf');
  writeFileSync(
    conf,
    [
      'Foreground yes',
      `TCPSocket ${port}`,
      'TCPAddr 127.0.0.1',
      `DatabaseDirectory ${join(dir, 'db')}`,
      `TemporaryDirectory ${join(dir, 'tmp')}`,
      `LogFile ${logFile}`,
      `PidFile ${join(dir, 'clamd.pid')}`,
      `StreamMaxLength ${opts.streamMaxLength ?? '64M'}`,
      // As docs/operations.md asks of production: what clamd cannot scan (past its limits,
      // encrypted) is a finding, never "OK"; and it scans as far as it reads.
      `MaxScanSize ${opts.streamMaxLength ?? '64M'}`,
      `MaxFileSize ${opts.streamMaxLength ?? '64M'}`,
      'AlertExceedsMax yes',
      'AlertEncrypted yes',
      'MaxThreads 4',
      'Bytecode no',
      'ReadTimeout 20',
      '',
    ].join('\n'),
  );
  const child = spawn(CLAMD_BIN, ['--config-file', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  const address: ClamdAddress = { kind: 'tcp', host: '127.0.0.1', port };
  const log = () => {
    try {
      return readFileSync(logFile, 'utf8') + stderr;
    } catch {
      return stderr;
    }
  };
  const scanner = clamdScanner({ address, timeoutMs: 1000 });
  for (const end = Date.now() + 60_000; ; await new Promise((r) => setTimeout(r, 100))) {
    if (child.exitCode !== null) throw new Error(`clamd exited (${child.exitCode}): ${log()}`);
    if (await scanner.ping()) break;
    if (Date.now() > end) {
      child.kill('SIGKILL');
      throw new Error(`clamd did not answer PING within 60 s: ${log()}`);
    }
  }
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    await once(child, 'exit');
  };
  return {
    address,
    port,
    process: child,
    pause: () => child.kill('SIGSTOP'),
    resume: () => child.kill('SIGCONT'),
    kill,
    log,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
