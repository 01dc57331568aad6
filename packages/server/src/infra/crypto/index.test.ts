import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hashPassword, randomPassword, randomToken, safeEqual, sha256Hex, verifyPassword } from './index.ts';

describe('password hashing', () => {
  it('verifies the password it hashed and refuses any other', async () => {
    const stored = await hashPassword('correct horse battery');
    expect(stored).toMatch(/^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/);
    expect(stored).not.toContain('correct horse battery');
    expect(await verifyPassword('correct horse battery', stored)).toBe(true);
    expect(await verifyPassword('correct horse batterY', stored)).toBe(false);
    expect(await verifyPassword('correct horse battery ', stored)).toBe(false);
    expect(await verifyPassword('', stored)).toBe(false);
  });

  it('salts every hash, so equal passwords hash differently', async () => {
    const [a, b] = await Promise.all([hashPassword('same password'), hashPassword('same password')]);
    expect(a).not.toBe(b);
    expect(await verifyPassword('same password', a)).toBe(true);
    expect(await verifyPassword('same password', b)).toBe(true);
  });

  it('handles passwords beyond ASCII', async () => {
    const stored = await hashPassword('pässwörd 🔑 パスワード');
    expect(await verifyPassword('pässwörd 🔑 パスワード', stored)).toBe(true);
    expect(await verifyPassword('passwort 🔑 パスワード', stored)).toBe(false);
  });

  it('answers false, without throwing, for a stored value it does not recognise', async () => {
    for (const stored of [
      '',
      'plain text',
      'bcrypt$2b$10$abc',
      'scrypt$16384$8$1$',
      'scrypt$16384$8$1$c2FsdA',
    ]) {
      expect(await verifyPassword('anything', stored), stored).toBe(false);
    }
  });
});

describe('safeEqual', () => {
  it('is true exactly when the strings are equal, whatever their lengths', () => {
    expect(safeEqual('', '')).toBe(true);
    expect(safeEqual('token', 'token')).toBe(true);
    expect(safeEqual('token', 'Token')).toBe(false);
    expect(safeEqual('token', 'token-but-longer')).toBe(false);
    expect(safeEqual('', 'x')).toBe(false);
    fc.assert(fc.property(fc.string(), fc.string(), (a, b) => safeEqual(a, b) === (a === b)));
  });
});

describe('tokens', () => {
  it('sha256Hex is the standard SHA-256 in hex', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex(Buffer.from('abc'))).toBe(sha256Hex('abc'));
  });

  it('randomToken carries its prefix and 256 random bits', () => {
    const token = randomToken('fgk_');
    expect(token).toMatch(/^fgk_[A-Za-z0-9_-]{43}$/);
    expect(randomToken()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(new Set(Array.from({ length: 100 }, () => randomToken())).size).toBe(100);
  });

  it('randomPassword uses only unambiguous characters', () => {
    for (let i = 0; i < 50; i++) {
      const password = randomPassword();
      expect(password).toHaveLength(20);
      expect(password).toMatch(/^[a-km-zA-HJ-NP-Z2-9]+$/);
    }
    expect(randomPassword(8)).toHaveLength(8);
  });
});
