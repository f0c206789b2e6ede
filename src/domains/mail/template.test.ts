import { describe, expect, it } from 'vitest';
import { quotedLine, renderHtml } from './template.js';

const ORIGIN = 'https://palisade.test';

function bodyOf(html: string): string {
  return /<body[^>]*>\n([\s\S]*)\n<\/body>/.exec(html)?.[1] ?? '';
}

describe('the HTML part of a mail', () => {
  it('makes paragraphs of blank-line separated blocks and keeps the lines inside a block', () => {
    expect(bodyOf(renderHtml('First line.\nSecond line.\n\nAnother paragraph.', ORIGIN))).toBe(
      '<p>First line.<br>\nSecond line.</p>\n<p>Another paragraph.</p>',
    );
  });

  it('links our own pages, the token fragment included, and leaves a sentence\'s full stop outside the link', () => {
    const body = bodyOf(renderHtml(`Reset: ${ORIGIN}/reset-password#token=pal_pwr_abc-_1\nReview it at ${ORIGIN}.`, ORIGIN));
    expect(body).toBe(
      `<p>Reset: <a href="${ORIGIN}/reset-password#token=pal_pwr_abc-_1">${ORIGIN}/reset-password#token=pal_pwr_abc-_1</a><br>\n` +
        `Review it at <a href="${ORIGIN}">${ORIGIN}</a>.</p>`,
    );
  });

  it('never links another site, nor a host that only starts like ours', () => {
    const body = bodyOf(renderHtml(`See https://evil.test/x and ${ORIGIN}.evil.test/x and ${ORIGIN}@evil.test`, ORIGIN));
    expect(body).not.toContain('<a ');
    expect(body).toContain('https://evil.test/x');
  });

  it('escapes everything, and never links what a user wrote, even a link to us', () => {
    const text = [
      'A passkey was added.',
      quotedLine('Name given to the passkey', `<script>alert(1)</script> ${ORIGIN}/x "quoted" & more`),
      quotedLine('By a browser describing itself as', `\u201D${ORIGIN}/phish <img src=x onerror=alert(1)>`),
    ].join('\n');
    const body = bodyOf(renderHtml(text, ORIGIN));
    expect(body).not.toContain('<script');
    expect(body).not.toContain('<img');
    expect(body).not.toContain('<a ');
    expect(body).toContain('\u201C&lt;script&gt;alert(1)&lt;/script&gt; https://palisade.test/x &#39;quoted&#39; &amp; more\u201D');
    expect(body).toContain('\u201C&#39;https://palisade.test/phish &lt;img src=x onerror=alert(1)&gt;\u201D');
  });

  it('escapes an attribute-breaking character inside one of our links', () => {
    const body = bodyOf(renderHtml(`${ORIGIN}/a"onmouseover="x`, ORIGIN));
    expect(body).toBe(`<p><a href="${ORIGIN}/a&quot;onmouseover=&quot;x">${ORIGIN}/a&quot;onmouseover=&quot;x</a></p>`);
  });
});
