import { mkdirSync, mkdtempSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error -- a plain .mjs module of bin/ (no declarations): its one function is typed by use here.
import { isCurrentBuild as untyped } from '../../bin/current-build.mjs';

const isCurrentBuild = untyped as (compiled: string, sources: string) => boolean;

/** `npx palisade` runs dist/cli.js only when it is a build of the sources as they are now. */
describe('the compiled CLI is run only when it is current', () => {
  function tree(): { compiled: string; sources: string; nested: string } {
    const root = mkdtempSync(join(tmpdir(), 'palisade-build-'));
    const sources = join(root, 'src');
    mkdirSync(join(sources, 'domains'), { recursive: true });
    const nested = join(sources, 'domains', 'a.ts');
    writeFileSync(nested, 'export {};');
    writeFileSync(join(sources, 'cli.ts'), 'export {};');
    mkdirSync(join(root, 'dist'));
    const compiled = join(root, 'dist', 'cli.js');
    writeFileSync(compiled, '');
    const past = new Date(Date.now() - 60_000);
    for (const f of [nested, join(sources, 'cli.ts')]) utimesSync(f, past, past);
    return { compiled, sources, nested };
  }

  it('is current when no source is newer, stale when one deep in the tree is, absent when not built', () => {
    const t = tree();
    expect(isCurrentBuild(t.compiled, t.sources)).toBe(true);
    const later = new Date(Date.now() + 60_000);
    utimesSync(t.nested, later, later);
    expect(isCurrentBuild(t.compiled, t.sources)).toBe(false);
    expect(isCurrentBuild(join(t.sources, '..', 'dist', 'missing.js'), t.sources)).toBe(false);
  });

  it('counts an unreadable entry (a broken link) as newer: a doubt runs the sources', () => {
    const t = tree();
    symlinkSync(join(t.sources, 'gone.ts'), join(t.sources, 'domains', 'link.ts'));
    expect(isCurrentBuild(t.compiled, t.sources)).toBe(false);
  });
});
