import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../kernel/errors.js';
import { sendProblem } from './problem.js';

/**
 * The admin console (web/, built into web/dist by scripts/console-build.mjs) served by the server
 * itself: same origin as /api, so the session cookie and the CSRF check need nothing new, and
 * under the server's CSP (script-src 'self', no inline script, frame-ancestors 'none').
 * The bundle is read into memory once at start: a handful of files, none chosen by a request.
 */
const DIST = fileURLToPath(new URL('../../web/dist', import.meta.url));

/** The console's own pages (client-side routes): a browser opening one gets index.html. */
const PAGE_PREFIXES = ['/sign-in', '/sign-up', '/reset-password', '/verify-email', '/invitations/accept', '/account', '/orgs'];

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

interface Bundle {
  index: Buffer;
  assets: Map<string, { body: Buffer; type: string }>;
}

function loadBundle(dir: string): Bundle | null {
  const indexFile = join(dir, 'index.html');
  if (!existsSync(indexFile)) return null;
  const assets = new Map<string, { body: Buffer; type: string }>();
  const assetDir = join(dir, 'assets');
  if (existsSync(assetDir)) {
    for (const name of readdirSync(assetDir)) {
      const type = TYPES[extname(name)];
      if (type) assets.set(name, { body: readFileSync(join(assetDir, name)), type });
    }
  }
  return { index: readFileSync(indexFile), assets };
}

export function isConsolePage(path: string): boolean {
  return path === '/' || PAGE_PREFIXES.some((p) => path === p || path.startsWith(`${p}/`));
}

/**
 * Answers a request no route matched when it is for the console: a page (index.html) or a file
 * of the bundle. Not routes of the route table, on purpose: that table is the API (every entry
 * with its auth, permission and audit), and the bundle is public, static and the same for all.
 * Null when the request is not the console's; the caller answers 404.
 */
export function consoleFallback(dir = DIST): (request: FastifyRequest, reply: FastifyReply) => FastifyReply | null {
  const bundle = loadBundle(dir);
  return (request, reply) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') return null;
    const path = request.url.split('?', 1)[0] ?? '';
    if (path.startsWith('/assets/')) {
      const asset = bundle?.assets.get(path.slice('/assets/'.length));
      if (!asset) return null;
      // File names carry a content hash (Vite): a changed file is a new name.
      return reply.code(200).header('cache-control', 'public, max-age=31536000, immutable').type(asset.type).send(asset.body);
    }
    if (!isConsolePage(path)) return null;
    if (!bundle) {
      return sendProblem(reply, request, new AppError('unavailable', 'the admin console is not built: `npm start` or `npm run build` builds it'));
    }
    // The page is small and names the current bundle: never cached, so a deploy takes at once.
    return reply.code(200).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(bundle.index);
  };
}
