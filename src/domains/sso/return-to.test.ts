import { describe, expect, it } from 'vitest';
import { safeReturnTo, withParam } from './flow-state.js';

/** Where a sign-in sends the browser back to: this origin only, as the browser will read it. */
describe('the return path of a sign-in', () => {
  it('keeps a path on this origin, normalized, with its query and fragment', () => {
    expect(safeReturnTo('/console?tab=1#keys')).toBe('/console?tab=1#keys');
    expect(safeReturnTo('/a/../b')).toBe('/b');
    expect(withParam('/console?tab=1', 'sso_handover', 'pal_sho_x')).toBe('/console?tab=1&sso_handover=pal_sho_x');
  });

  it('turns anything that a browser would read as another host into /', () => {
    const hostile = [
      '//evil.example', '/\\evil.example', 'https://evil.example/', 'evil.example',
      // Pass a prefix check, then normalize to //evil.example (review 2026-12-06: the handover code went there).
      '/.//evil.example/phish', '/..//evil.example', '/%2e//evil.example', '/%2E%2E//evil.example',
      '/\tevil', '/x\u0000y',
    ];
    for (const value of hostile) {
      expect(safeReturnTo(value), value).toBe('/');
      const out = withParam(value, 'sso_handover', 'pal_sho_x');
      expect(out.startsWith('//') || out.includes('evil.example/'), `${value} -> ${out}`).toBe(false);
      expect(new URL(out, 'https://palisade.test').origin, value).toBe('https://palisade.test');
    }
  });
});
