import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  addSecretKey,
  keysFromEnv,
  loadSecretKeyRing,
  newSecretKey,
  SealedValueError,
  SecretKeyError,
  secretKeyRing,
  secretsKeyFile,
} from './index.ts';

const dirs: string[] = [];
const tempDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-secrets-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

const KEY_A = Buffer.alloc(32, 1);
const KEY_B = Buffer.alloc(32, 2);

describe('sealed values', () => {
  it('open to what was sealed, and two seals of one value differ (a fresh nonce each)', () => {
    const ring = secretKeyRing([KEY_A], 'test');
    const first = ring.seal('s3cr3t ünïcode', 'fleet-variable:1:TOKEN');
    const second = ring.seal('s3cr3t ünïcode', 'fleet-variable:1:TOKEN');
    expect(first).toMatch(new RegExp(`^v1:${ring.currentKeyId}:[A-Za-z0-9+/=]+$`));
    expect(first).not.toContain('s3cr3t');
    expect(first).not.toBe(second);
    expect(ring.open(first, 'fleet-variable:1:TOKEN')).toBe('s3cr3t ünïcode');
    expect(ring.open(ring.seal('', 'c'), 'c')).toBe('');
  });

  it("refuse to open as another variable's value, under another key, or altered", () => {
    const ring = secretKeyRing([KEY_A], 'test');
    const sealed = ring.seal('value', 'device-variable:7:TOKEN');
    expect(() => ring.open(sealed, 'device-variable:8:TOKEN')).toThrow(SealedValueError);
    expect(() => ring.open(sealed, 'device-variable:7:OTHER')).toThrow(SealedValueError);
    expect(() => secretKeyRing([KEY_B], 'other').open(sealed, 'device-variable:7:TOKEN')).toThrow(
      /sealed with key [0-9a-f]{16}, which other does not hold/,
    );
    const body = Buffer.from(sealed.split(':')[2]!, 'base64');
    body[14]! ^= 1;
    const altered = `v1:${ring.currentKeyId}:${body.toString('base64')}`;
    expect(() => ring.open(altered, 'device-variable:7:TOKEN')).toThrow(SealedValueError);
    expect(() => ring.open('plain text', 'device-variable:7:TOKEN')).toThrow(SealedValueError);
  });

  it('are opened by an older key of the ring, and sealed by its first', () => {
    const old = secretKeyRing([KEY_A], 'test');
    const sealedOld = old.seal('old', 'c');
    const rotated = secretKeyRing([KEY_B, KEY_A], 'test');
    expect(rotated.open(sealedOld, 'c')).toBe('old');
    expect(rotated.keyIdOf(rotated.seal('new', 'c'))).toBe(rotated.currentKeyId);
    expect(rotated.currentKeyId).not.toBe(old.currentKeyId);
  });
});

describe('the key ring', () => {
  it('is made in <data dir>/keys/secrets.json, readable by its owner only, and read back the same', () => {
    const dir = tempDir();
    expect(loadSecretKeyRing({ dataDir: dir })).toBeUndefined();
    const made = addSecretKey(dir);
    const file = secretsKeyFile(dir);
    expect(file).toBe(path.join(dir, 'keys', 'secrets.json'));
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const read = loadSecretKeyRing({ dataDir: dir })!;
    expect(read.open(made.seal('x', 'c'), 'c')).toBe('x');
    const rotated = addSecretKey(dir);
    expect(rotated.keyIds).toEqual([rotated.currentKeyId, made.currentKeyId]);
  });

  it('comes from FLEETGATE_SECRETS_KEY when set (the file is not read), and refuses keys of the wrong size', () => {
    const dir = tempDir();
    addSecretKey(dir);
    const key = newSecretKey();
    const ring = loadSecretKeyRing({ dataDir: dir, envKeys: key })!;
    expect(ring.source).toBe('FLEETGATE_SECRETS_KEY');
    expect(ring.keyIds).toHaveLength(1);
    expect(() => keysFromEnv(Buffer.alloc(16).toString('base64'))).toThrow(SecretKeyError);
  });

  it('refuses a damaged key file with what to do', () => {
    const dir = tempDir();
    addSecretKey(dir);
    const file = secretsKeyFile(dir);
    const content = JSON.parse(fs.readFileSync(file, 'utf8'));
    content.keys[0].key = Buffer.alloc(32, 9).toString('base64');
    fs.writeFileSync(file, JSON.stringify(content));
    expect(() => loadSecretKeyRing({ dataDir: dir })).toThrow(/damaged.*restore the file from the backup/);
    fs.writeFileSync(file, '{"keys":');
    expect(() => loadSecretKeyRing({ dataDir: dir })).toThrow(/not JSON: restore it/);
  });
});
