// `npm run build`: compile src/ to dist/ (JavaScript, declarations, source maps) and copy the
// files the code reads at run time beside the modules that read them (SQL migrations, the
// common-password list), so dist/ runs with plain `node` and without tsx.
import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, extname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const dist = join(root, 'dist');

rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });

const ASSETS = new Set(['.sql', '.txt']);
function copyAssets(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) copyAssets(path);
    else if (ASSETS.has(extname(name))) cpSync(path, join(dist, relative(src, path)));
  }
}
copyAssets(src);
process.stdout.write(`built ${relative(root, dist)}/\n`);
