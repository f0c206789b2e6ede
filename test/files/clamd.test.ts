/**
 * The clamd client (src/domains/files/clamd.ts) against a real clamd (Debian's clamav-daemon)
 * with the EICAR signature: plain, inside a zip, inside a zip in a zip, split at every size; and
 * failing closed when the daemon is gone, stopped, too small for the stream, or answers nonsense.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clamdScanner, parseClamdAddress, ScannerUnavailable, type Scanner } from '../../src/domains/files/clamd.js';
import { clamdMissing, EICAR, EICAR_SIGNATURE, startClamd, type Clamd } from '../support/clamd.js';
import { freePort } from '../support/redis.js';
import { yazlZip } from '../support/zip.js';

const missing = clamdMissing();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function* chunks(data: Buffer, size: number, pauseMs = 0): AsyncIterable<Buffer> {
  for (let at = 0; at < data.length; at += size) {
    if (pauseMs) await sleep(pauseMs);
    yield data.subarray(at, at + size);
  }
}


async function failure(p: Promise<unknown>): Promise<ScannerUnavailable> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(ScannerUnavailable);
  return err as ScannerUnavailable;
}

describe('clamd address', () => {
  it('reads tcp:// and unix: forms, and refuses anything else', () => {
    expect(parseClamdAddress('tcp://127.0.0.1:3310')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 3310 });
    expect(parseClamdAddress('tcp://clamd.internal')).toEqual({ kind: 'tcp', host: 'clamd.internal', port: 3310 });
    expect(parseClamdAddress('tcp://[::1]:3311')).toEqual({ kind: 'tcp', host: '::1', port: 3311 });
    expect(parseClamdAddress('unix:/run/clamav/clamd.ctl')).toEqual({ kind: 'unix', path: '/run/clamav/clamd.ctl' });
    expect(parseClamdAddress('unix:///run/clamav/clamd.ctl')).toEqual({ kind: 'unix', path: '/run/clamav/clamd.ctl' });
    for (const bad of ['', '127.0.0.1:3310', 'http://127.0.0.1:3310', 'tcp://127.0.0.1:99999', 'tcp://u:p@host:1', 'tcp://host:1/x', 'unix:relative']) {
      expect(parseClamdAddress(bad), bad).toBeNull();
    }
  });
});

describe.skipIf(missing !== null)('clamd scanner (real clamd)', () => {
  let clamd: Clamd;
  let scanner: Scanner;

  beforeAll(async () => {
    clamd = await startClamd();
    scanner = clamdScanner({ address: clamd.address, timeoutMs: 2000 });
  }, 90_000);
  afterAll(async () => {
    await clamd?.stop();
  });

  it('finds nothing in a clean file, and answers PING', async () => {
    expect(await scanner.ping()).toBe(true);
    expect(await scanner.scan(chunks(Buffer.from('quarterly report\n'.repeat(1000)), 4096))).toEqual({ clean: true });
    expect(await scanner.scan(chunks(Buffer.alloc(0), 1))).toEqual({ clean: true });
  });

  it('finds the test signature plain, split across chunks and frames of every size', async () => {
    const file = Buffer.concat([Buffer.from('preamble '), EICAR, Buffer.from(' trailer')]);
    expect(await scanner.scan(chunks(file, file.length))).toEqual({ clean: false, signature: EICAR_SIGNATURE });
    expect(await scanner.scan(chunks(file, 1))).toEqual({ clean: false, signature: EICAR_SIGNATURE });
    const small = clamdScanner({ address: clamd.address, timeoutMs: 2000, frameBytes: 7 });
    expect(await small.scan(chunks(file, 13))).toEqual({ clean: false, signature: EICAR_SIGNATURE });
  });

  it('finds it inside a zip, and inside a zip in a zip', async () => {
    const inner = await yazlZip([{ name: 'readme.txt', data: Buffer.from('hello') }, { name: 'eicar.com', data: EICAR }]);
    expect(await scanner.scan(chunks(inner, 1024))).toEqual({ clean: false, signature: EICAR_SIGNATURE });
    const outer = await yazlZip([{ name: 'notes.txt', data: Buffer.from('nothing here') }, { name: 'inner.zip', data: inner }]);
    expect(await scanner.scan(chunks(outer, 1024))).toEqual({ clean: false, signature: EICAR_SIGNATURE });
    expect(await scanner.scan(chunks(await yazlZip([{ name: 'a.txt', data: Buffer.from('clean') }]), 1024))).toEqual({ clean: true });
  });

  it('streams a large file through clamd\u2019s own pace, and waits for a slow uploader without timing out', async () => {
    const big = Buffer.alloc(16 * 1024 * 1024, 0x61);
    big.set(EICAR, big.length - EICAR.length - 10);
    expect(await scanner.scan(chunks(big, 256 * 1024))).toEqual({ clean: false, signature: EICAR_SIGNATURE });
    // Three pauses, each longer than the timeout: only waits on clamd are timed.
    const quick = clamdScanner({ address: clamd.address, timeoutMs: 300 });
    expect(await quick.scan(chunks(Buffer.from('slow but clean upload'), 6, 400))).toEqual({ clean: true });
  });

  it('fails closed on a stream larger than clamd accepts (StreamMaxLength)', async () => {
    const tight = await startClamd({ streamMaxLength: '1M' });
    try {
      const s = clamdScanner({ address: tight.address, timeoutMs: 2000 });
      const err = await failure(s.scan(chunks(Buffer.alloc(3 * 1024 * 1024, 0x62), 64 * 1024)));
      expect(['size_limit', 'closed']).toContain(err.reason);
    } finally {
      await tight.stop();
    }
  }, 90_000);

  it('fails closed when clamd is stopped (SIGSTOP) mid-stream and before connecting, and recovers', async () => {
    const own = await startClamd();
    try {
      const s = clamdScanner({ address: own.address, timeoutMs: 500 });
      expect(await s.scan(chunks(Buffer.from('ok'), 2))).toEqual({ clean: true });
      // Mid-stream: clamd stops reading, the socket fills up, the wait on it times out.
      let paused = false;
      const source = async function* () {
        for (let i = 0; i < 4096; i++) {
          if (i === 4 && !paused) {
            own.pause();
            paused = true;
          }
          yield Buffer.alloc(64 * 1024, 0x63);
        }
      };
      const t0 = performance.now();
      expect((await failure(s.scan(source()))).reason).toBe('timeout');
      expect(performance.now() - t0).toBeLessThan(5000);
      // Stopped before the command: the kernel accepts, no verdict comes.
      expect((await failure(s.scan(chunks(Buffer.from('x'), 1)))).reason).toBe('timeout');
      expect(await s.ping()).toBe(false);
      own.resume();
      expect(await s.scan(chunks(Buffer.from('ok again'), 3))).toEqual({ clean: true });
    } finally {
      own.resume();
      await own.stop();
    }
  }, 90_000);

  it('fails closed when clamd is gone (killed): refused at once', async () => {
    const own = await startClamd();
    const s = clamdScanner({ address: own.address, timeoutMs: 2000 });
    await own.kill();
    await own.stop();
    const t0 = performance.now();
    expect((await failure(s.scan(chunks(EICAR, 8)))).reason).toBe('connect');
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(await s.ping()).toBe(false);
  }, 90_000);
});

describe('clamd scanner against a daemon that misbehaves', () => {
  let server: Server;
  let port: number;
  let behave: (socket: Socket) => void = () => undefined;
  const open = new Set<Socket>();

  beforeAll(async () => {
    port = await freePort();
    server = createServer((socket) => {
      open.add(socket);
      socket.on('close', () => open.delete(socket));
      socket.on('error', () => undefined);
      behave(socket);
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  });
  afterAll(async () => {
    for (const socket of open) socket.destroy();
    await new Promise((r) => server.close(r));
  });

  const scan = () => clamdScanner({ address: { kind: 'tcp', host: '127.0.0.1', port }, timeoutMs: 500 }).scan(chunks(Buffer.from('data'), 2));

  it('never takes a reply it does not understand, an error reply or a closed connection for clean', async () => {
    behave = (s) => s.end('stream: maybe\0');
    expect((await failure(scan())).reason).toBe('protocol');
    behave = (s) => s.end('Can\u2019t allocate memory ERROR\0');
    expect((await failure(scan())).reason).toBe('error_reply');
    behave = (s) => s.end('stream: OK');
    expect(['protocol', 'closed']).toContain((await failure(scan())).reason);
    behave = (s) => s.destroy();
    expect((await failure(scan())).reason).toBe('closed');
    behave = (s) => s.end(Buffer.alloc(10_000, 0x41));
    expect(['protocol', 'closed']).toContain((await failure(scan())).reason);
    // "Clean" before the stream was sent in full is not a verdict about it.
    behave = (s) => s.end('stream: OK\0');
    const long = clamdScanner({ address: { kind: 'tcp', host: '127.0.0.1', port }, timeoutMs: 500 }).scan(chunks(Buffer.alloc(4 * 1024 * 1024), 64 * 1024, 1));
    expect(['protocol', 'closed']).toContain((await failure(long)).reason);
    // A signature name is passed on only if it looks like one.
    behave = (s) => s.end('stream: <script>alert(1)</script> FOUND\0');
    expect(await scan()).toEqual({ clean: false, signature: 'unnamed-signature' });
  });
});
