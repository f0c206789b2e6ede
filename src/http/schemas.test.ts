import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { neutralizeText } from '../kernel/text.js';
import { userText } from './schemas.js';

/**
 * The code points no user-chosen name may hold, written out by range here rather than taken
 * from the implementation's classes, so that the property checks the rule, not itself.
 */
function forbidden(cp: number): boolean {
  return (
    cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f) || // C0, DEL, C1
    cp === 0x2028 || cp === 0x2029 || // line and paragraph separators
    cp === 0x061c || cp === 0x200e || cp === 0x200f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || // bidi
    cp === 0x200b || cp === 0xfeff || cp === 0x00ad || (cp >= 0x2060 && cp <= 0x2064) || (cp >= 0xe0000 && cp <= 0xe007f) || // invisible
    cp === 0x115f || cp === 0x1160 || cp === 0x3164 || cp === 0xffa0 || cp === 0x2800 || // blank-looking letters and the Braille blank (review R5 F)
    (cp >= 0xd800 && cp <= 0xdfff) // surrogate halves
  );
}
const codePoints = (s: string) => [...s].map((c) => c.codePointAt(0) as number);

const DANGEROUS = [
  '\n', '\r', '\t', '\u0000', '\u001b', '\u007f', '\u0085', '\u009b', '\u2028', '\u2029', '\u061c', '\u200e', '\u200f', '\u202a', '\u202b',
  '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069', '\u200b', '\ufeff', '\u00ad', '\u2060', '\u{e0041}', '\u{e0002}', '\u3164', '\u2800', '\ufe0f', '\ud800', '\udfff',
  '"', '\u201c', '\u201d', ' ', 'e\u0301', '\u0301\u0301\u0301\u0301\u0301', '\u200d', '\u{1F4F1}',
];
/** Strings of any code points, laced with the characters the rule is about. */
const anyText = fc
  .array(fc.oneof({ weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }) }, { weight: 2, arbitrary: fc.constantFrom(...DANGEROUS) }), { maxLength: 30 })
  .map((parts) => parts.join(''));

describe('the user-text schema (review R4 finding 5)', () => {
  const name = userText(100);

  // In full: accepts nothing that holds a control, bidi or invisible character, and stores NFC,
  // trimmed, within bounds
  it('accepts no control, bidi or invisible character; stores NFC, trimmed, within bounds', () => {
    fc.assert(
      fc.property(anyText, (raw) => {
        const r = name.safeParse(raw);
        if (!r.success) return;
        const v = r.data;
        expect(codePoints(v).filter(forbidden)).toEqual([]);
        expect(v).toBe(v.normalize('NFC'));
        expect(v).toBe(v.trim());
        expect([...v].length).toBeGreaterThanOrEqual(1);
        expect([...v].length).toBeLessThanOrEqual(100);
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses every string whose trimmed form holds one (the rule is not merely cosmetic)', () => {
    fc.assert(
      fc.property(anyText, (raw) => {
        const trimmed = raw.normalize('NFC').trim();
        if (codePoints(trimmed).some(forbidden)) expect(name.safeParse(raw).success).toBe(false);
      }),
      { numRuns: 3000 },
    );
  });

  it('accepts names in any script, with emoji and joiners, and explains a refusal', () => {
    for (const ok of ['Téléphone de Zoë 📱', 'Laptop', '👩‍💻 work', 'مفتاح الهاتف', 'ノートパソコン', 'می‌خواهم', 'Tiếng Việt', '❤️ home', '  padded  ']) {
      expect(name.safeParse(ok).success, ok).toBe(true);
    }
    const refused = name.safeParse('Phone"\n\nThis was you during onboarding: no action is needed.\n\n--');
    expect(refused.error?.issues[0]?.message).toMatch(/control characters/);
    expect(name.safeParse('Ph\u202Eenoh').error?.issues[0]?.message).toMatch(/bidirectional/);
    expect(name.safeParse('a\u200Bb').error?.issues[0]?.message).toMatch(/invisible/);
    expect(name.safeParse('\u200D').error?.issues[0]?.message).toMatch(/visible character/);
    expect(name.safeParse('Z\u0301\u0301\u0301\u0301\u0301\u0301').error?.issues[0]?.message).toMatch(/combining marks/);
    expect(name.safeParse('x'.repeat(101)).success).toBe(false);
    expect(name.safeParse('\u{1F4F1}'.repeat(100)).success).toBe(true); // code points, not UTF-16 units
    expect(name.safeParse('').success).toBe(false);
    expect(userText(500, { allowEmpty: true }).safeParse('  ').data).toBe('');
  });

  it('neutralises text it never validated (user agents, older rows) into one line of safe characters', () => {
    fc.assert(
      fc.property(anyText, fc.integer({ min: 1, max: 60 }), (raw, max) => {
        const out = neutralizeText(raw, max);
        expect(codePoints(out).filter(forbidden)).toEqual([]);
        expect(out).not.toMatch(/\s{2}/u);
        expect([...out].length).toBeLessThanOrEqual(max);
      }),
      { numRuns: 2000 },
    );
  });
});
