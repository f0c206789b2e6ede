import { describe, expect, it } from 'vitest';
import { CALLER_PATTERN, cleanMessage, MAX_SECRET_BYTES, NAME_PATTERN, secretProblem } from './rules.js';

describe('credential rules', () => {
  it('accepts identifiers only as names, and colons in caller names too', () => {
    for (const ok of ['a', 'psa', 'connectwise-prod', 'n_able.rmm', 'x'.repeat(64), '0']) expect(NAME_PATTERN.test(ok), ok).toBe(true);
    for (const bad of ['', 'A', 'x'.repeat(65), '-a', 'a-', '.a', 'a.', 'a b', 'a/b', 'caf\u00e9', 'a:b', 'a\n', '<b>']) expect(NAME_PATTERN.test(bad), bad).toBe(false);
    expect(CALLER_PATTERN.test('psa-sync:tenant-42')).toBe(true);
    expect(CALLER_PATTERN.test('psa-sync:')).toBe(false);
  });

  it('bounds a value in UTF-8 bytes and refuses blank and NUL, never quoting it', () => {
    expect(secretProblem('t')).toBeNull();
    expect(secretProblem('x'.repeat(MAX_SECRET_BYTES))).toBeNull();
    expect(secretProblem('-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----\n')).toBeNull();
    expect(secretProblem('emoji \ud83d\ude00 pairs are fine')).toBeNull();
    for (const bad of ['', ' \n\t', 'x'.repeat(MAX_SECRET_BYTES + 1), '\u00e9'.repeat(MAX_SECRET_BYTES / 2 + 1), 'CANARY\u0000', 'CANARY\ud800x', 'CANARY\udfff']) {
      const problem = secretProblem(bad);
      expect(problem, JSON.stringify(bad.slice(0, 10))).not.toBeNull();
      expect(problem).not.toContain('CANARY');
    }
  });

  it('redacts the value from a use message, in its neutralised form too, then cuts and neutralises the message', () => {
    expect(cleanMessage('token tok_123 refused; tok_123 again', 'tok_123')).toBe('token [redacted] refused; [redacted] again');
    expect(cleanMessage('key line1\nline2 rejected', 'line1\nline2')).toBe('key [redacted] rejected');
    expect(cleanMessage('a\u202Eb\nc', 'zzz')).toBe('a\uFFFDb c');
    const long = cleanMessage(`${'x'.repeat(300)}`, 'zzz');
    expect([...long].length).toBe(200);
    expect(cleanMessage('nothing to hide', '')).toBe('nothing to hide');
  });
});
