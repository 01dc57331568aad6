import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSshPublicKey, SshKeyError } from './parse.ts';

/** SSH wire format: each field a uint32 length and its bytes. */
function sshString(...fields: (string | Buffer)[]): Buffer {
  return Buffer.concat(
    fields.flatMap((field) => {
      const bytes = typeof field === 'string' ? Buffer.from(field, 'latin1') : field;
      const length = Buffer.alloc(4);
      length.writeUInt32BE(bytes.length);
      return [length, bytes];
    }),
  );
}

/** An SSH mpint: big-endian, with a leading zero byte when the top bit is set. */
function mpint(bytes: Buffer): Buffer {
  return (bytes[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
}

/** The `id_*.pub` line of a public key made by node:crypto, so the tests do not depend on ssh-keygen. */
function publicKeyLine(key: KeyObject, comment = 'test@fleetgate'): string {
  const jwk = key.export({ format: 'jwk' });
  const b = (text: string | undefined) => Buffer.from(text!, 'base64url');
  let blob: Buffer;
  if (jwk.kty === 'OKP') blob = sshString('ssh-ed25519', b(jwk.x));
  else if (jwk.kty === 'RSA') blob = sshString('ssh-rsa', mpint(b(jwk.e)), mpint(b(jwk.n)));
  else
    blob = sshString(
      'ecdsa-sha2-nistp256',
      'nistp256',
      Buffer.concat([Buffer.from([4]), b(jwk.x), b(jwk.y)]),
    );
  const algorithm = jwk.kty === 'OKP' ? 'ssh-ed25519' : jwk.kty === 'RSA' ? 'ssh-rsa' : 'ecdsa-sha2-nistp256';
  return `${algorithm} ${blob.toString('base64')} ${comment}`;
}

const ed25519 = publicKeyLine(generateKeyPairSync('ed25519').publicKey);
const rsa2048 = publicKeyLine(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey);
const rsa1024 = publicKeyLine(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey);
const ecdsa256 = publicKeyLine(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);

describe('parseSshPublicKey', () => {
  it('accepts an ed25519 key and keeps its comment apart', () => {
    const key = parseSshPublicKey(`  ${ed25519.replace('test@fleetgate', 'alice laptop')}\n`);
    expect(key.algorithm).toBe('ssh-ed25519');
    expect(key.publicKey).toBe(ed25519.split(' ').slice(0, 2).join(' '));
    expect(key.comment).toBe('alice laptop');
    expect(key.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it('accepts an RSA key of 2048 bits and refuses one of 1024', () => {
    expect(parseSshPublicKey(rsa2048).algorithm).toBe('ssh-rsa');
    expect(() => parseSshPublicKey(rsa1024)).toThrow(SshKeyError);
    expect(() => parseSshPublicKey(rsa1024)).toThrow(/2048/);
  });

  it('accepts an ECDSA P-256 key', () => {
    expect(parseSshPublicKey(ecdsa256).algorithm).toBe('ecdsa-sha2-nistp256');
  });

  it('gives the same key the same fingerprint, whatever its comment', () => {
    const [type, data] = ed25519.split(' ');
    expect(parseSshPublicKey(`${type} ${data}`).fingerprint).toBe(parseSshPublicKey(ed25519).fingerprint);
    expect(parseSshPublicKey(ed25519).fingerprint).not.toBe(parseSshPublicKey(ecdsa256).fingerprint);
  });

  it('refuses what is not one public key line, with a reason', () => {
    const [, edData] = ed25519.split(' ');
    const [, rsaData] = rsa2048.split(' ');
    const cases: [string, RegExp][] = [
      ['', /expected/],
      ['ssh-ed25519', /expected/],
      [`ssh-dss ${edData}`, /unsupported key type/],
      [`from="10.0.0.1" ssh-ed25519 ${edData}`, /unsupported key type/],
      ['ssh-ed25519 not*base64!', /base64/],
      [`ssh-ed25519 ${rsaData}`, /does not match its type/],
      [`ssh-ed25519 ${edData!.slice(0, -8)}`, /truncated|32 bytes|base64/],
      [`ssh-ed25519 ${sshString('ssh-ed25519', Buffer.alloc(16)).toString('base64')}`, /32 bytes/],
      [
        `ecdsa-sha2-nistp256 ${sshString('ecdsa-sha2-nistp256', 'nistp384', Buffer.from([4, 1, 2])).toString('base64')}`,
        /ECDSA/,
      ],
      [`ssh-rsa ${sshString('ssh-rsa', Buffer.from([1, 0, 1])).toString('base64')}`, /incomplete/],
      [`ssh-----BEGIN OPENSSH PRIVATE KEY-----`, /expected|unsupported/],
    ];
    for (const [line, reason] of cases) {
      expect(() => parseSshPublicKey(line), line).toThrow(SshKeyError);
      expect(() => parseSshPublicKey(line), line).toThrow(reason);
    }
  });

  it('never fails on hostile input with anything but SshKeyError', () => {
    const types = [
      'ssh-ed25519',
      'ssh-rsa',
      'ecdsa-sha2-nistp256',
      'ecdsa-sha2-nistp521',
      'sk-ssh-ed25519@openssh.com',
    ];
    const line = fc.oneof(
      fc.string(),
      fc
        .tuple(fc.constantFrom(...types), fc.uint8Array({ maxLength: 600 }))
        .map(([type, bytes]) => `${type} ${Buffer.from(bytes).toString('base64')}`),
      fc
        .tuple(fc.constantFrom(...types), fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 4 }))
        .map(
          ([type, fields]) =>
            `${type} ${sshString(type, ...fields.map((f) => Buffer.from(f))).toString('base64')}`,
        ),
    );
    fc.assert(
      fc.property(line, (text) => {
        try {
          parseSshPublicKey(text);
        } catch (err) {
          if (!(err instanceof SshKeyError)) throw err;
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('fingerprints match ssh-keygen -l', () => {
  let tmp: string;

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-sshkey-'));
  });
  afterAll(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** What `ssh-keygen -lf` prints as the fingerprint of a .pub file. */
  function keygenFingerprint(pubFile: string): string {
    return execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', pubFile], { encoding: 'utf8' }).split(
      ' ',
    )[1]!;
  }

  it('for keys made by ssh-keygen (Debian package openssh-client) and keys made by node:crypto', () => {
    const made: string[] = [];
    for (const [type, bits] of [
      ['ed25519', []],
      ['rsa', ['-b', '2048']],
      ['ecdsa', ['-b', '256']],
    ] as const) {
      const file = path.join(tmp, `id_${type}`);
      execFileSync('ssh-keygen', ['-q', '-t', type, ...bits, '-N', '', '-C', `${type} key`, '-f', file]);
      made.push(`${file}.pub`);
    }
    for (const [name, line] of Object.entries({ ed25519, rsa2048, ecdsa256 })) {
      const file = path.join(tmp, `node_${name}.pub`);
      fs.writeFileSync(file, `${line}\n`);
      made.push(file);
    }
    for (const file of made) {
      const parsed = parseSshPublicKey(fs.readFileSync(file, 'utf8'));
      expect(parsed.fingerprint, file).toBe(keygenFingerprint(file));
    }
  });
});
