import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A webhook receiver on loopback for bench/webhooks.ts, in its own process (a receiver is
 * somewhere else; here it at least has its own thread). Answers 204 to everything, counts
 * requests and distinct webhook-ids, and records the time from the event (the payload's
 * `timestamp`, set when the audit event was appended) to receipt. The parent asks over IPC:
 * `{ type: 'reset' }`, `{ type: 'stats' }`.
 */
export interface ReceiverStats {
  type: 'stats';
  count: number;
  distinct: number;
  /** Event-to-receipt times (ms) of requests whose body carried a timestamp. */
  latencies: number[];
}

let count = 0;
let ids = new Set<string>();
let latencies: number[] = [];

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const at = Date.now();
    count++;
    const id = req.headers['webhook-id'];
    if (typeof id === 'string') ids.add(id);
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { timestamp?: unknown };
      if (typeof body.timestamp === 'string') latencies.push(at - Date.parse(body.timestamp));
    } catch {
      // Not JSON: counted, no latency.
    }
    res.writeHead(204).end();
  });
});
server.keepAliveTimeout = 5000;

process.on('message', (m: { type?: string }) => {
  if (m.type === 'reset') {
    count = 0;
    ids = new Set();
    latencies = [];
    process.send?.({ type: 'reset' });
  } else if (m.type === 'stats') {
    const stats: ReceiverStats = { type: 'stats', count, distinct: ids.size, latencies };
    process.send?.(stats);
  }
});
process.on('disconnect', () => process.exit(0));

server.listen(0, '127.0.0.1', () => {
  process.send?.({ type: 'ready', port: (server.address() as AddressInfo).port });
});
