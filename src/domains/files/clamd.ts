import net from 'node:net';

/**
 * A client of ClamAV's daemon (clamd) over its INSTREAM command (issue 16): the bytes of an upload
 * are streamed to clamd as they arrive, in length-prefixed frames, and clamd answers one verdict
 * for the whole stream, archives included (it unpacks zip and the rest itself, recursively).
 *
 * Fail closed: anything but a verdict — no daemon, a refused or reset connection, a daemon that
 * stops reading or does not answer in time, an error reply (its stream size limit included), a
 * reply this client does not understand — is a ScannerUnavailable, never "clean". The caller
 * refuses the upload (503 with Retry-After) and stores nothing as available.
 *
 * Timeouts run only while this client waits on clamd (a full socket buffer, the verdict), never
 * while it waits on the uploader: a slow client must not be mistaken for a slow scanner. clamd has
 * its own idle limit on an INSTREAM connection (ReadTimeout, 120 s by default), past which it
 * closes it: an upload that pauses longer is refused the same way.
 */

import type { ClamdAddress } from '../../config/index.js';

export type { ClamdAddress };
export { parseClamdAddress } from '../../config/index.js';

export type ScanVerdict = { clean: true } | { clean: false; signature: string };

export type ScannerFailure = 'connect' | 'timeout' | 'closed' | 'error_reply' | 'size_limit' | 'protocol';

/** The scanner gave no verdict. `reason` says why, for the log and the metric (never for the client). */
export class ScannerUnavailable extends Error {
  constructor(
    readonly reason: ScannerFailure,
    detail: string,
  ) {
    super(`clamd: ${detail}`);
    this.name = 'ScannerUnavailable';
  }
}

export interface Scanner {
  /** Streams `source` to the scanner and returns its verdict; throws ScannerUnavailable otherwise. */
  scan(source: AsyncIterable<Uint8Array>): Promise<ScanVerdict>;
  /** True when the daemon answers PING with PONG within the timeout. */
  ping(): Promise<boolean>;
}

export interface ClamdOptions {
  address: ClamdAddress;
  /** How long to wait on clamd: to connect, for it to read a frame, for its verdict. */
  timeoutMs: number;
  /** Largest INSTREAM frame (clamd reads up to its StreamMaxLength in total, any frame size). */
  frameBytes?: number;
}

const MAX_REPLY_BYTES = 4096;
/** What a signature name may hold when it reaches a log line, an audit event or a message. */
const SIGNATURE_RE = /^[\w.:/+-]{1,200}$/;

export function clamdScanner(opts: ClamdOptions): Scanner {
  const frameBytes = opts.frameBytes ?? 64 * 1024;
  return {
    async scan(source) {
      const conn = await Connection.open(opts.address, opts.timeoutMs);
      try {
        await conn.write(Buffer.from('zINSTREAM\0', 'latin1'));
        for await (const chunk of source) {
          for (let at = 0; at < chunk.length && !conn.answered; at += frameBytes) {
            const part = chunk.subarray(at, Math.min(chunk.length, at + frameBytes));
            const header = Buffer.alloc(4);
            header.writeUInt32BE(part.length);
            await conn.write(Buffer.concat([header, part]));
          }
          // clamd answers early only to refuse the stream (its size limit): stop sending.
          if (conn.answered) break;
        }
        const sentAll = !conn.answered;
        if (sentAll) await conn.write(Buffer.alloc(4));
        const verdict = verdictOf(await conn.reply());
        // clamd scans once the stream has ended: "clean" before that was not about this file.
        if (!sentAll && verdict.clean) throw new ScannerUnavailable('protocol', 'a verdict before the end of the stream');
        return verdict;
      } finally {
        conn.close();
      }
    },
    async ping() {
      try {
        const conn = await Connection.open(opts.address, opts.timeoutMs);
        try {
          await conn.write(Buffer.from('zPING\0', 'latin1'));
          return (await conn.reply()) === 'PONG';
        } finally {
          conn.close();
        }
      } catch (err) {
        if (err instanceof ScannerUnavailable) return false;
        throw err;
      }
    },
  };
}

function verdictOf(reply: string): ScanVerdict {
  if (reply === 'stream: OK') return { clean: true };
  const found = /^stream: (.+) FOUND$/.exec(reply);
  if (found?.[1]) {
    const signature = found[1];
    return { clean: false, signature: SIGNATURE_RE.test(signature) ? signature : 'unnamed-signature' };
  }
  if (/size limit exceeded/i.test(reply)) throw new ScannerUnavailable('size_limit', 'the stream is larger than clamd accepts (StreamMaxLength)');
  if (/ERROR$/.test(reply)) throw new ScannerUnavailable('error_reply', `error reply: ${reply.slice(0, 200)}`);
  throw new ScannerUnavailable('protocol', 'a reply that is not a verdict');
}

/** One command's connection: writes that wait for the socket to drain, and one null-terminated reply. */
class Connection {
  private readonly received: Buffer[] = [];
  private receivedBytes = 0;
  private failure: ScannerUnavailable | null = null;
  private wake: (() => void) | null = null;
  answered = false;

  private constructor(
    private readonly socket: net.Socket,
    private readonly timeoutMs: number,
  ) {
    socket.on('data', (d: Buffer) => {
      this.received.push(d);
      this.receivedBytes += d.length;
      if (d.includes(0) || this.receivedBytes > MAX_REPLY_BYTES) this.answered = true;
      this.poke();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => this.fail(new ScannerUnavailable('closed', `connection failed (${err.code ?? 'error'})`)));
    socket.on('close', () => this.fail(new ScannerUnavailable('closed', 'clamd closed the connection')));
    socket.on('drain', () => this.poke());
  }

  static open(address: ClamdAddress, timeoutMs: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = address.kind === 'tcp' ? net.connect({ host: address.host, port: address.port }) : net.connect({ path: address.path });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ScannerUnavailable('timeout', `no connection within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new Connection(socket, timeoutMs));
      });
      socket.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new ScannerUnavailable('connect', `cannot connect (${err.code ?? 'error'})`));
      });
    });
  }

  async write(data: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.socket.write(data)) return;
    // The socket's buffer is full: clamd is not reading. Wait for it, within the timeout.
    await this.until(() => !this.socket.writableNeedDrain || this.answered, 'clamd stopped reading the stream');
  }

  /** The reply up to its terminating NUL, without it. */
  async reply(): Promise<string> {
    await this.until(() => this.answered, 'no verdict');
    const all = Buffer.concat(this.received);
    const end = all.indexOf(0);
    if (end < 0) throw new ScannerUnavailable('protocol', 'an unterminated reply');
    return all.subarray(0, end).toString('latin1').trim();
  }

  close(): void {
    this.socket.destroy();
  }

  private until(done: () => boolean, what: string): Promise<void> {
    if (done()) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.wake = null;
        reject(new ScannerUnavailable('timeout', `${what} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.wake = () => {
        if (done()) {
          clearTimeout(timer);
          this.wake = null;
          resolve();
        } else if (this.failure) {
          clearTimeout(timer);
          this.wake = null;
          reject(this.failure);
        }
      };
    });
  }

  private fail(err: ScannerUnavailable): void {
    // A reply already received stands (clamd closes after answering).
    if (!this.answered) this.failure ??= err;
    this.poke();
  }

  private poke(): void {
    this.wake?.();
  }
}
