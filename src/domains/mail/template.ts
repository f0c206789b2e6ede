import { neutralizeText } from '../../kernel/text.js';

/**
 * User text in a mail is data, never prose (review R4 finding 5): every value someone other than
 * us chose — a passkey name, a browser's user agent, a client address — goes on its own line,
 * after a label that says whose words they are, inside typographic quotes. Control, bidi and
 * invisible characters become U+FFFD (the text may predate validation, or was never validated,
 * like a user agent), double-quote look-alikes become apostrophes so the value cannot close its
 * quotes, and it is cut to `max` characters.
 */
export function quotedLine(label: string, value: string, max = 120): string {
  const safe = neutralizeText(value, max).replace(/["\u201C\u201D\u201E\u201F\u00AB\u00BB\u2033\u2036\uFF02]/gu, "'");
  return `  ${label}: \u201C${safe}\u201D`;
}

const ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
}

/** Punctuation that ends a sentence after a link rather than belonging to it. */
const TRAILING = /[.,;:!?)]+$/;

/**
 * One line of our prose: escaped, and our own links (`publicOrigin` followed by a path, query or
 * fragment, or nothing) made anchors. Anything else that looks like a link stays text: a mail
 * from us points only at us.
 */
function proseToHtml(text: string, publicOrigin: string): string {
  let out = '';
  for (const word of text.split(/(\s+)/)) {
    const trail = TRAILING.exec(word)?.[0] ?? '';
    const url = word.slice(0, word.length - trail.length);
    const ours = url.startsWith(publicOrigin) && (url.length === publicOrigin.length || /^[/?#]/.test(url.slice(publicOrigin.length)));
    out += ours ? `<a href="${escapeHtml(url)}">${escapeHtml(url)}</a>${escapeHtml(trail)}` : escapeHtml(word);
  }
  return out;
}

/** A line: text inside quotedLine's quotes is someone else's and is never linked, only escaped. */
function lineToHtml(line: string, publicOrigin: string): string {
  // quotedLine turns every closing-quote look-alike inside the value into an apostrophe, so a
  // quoted segment ends at its own closing quote.
  return line
    .split(/(\u201C[^\u201D]*\u201D)/u)
    .map((part, i) => (i % 2 === 1 ? escapeHtml(part) : proseToHtml(part, publicOrigin)))
    .join('');
}

/**
 * The HTML part of a mail, derived from its text body so that no caller builds HTML: blocks
 * separated by a blank line become paragraphs, lines inside a block are kept, everything is
 * escaped, and only links to `publicOrigin` become anchors.
 */
export function renderHtml(body: string, publicOrigin: string): string {
  const paragraphs = body
    .split(/\n\s*\n/)
    .map((block) => block.split('\n').filter((l) => l.trim() !== ''))
    .filter((lines) => lines.length > 0)
    .map((lines) => `<p>${lines.map((l) => lineToHtml(l.trim(), publicOrigin)).join('<br>\n')}</p>`);
  return (
    '<!doctype html>\n<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"></head>\n' +
    `<body style="font-family:sans-serif;line-height:1.5">\n${paragraphs.join('\n')}\n</body></html>\n`
  );
}
