import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * A webhook receiver on loopback. `answer` decides each response: a status (with optional
 * headers and a delay before answering), or 'hang' to hold the request until the receiver closes.
 */
export class Receiver {
  readonly received: Received[] = [];
  answer: (r: Received, n: number) => number | { status: number; headers?: Record<string, string>; delayMs?: number } | 'hang' = () => 204;
  private server: Server | null = null;
  private readonly held = new Set<() => void>();

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const r = { headers: req.headers, body };
        this.received.push(r);
        const a = this.answer(r, this.received.length);
        if (a === 'hang') {
          this.held.add(() => res.destroy());
          return;
        }
        const { status, headers, delayMs } = typeof a === 'number' ? { status: a, headers: {}, delayMs: 0 } : a;
        if (!delayMs) {
          res.writeHead(status, headers).end();
          return;
        }
        const timer = setTimeout(() => res.writeHead(status, headers).end(), delayMs);
        const drop = () => {
          clearTimeout(timer);
          res.destroy();
        };
        this.held.add(drop);
        res.once('close', () => this.held.delete(drop));
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server?.address() as AddressInfo).port}`;
  }

  /** Resolves once `n` requests have arrived. */
  async waitFor(n: number, timeoutMs = 10_000): Promise<void> {
    const start = Date.now();
    while (this.received.length < n) {
      if (Date.now() - start > timeoutMs) throw new Error(`receiver got ${this.received.length} of ${n} requests`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async close(): Promise<void> {
    for (const drop of this.held) drop();
    this.held.clear();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
