/**
 * The one rule for text a user chooses to name or label something (passkeys, people, orgs,
 * projects, assets, roles, API keys, webhook endpoints, inbound sources). Such text is shown to
 * other people and to the account owner — in the console, the audit trail, security mails — so
 * it must read as what it is and never change what surrounds it (review R4 finding 5: a passkey
 * name with line breaks rewrote the "sign-in method added" mail; a bidi override reordered it).
 *
 * Accepted text is NFC-normalised and trimmed, holds at least one visible character and at most
 * `max` code points, and none of:
 * - control characters: C0 (tab, line feed, escape, …), DEL, C1, and the line and paragraph
 *   separators U+2028/U+2029 (each breaks a line somewhere);
 * - bidirectional controls: U+061C, U+200E/U+200F, U+202A–U+202E, U+2066–U+2069 (they reorder
 *   the text around them, so a name can display as something else);
 * - other format and default-ignorable characters (zero-width space, word joiner, BOM, soft
 *   hyphen, invisible operators, tag characters, Hangul fillers, interlinear annotations, the
 *   Braille blank, …):
 *   renderers show nothing for them, so they hide text, make a name look blank, or make two
 *   names that look the same differ. The zero-width joiner and non-joiner and the variation
 *   selectors stay allowed: emoji sequences, Persian and Indic spelling and ideographic
 *   variants need them;
 * - surrogate halves and noncharacters, which are not text;
 * - a run of more than four combining marks on one character ("zalgo" text that spills over
 *   the lines above and below; no orthography needs more).
 */

const CONTROL = /[\p{Cc}\u2028\u2029]/u;
const BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;
// U+2800 (Braille pattern blank) is a symbol that renders as nothing (review R5 F: a project
// named with it looked blank, and "Admin\u2800\u2800(verified)" looked like spacing).
// eslint-disable-next-line no-misleading-character-class -- joiners and selectors are matched one code point at a time, on purpose
const HIDDEN = /(?![\u200C\u200D\uFE00-\uFE0F\u{E0100}-\u{E01EF}])[\p{Cf}\p{Default_Ignorable_Code_Point}\p{Cs}\uFDD0-\uFDEF\uFFFE\uFFFF\u2800]/u;
const MARK_PILE = /\p{M}{5,}/u;
const VISIBLE = /[\p{L}\p{N}\p{P}\p{S}]/u;

/** Every character the rule refuses, for display-side neutralising of text that never met it. */
// eslint-disable-next-line no-misleading-character-class -- the same classes as above, combined
const UNSAFE_GLOBAL = new RegExp(`${CONTROL.source}|${BIDI.source}|${HIDDEN.source}`, 'gu');

/** NFC, then trimmed: what a valid name is stored as. */
export function normalizeUserText(raw: string): string {
  return raw.normalize('NFC').trim();
}

/** Why `text` (already normalised) is not an acceptable name, or null when it is. */
export function userTextProblem(text: string, max: number, opts: { allowEmpty?: boolean } = {}): string | null {
  if (text.length === 0) return opts.allowEmpty ? null : 'must not be empty';
  if ([...text].length > max) return `must be at most ${max} characters`;
  if (CONTROL.test(text)) return 'must not contain control characters (line breaks, tabs, escapes)';
  if (BIDI.test(text)) return 'must not contain bidirectional override or isolate characters';
  if (HIDDEN.test(text)) return 'must not contain invisible formatting characters (zero-width spaces, byte-order marks, tags)';
  if (MARK_PILE.test(text)) return 'must not stack more than four combining marks on one character';
  if (!VISIBLE.test(text)) return 'must contain a visible character';
  return null;
}

/**
 * For showing text that was never validated (a user agent, an IP header, a name stored before
 * the rule): line breaks and tabs become spaces, every other refused character U+FFFD, runs of
 * whitespace one space, and the result is cut to `max` code points with an ellipsis. Never used
 * to accept input.
 */
export function neutralizeText(raw: string, max: number): string {
  const cleaned = raw
    .normalize('NFC')
    .replace(/[\t\n\v\f\r\u0085\u2028\u2029]/gu, ' ')
    .replace(UNSAFE_GLOBAL, '\uFFFD')
    .replace(/(\p{M}{4})\p{M}+/gu, '$1')
    .replace(/\s+/gu, ' ')
    .trim();
  const points = [...cleaned];
  return points.length > max ? `${points.slice(0, max - 1).join('')}\u2026` : cleaned;
}
