import { describe, expect, it } from 'vitest';
import { hashPassword, passwordProblem, PASSWORD_MAX, PASSWORD_MIN, verifyPassword } from './index.js';

describe('password policy', () => {
  it('has the documented bounds', () => {
    expect(PASSWORD_MIN).toBe(12);
    expect(PASSWORD_MAX).toBe(128);
  });

  it.each([
    ['11 characters', 'k7#Rmq2!vZp', 'use at least 12 characters'],
    ['empty', '', 'use at least 12 characters'],
    ['129 characters', `${'k7#Rmq2!vZpX'.repeat(10)}abcdefghi`, 'use at most 128 characters'],
    ['a common password padded with digits', 'password1234', 'this password is too common'],
    ['a keyboard walk', 'qwertyuiop123', 'this password is too common'],
    ['a common password padded on both sides', '!!!iloveyou2024!!!', 'this password is too common'],
    ['a common password in capitals', 'PASSWORD1234', 'this password is too common'],
    ['one repeated character', 'aaaaaaaaaaaaaaaa', 'this password is too simple'],
    ['a short unit repeated', 'abcabcabcabc', 'this password is too simple'],
    ['a common word repeated', 'dragondragon', 'this password is too simple'],
  ])('refuses %s', (_label, pw, problem) => {
    expect(passwordProblem(pw)).toBe(problem);
  });

  it.each([
    ['a 12-character random string', 'k7#Rmq2!vZpX'],
    ['exactly 128 characters', 'k7#Rmq2!vZpX'.repeat(10).slice(0, 120) + 'abcdefgh'],
    ['a passphrase', 'correct horse battery staple'],
    ['a long unit repeated twice', 'vZp7kq!vZp7kq!'],
  ])('accepts %s', (_label, pw) => {
    expect(passwordProblem(pw)).toBeNull();
  });

  it('counts code points, not UTF-16 units', () => {
    // 11 emoji are 22 UTF-16 units but 11 characters: still too short.
    expect(passwordProblem('🔒'.repeat(5) + '🦊🐙🐢🦉🐝🌵')).toBe('use at least 12 characters');
    expect(passwordProblem('🔒🦊🐙🐢🦉🐝🌵🍄🌊🔥⚡🎲')).toBeNull();
  });

  it('hashes with argon2id and verifies only the right password', async () => {
    const stored = await hashPassword('correct horse battery staple');
    expect(stored).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(await verifyPassword(stored, 'correct horse battery staple')).toBe(true);
    expect(await verifyPassword(stored, 'correct horse battery stapl')).toBe(false);
    expect(await verifyPassword('not-a-hash', 'anything')).toBe(false);
  });
});
