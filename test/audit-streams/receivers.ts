/**
 * Real receivers on loopback for the audit stream suites and the benchmark: a syslog collector
 * (TCP or TLS) that parses RFC 6587 octet-counted frames of RFC 5424 messages as a SIEM would,
 * and an HTTP receiver of NDJSON batches whose answers the test controls (status, delay, a gate
 * that holds requests until opened).
 */
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server as HttpServer } from 'node:http';
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import tls from 'node:tls';

export interface SyslogMessage {
  pri: number;
  version: number;
  timestamp: string;
  hostname: string;
  appName: string;
  procId: string;
  msgId: string;
  /** SD-ID → params (values unescaped). */
  sd: Record<string, Record<string, string>>;
  msg: string;
  /** Wall-clock ms when the frame was parsed. */
  receivedAt: number;
}

/** Parses one RFC 5424 message; throws on anything that does not follow the grammar. */
export function parseRfc5424(text: string): Omit<SyslogMessage, 'receivedAt'> {
  const head = /^<(\d{1,3})>(\d{1,2}) (\S+) (\S+) (\S+) (\S+) (\S+) /.exec(text);
  if (!head) throw new Error(`not RFC 5424: ${text.slice(0, 80)}`);
  const [, pri, version, timestamp, hostname, appName, procId, msgId] = head as unknown as string[];
  let i = head[0].length;
  const sd: Record<string, Record<string, string>> = {};
  if (text[i] === '-') i += 1;
  else {
    while (text[i] === '[') {
      i += 1;
      const idEnd = text.slice(i).search(/[ \]]/);
      const id = text.slice(i, i + idEnd);
      i += idEnd;
      const params: Record<string, string> = {};
      while (text[i] === ' ') {
        i += 1;
        const eq = text.indexOf('="', i);
        const name = text.slice(i, eq);
        i = eq + 2;
        let value = '';
        while (text[i] !== '"') {
          if (i >= text.length) throw new Error('unterminated PARAM-VALUE');
          if (text[i] === '\\' && ['"', '\\', ']'].includes(text[i + 1] ?? '')) i += 1;
          value += text[i];
          i += 1;
        }
        i += 1;
        params[name] = value;
      }
      if (text[i] !== ']') throw new Error(`bad SD-ELEMENT at ${i}`);
      i += 1;
      sd[id] = params;
    }
  }
  let msg = '';
  if (text[i] === ' ') msg = text.slice(i + 1);
  else if (i !== text.length) throw new Error('no space before MSG');
  if (msg.startsWith('\uFEFF')) msg = msg.slice(1);
  return { pri: Number(pri), version: Number(version), timestamp: timestamp ?? '', hostname: hostname ?? '', appName: appName ?? '', procId: procId ?? '', msgId: msgId ?? '', sd, msg };
}

/** A syslog collector on 127.0.0.1: plain TCP, or TLS with the given key and certificate. */
export class SyslogReceiver {
  readonly messages: SyslogMessage[] = [];
  /** Connections accepted (each batch comes on one). */
  connections = 0;
  errors: string[] = [];
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly tlsOptions: { key: Buffer; cert: Buffer } | null = null) {}

  async start(port = 0): Promise<number> {
    const onSocket = (socket: Socket): void => {
      this.connections += 1;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
      let buf = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        // Octet counting: MSG-LEN SP SYSLOG-MSG, repeated.
        for (;;) {
          const sp = buf.indexOf(0x20);
          if (sp === -1) break;
          const len = Number(buf.subarray(0, sp).toString('ascii'));
          if (!Number.isInteger(len) || len <= 0) {
            this.errors.push(`bad frame length ${buf.subarray(0, sp).toString('ascii').slice(0, 20)}`);
            socket.destroy();
            return;
          }
          if (buf.length < sp + 1 + len) break;
          const text = buf.subarray(sp + 1, sp + 1 + len).toString('utf8');
          buf = buf.subarray(sp + 1 + len);
          try {
            this.messages.push({ ...parseRfc5424(text), receivedAt: Date.now() });
          } catch (err) {
            this.errors.push(String(err));
          }
        }
      });
      // Like rsyslog: read to the end, then close our side.
      socket.on('end', () => {
        if (buf.length > 0) this.errors.push(`${buf.length} trailing bytes`);
        socket.end();
      });
    };
    this.server = this.tlsOptions ? tls.createServer(this.tlsOptions, onSocket) : net.createServer(onSocket);
    if (this.tlsOptions) this.server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => this.server?.listen(port, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  /** The events carried in MSG, parsed. */
  events<T = { seq: number; orgId: string; action: string; id: string }>(): T[] {
    return this.messages.map((m) => JSON.parse(m.msg) as T);
  }

  async waitFor(n: number, timeoutMs = 10_000): Promise<void> {
    const start = Date.now();
    while (this.messages.length < n) {
      if (Date.now() - start > timeoutMs) throw new Error(`syslog receiver got ${this.messages.length} of ${n} messages`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = null;
  }
}

export interface Batch {
  headers: IncomingHttpHeaders;
  body: string;
  receivedAt: number;
}

/** An HTTP receiver of NDJSON batches. `answer` picks each status; `gate` (when set) holds requests until released. */
export class NdjsonReceiver {
  readonly batches: Batch[] = [];
  answer: (b: Batch, n: number) => number | { status: number; delayMs: number } = () => 200;
  inFlight = 0;
  maxInFlight = 0;
  private server: HttpServer | null = null;
  private gate: Promise<void> | null = null;
  private openGate: (() => void) | null = null;

  /** Requests wait from now until release(). */
  hold(): void {
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }

  release(): void {
    this.openGate?.();
    this.gate = null;
  }

  async start(port = 0): Promise<string> {
    this.server = createHttpServer((req, res) => {
      this.inFlight += 1;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const b = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), receivedAt: Date.now() };
        void (async () => {
          if (this.gate) await this.gate;
          const a = this.answer(b, this.batches.length + 1);
          const { status, delayMs } = typeof a === 'number' ? { status: a, delayMs: 0 } : a;
          if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
          // Recorded as received only when acknowledged with a 2xx, as a SIEM that stores them would.
          if (status >= 200 && status < 300) this.batches.push(b);
          else this.refused += 1;
          this.inFlight -= 1;
          res.writeHead(status).end();
        })();
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(port, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  refused = 0;

  /** Every event line acknowledged, in arrival order. */
  events<T = { seq: number; orgId: string; action: string; id: string }>(): T[] {
    return this.batches.flatMap((b) => b.body.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as T));
  }

  async waitForEvents(n: number, timeoutMs = 10_000): Promise<void> {
    const start = Date.now();
    while (this.events().length < n) {
      if (Date.now() - start > timeoutMs) throw new Error(`receiver got ${this.events().length} of ${n} events`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async close(): Promise<void> {
    this.release();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = null;
  }
}
