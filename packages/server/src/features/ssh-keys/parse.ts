import { createHash, createPublicKey } from 'node:crypto';

/** An OpenSSH public key as fleetgate stores it. */
export interface SshPublicKey {
  algorithm: string;
  /** `<algorithm> <base64 blob>`, without the comment. */
  publicKey: string;
  /** `SHA256:<base64, no padding>`, as `ssh-keygen -l` prints it. */
  fingerprint: string;
  comment: string;
}

const supported = new Set([
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
]);

export class SshKeyError extends Error {}

/** Reads the SSH wire format: a sequence of uint32-length-prefixed strings. */
function readStrings(blob: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  while (offset < blob.length) {
    if (offset + 4 > blob.length) throw new SshKeyError('the key data is truncated');
    const len = blob.readUInt32BE(offset);
    offset += 4;
    if (offset + len > blob.length) throw new SshKeyError('the key data is truncated');
    out.push(blob.subarray(offset, offset + len));
    offset += len;
  }
  return out;
}

/**
 * Parses and checks one line of `authorized_keys` / `id_*.pub` format (`<type> <base64> [comment]`, no
 * options). Rejects unknown types, broken encodings, and RSA keys under 2048 bits.
 */
export function parseSshPublicKey(line: string): SshPublicKey {
  const parts = line.trim().split(/\s+/);
  if (parts.length < 2)
    throw new SshKeyError('expected "<type> <base64 key> [comment]", as in ~/.ssh/id_ed25519.pub');
  const [algorithm, base64, ...commentParts] = parts as [string, string, ...string[]];
  if (!supported.has(algorithm)) {
    throw new SshKeyError(
      `unsupported key type ${algorithm.slice(0, 40)}: use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa`,
    );
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64) || base64.length > 16384)
    throw new SshKeyError('the key is not valid base64');
  const blob = Buffer.from(base64, 'base64');
  const fields = readStrings(blob);
  if (fields[0]?.toString('latin1') !== algorithm)
    throw new SshKeyError('the key data does not match its type');
  if (algorithm === 'ssh-ed25519' && fields[1]?.length !== 32)
    throw new SshKeyError('an ed25519 key has 32 bytes');
  if (algorithm === 'ssh-rsa') {
    const [, e, n] = fields;
    if (!e || !n) throw new SshKeyError('the RSA key is incomplete');
    const modulus = n[0] === 0 ? n.subarray(1) : n;
    if (modulus.length * 8 < 2048) throw new SshKeyError('RSA keys must have at least 2048 bits');
    // Let OpenSSL confirm the numbers form a key.
    try {
      createPublicKey({
        key: { kty: 'RSA', n: modulus.toString('base64url'), e: e.toString('base64url') },
        format: 'jwk',
      });
    } catch {
      throw new SshKeyError('the RSA key is not valid');
    }
  }
  if (algorithm.startsWith('ecdsa-sha2-')) {
    const curve = algorithm.slice('ecdsa-sha2-'.length);
    if (fields[1]?.toString('latin1') !== curve || !fields[2] || fields[2][0] !== 4)
      throw new SshKeyError('the ECDSA key is not valid');
  }
  const fingerprint = `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
  return {
    algorithm,
    publicKey: `${algorithm} ${base64}`,
    fingerprint,
    comment: commentParts.join(' ').slice(0, 128),
  };
}
