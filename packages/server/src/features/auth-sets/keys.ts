import { createHash, createPublicKey, type KeyObject, verify } from 'node:crypto';
import type { DeviceKeyType } from '../../db/schema.ts';
import { badRequest } from '../../infra/errors/index.ts';
import { reservedKeyMessage, reservedKeyNames } from '../../infra/http/schemas.ts';

/**
 * The pieces of Mender-style device identity (DESIGN section 5): identity attributes in canonical JSON, the
 * device's public key, and the signature of an auth request. Pure functions, no database.
 */

/** Identity attributes: name → string or list of strings, as the Mender client sends them. */
export type Identity = Record<string, string | string[]>;

/** Limits on identity data: enough for any real identity scheme, small enough to refuse floods. */
export const IDENTITY_MAX_ATTRIBUTES = 32;
export const IDENTITY_MAX_NAME = 128;
export const IDENTITY_MAX_VALUE = 1024;
export const IDENTITY_MAX_LIST = 32;
export const PUBLIC_KEY_MAX_PEM = 8192;

/**
 * `JSON.parse` that refuses an object holding the same key twice (`JSON.parse` silently keeps the last one,
 * so two parsers could read different identities from the same bytes). Throws `bad_request` naming `what`.
 */
export function parseJsonStrict(text: string, what: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw badRequest(`${what} is not valid JSON: ${(error as Error).message}`);
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate !== undefined) throw badRequest(`${what} holds the key ${JSON.stringify(duplicate)} twice`);
  return value;
}

/** The first key found twice in one object of a (valid) JSON text, or undefined. */
function findDuplicateKey(text: string): string | undefined {
  // Each open object keeps the keys seen so far; arrays push null so that `]` pops the right entry.
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.has(key)) return key;
        top.add(key);
      }
      expectKey = false;
      i = j;
    } else if (c === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (c === '[') {
      stack.push(null);
      expectKey = false;
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      expectKey = stack.length > 0 && stack[stack.length - 1] !== null;
    }
  }
  return undefined;
}

/** Checks identity attributes and answers them; throws `bad_request` with the reason. */
export function validateIdentity(value: unknown): Identity {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw badRequest('identity data must be a JSON object such as {"mac":"02:12:61:13:6c:42"}');
  const entries = Object.entries(value);
  if (entries.length === 0) throw badRequest('identity data must hold at least one attribute');
  if (entries.length > IDENTITY_MAX_ATTRIBUTES)
    throw badRequest(`identity data may hold at most ${IDENTITY_MAX_ATTRIBUTES} attributes`);
  const okString = (s: unknown): s is string =>
    typeof s === 'string' && s.length <= IDENTITY_MAX_VALUE && !/[\p{Cc}]/u.test(s);
  for (const [name, v] of entries) {
    if (name.length === 0 || name.length > IDENTITY_MAX_NAME || /[\p{Cc}]/u.test(name))
      throw badRequest(
        `identity attribute names are 1-${IDENTITY_MAX_NAME} characters without control characters`,
      );
    if (reservedKeyNames.has(name)) throw badRequest(`identity attribute ${reservedKeyMessage(name)}`);
    const okList = Array.isArray(v) && v.length > 0 && v.length <= IDENTITY_MAX_LIST && v.every(okString);
    if (!okString(v) && !okList)
      throw badRequest(
        `identity attribute ${JSON.stringify(name)} must be a string or a list of strings (at most ${IDENTITY_MAX_VALUE} characters each, no control characters)`,
      );
  }
  return Object.fromEntries(entries) as Identity;
}

/** Canonical JSON of an identity: keys sorted, no spaces. Its SHA-256 is the identity's hash. */
export function canonicalIdentity(identity: Identity): string {
  const sorted = Object.entries(identity).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify(Object.fromEntries(sorted));
}

