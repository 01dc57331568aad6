import { createPrivateKey, type JsonWebKey, randomBytes, randomFillSync, sign } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createLocalJWKSet, exportJWK, generateKeyPair, type JWK, jwtVerify } from 'jose';
import { AppError } from '../errors/index.ts';

/**
 * Device tokens: short-lived JWTs a device gets for a signed auth request and sends as `Bearer`. Signed with
 * Ed25519 keys kept in `<data dir>/keys/device-tokens.json` (mode 0600); verified through the key set, so a
 * rotation keeps tokens signed by the previous key valid until they expire.
 *
 * A token says who the device is; whether the device may still act (not decommissioned, credentials not
 * revoked since `issuedAtMs`) is checked against the database by the caller on every request.
 */
export interface DeviceTokens {
  issue(device: { id: number; uuid: string; orgId: number }): Promise<{ token: string; expiresAt: number }>;
  /** The claims of a valid token; throws `unauthorized` for anything else. */
  verify(token: string): Promise<DeviceTokenClaims>;
  /** Signs new tokens with a fresh key; older keys keep verifying. */
  rotate(): Promise<void>;
  /** The public keys, for whoever else verifies device tokens. */
  publicKeys(): { keys: JWK[] };
}

export interface DeviceTokenClaims {
  deviceId: number;
  uuid: string;
  orgId: number;
  /** Token id, for audit. */
  jti: string;
  /** Issue time in milliseconds (`iat` has only seconds, too coarse against a revocation in the same second). */
  issuedAtMs: number;
}

interface KeyFile {
  /** Newest first: the first key signs. */
  keys: { kid: string; createdAt: number; privateJwk: JWK }[];
}

const ALGORITHM = 'EdDSA';
const ISSUER = 'fleetgate';
const AUDIENCE = 'fleetgate-device';
/** Verification keys kept after a rotation: enough for any token still alive. */
const KEYS_KEPT = 3;

export async function openDeviceTokens(options: {
  dataDir: string;
  ttlSeconds: number;
}): Promise<DeviceTokens> {
  const file = path.join(options.dataDir, 'keys', 'device-tokens.json');
  let stored = readKeyFile(file) ?? (await saveKeyFile(file, { keys: [await newKey()] }));
  let signing = signerOf(stored.keys[0]!);
  let keySet = createLocalJWKSet(publicSet(stored));

  return {
    async issue(device) {
      const now = Date.now();
      const expiresAt = now + options.ttlSeconds * 1000;
      const token = signing.sign({
        fg_did: device.id,
        fg_org: device.orgId,
        fg_iat: now,
        iss: ISSUER,
        aud: AUDIENCE,
        sub: device.uuid,
        jti: tokenId(),
        iat: Math.floor(now / 1000),
        exp: Math.floor(expiresAt / 1000),
      });
      return { token, expiresAt };
    },

    async verify(token) {
      try {
        const { payload } = await jwtVerify(token, keySet, {
          issuer: ISSUER,
          audience: AUDIENCE,
          algorithms: [ALGORITHM],
        });
        const { sub, jti, fg_did, fg_org, fg_iat } = payload;
        if (
          typeof sub !== 'string' ||
          typeof jti !== 'string' ||
          typeof fg_did !== 'number' ||
          typeof fg_org !== 'number' ||
          typeof fg_iat !== 'number'
        )
          throw new Error('claims missing');
        return { deviceId: fg_did, uuid: sub, orgId: fg_org, jti, issuedAtMs: fg_iat };
      } catch {
        throw new AppError('unauthorized', 'the device token is invalid or expired: send a new auth request');
      }
    },

    async rotate() {
      stored = await saveKeyFile(file, { keys: [await newKey(), ...stored.keys].slice(0, KEYS_KEPT) });
      signing = signerOf(stored.keys[0]!);
      keySet = createLocalJWKSet(publicSet(stored));
    },

    publicKeys: () => publicSet(stored),
  };
}

/**
 * Signs compact JWS (RFC 7515) with a key of the file: EdDSA over `base64url(header).base64url(payload)`,
 * the same bytes jose's `SignJWT` makes. node:crypto signs synchronously in this thread; jose 6 signs through
 * WebCrypto, whose per-call job set-up cost more than the Ed25519 signature itself (issue 3's benchmark).
 * Tokens are still verified by jose, through the key set.
 */
function signerOf(key: KeyFile['keys'][number]): { sign(claims: Record<string, unknown>): string } {
  const privateKey = createPrivateKey({ key: key.privateJwk as JsonWebKey, format: 'jwk' });
  const header = base64url(JSON.stringify({ alg: ALGORITHM, kid: key.kid, typ: 'JWT' }));
  return {
    sign(claims) {
      const input = `${header}.${base64url(JSON.stringify(claims))}`;
      return `${input}.${sign(null, Buffer.from(input), privateKey).toString('base64url')}`;
    },
  };
}

/** Token ids drawn per `randomFillSync` call: one call into OpenSSL per 256 tokens instead of one each. */
const TOKEN_IDS_PER_FILL = 256;
const TOKEN_ID_BYTES = 12;
const tokenIdPool = Buffer.alloc(TOKEN_IDS_PER_FILL * TOKEN_ID_BYTES);
let tokenIdOffset = tokenIdPool.length;

/**
 * 12 random bytes, hex: a token's `jti`. From the same CSPRNG as `randomBytes`, filled ahead in a block that
 * only this function reads and that each id is cut from once.
 */
function tokenId(): string {
  if (tokenIdOffset === tokenIdPool.length) {
    randomFillSync(tokenIdPool);
    tokenIdOffset = 0;
  }
  const id = tokenIdPool.toString('hex', tokenIdOffset, tokenIdOffset + TOKEN_ID_BYTES);
  tokenIdOffset += TOKEN_ID_BYTES;
  return id;
}

const base64url = (text: string) => Buffer.from(text).toString('base64url');

async function newKey(): Promise<KeyFile['keys'][number]> {
  const { privateKey } = await generateKeyPair(ALGORITHM, { crv: 'Ed25519', extractable: true });
  return {
    kid: randomBytes(8).toString('hex'),
    createdAt: Date.now(),
    privateJwk: await exportJWK(privateKey),
  };
}

function publicSet(stored: KeyFile): { keys: JWK[] } {
  return {
    keys: stored.keys.map(({ kid, privateJwk: { kty, crv, x } }) => ({
      kty,
      crv,
      x,
      kid,
      alg: ALGORITHM,
      use: 'sig',
    })),
  } as { keys: JWK[] };
}

function readKeyFile(file: string): KeyFile | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const parsed = JSON.parse(text) as KeyFile;
  if (!Array.isArray(parsed.keys) || parsed.keys.length === 0)
    throw new Error(`${file} holds no device token keys: move it away and restart to make new ones`);
  return parsed;
}

/** Writes the key file atomically (temporary file, then rename), readable by the owner only. */
async function saveKeyFile(file: string, content: KeyFile): Promise<KeyFile> {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(temporary, file);
  return content;
}