export function identityHash(canonical: string): string {
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

/** An identity and its hash, from a JSON text (Mender's `id_data`) or an already parsed object. */
export function identityOf(input: string | unknown): { identity: Identity; canonical: string; hash: string } {
  const value = typeof input === 'string' ? parseJsonStrict(input, 'id_data') : input;
  const identity = validateIdentity(value);
  const canonical = canonicalIdentity(identity);
  return { identity, canonical, hash: identityHash(canonical) };
}

export interface DevicePublicKey {
  key: KeyObject;
  type: DeviceKeyType;
  /** The key re-encoded as PKIX PEM (whatever spacing it came with). */
  pem: string;
  /** SHA-256 of the DER SPKI, hex. */
  hash: string;
}

/** Parsed public keys kept, by their PEM text: enough for every device of a busy server to re-authenticate. */
export const PARSED_KEYS_KEPT = 10_000;

/**
 * Keys parsed before, by the exact PEM text received, most recently used last. Parsing and re-encoding a key
 * costs more than verifying a signature with it, and a device sends the same PEM with every auth request.
 * The entry is a pure function of its text, so nothing ever makes one stale; the bound keeps a flood of
 * distinct keys from growing memory.
 */
const parsedKeys = new Map<string, DevicePublicKey>();

/**
 * Parses a PKIX PEM public key and checks it is a kind devices may use: RSA of at least 2048 bits, ECDSA on
 * P-256 or P-384, or Ed25519. Throws `bad_request` with the reason for anything else. A text parsed before
 * answers the same (frozen) result from a bounded cache.
 */
export function parsePublicKey(pem: unknown): DevicePublicKey {
  if (typeof pem !== 'string' || pem.length === 0)
    throw badRequest('the public key must be a PEM text (-----BEGIN PUBLIC KEY-----)');
  if (pem.length > PUBLIC_KEY_MAX_PEM) throw badRequest('the public key is too long');
  const known = parsedKeys.get(pem);
  if (known) {
    parsedKeys.delete(pem);
    parsedKeys.set(pem, known);
    return known;
  }
  const parsed = Object.freeze(parseNewPublicKey(pem));
  if (parsedKeys.size >= PARSED_KEYS_KEPT) parsedKeys.delete(parsedKeys.keys().next().value!);
  parsedKeys.set(pem, parsed);
  return parsed;
}

function parseNewPublicKey(pem: string): DevicePublicKey {
  if (!pem.includes('-----BEGIN PUBLIC KEY-----'))
    throw badRequest('the public key must be PKIX PEM (-----BEGIN PUBLIC KEY-----)');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw badRequest(`the public key cannot be read: ${(error as Error).message}`);
  }
  const type = keyTypeOf(key);
  const der = key.export({ type: 'spki', format: 'der' });
  return {
    key,
    type,
    pem: key.export({ type: 'spki', format: 'pem' }).toString(),
    hash: createHash('sha256').update(der).digest('hex'),
  };
}

function keyTypeOf(key: KeyObject): DeviceKeyType {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa': {
      const bits = details.modulusLength ?? 0;
      if (bits < 2048) throw badRequest(`RSA keys must have at least 2048 bits (this one has ${bits})`);
      return 'rsa';
    }
    case 'ec':
      if (details.namedCurve === 'prime256v1' || details.namedCurve === 'P-256') return 'ecdsa-p256';
      if (details.namedCurve === 'secp384r1' || details.namedCurve === 'P-384') return 'ecdsa-p384';
      throw badRequest(
        `ECDSA keys must use the P-256 or P-384 curve (not ${details.namedCurve ?? 'unknown'})`,
      );
    case 'ed25519':
      return 'ed25519';
    default:
      throw badRequest(
        `${key.asymmetricKeyType?.toUpperCase() ?? 'this'} keys are not accepted: use RSA (2048 bits or more), ECDSA P-256/P-384 or Ed25519`,
      );
  }
}

/**
 * Verifies Mender's `X-MEN-Signature` over the exact request bytes: RSA PKCS#1 v1.5 and ECDSA (DER) over
 * SHA-256, Ed25519 pure. Never throws: a malformed signature is simply not valid.
 */
export function verifySignature(publicKey: DevicePublicKey, data: Buffer, signature: Buffer): boolean {
  try {
    return verify(publicKey.type === 'ed25519' ? null : 'sha256', data, publicKey.key, signature);
  } catch {
    return false;
  }
}

/** Strict base64 (standard alphabet, padded or not) of at most `max` characters, or undefined. */
export function decodeBase64Strict(text: string | undefined, max = 4096): Buffer | undefined {
  if (!text) return undefined;
  const trimmed = text.trim();
  if (trimmed.length === 0 || trimmed.length > max) return undefined;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) || trimmed.replace(/=+$/, '').length % 4 === 1)
    return undefined;
  return Buffer.from(trimmed, 'base64');
}

/** A readable default name for a device from its identity: a serial or MAC when there is one. */
export function nameFromIdentity(identity: Identity): string {
  const preferred = ['name', 'hostname', 'serial', 'serialnumber', 'serial_number', 'sn', 'mac'];
  const key = preferred.find((k) => k in identity) ?? Object.keys(identity).sort()[0]!;
  const value = identity[key]!;
  const text = Array.isArray(value) ? value[0]! : value;
  const cleaned = text.replace(/[\p{Cc}\p{Cs}]/gu, '').trim();
  return (cleaned || 'device').slice(0, 128);
}
