import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Sealing secret values at rest (secret variables): AES-256-GCM under a key ring. The current key seals; every
 * key of the ring opens what it sealed, found by its id, so a rotation keeps older values (and older backups)
 * readable. A sealed value is `v1:<key id>:<base64 of nonce (12 bytes) | ciphertext | tag (16 bytes)>`, with a
 * fresh random nonce per value. The caller names what the value belongs to (`context`, e.g.
 * `fleet-variable:12:API_TOKEN`): it is authenticated with the value, so a sealed value copied to another row
 * does not open (refused, never garbage).
 *
 * The ring comes from `FLEETGATE_SECRETS_KEY` (base64 keys of 32 bytes, comma separated, the first seals) or,
 * when that is unset, from the key file `<data dir>/keys/secrets.json` (mode 0600), made on first start.
 */
export interface SecretKeyRing {
  /** Id of the key that seals: 16 hex characters of the key's SHA-256. */
  readonly currentKeyId: string;
  /** Ids of every key of the ring, the current one first. */
  readonly keyIds: readonly string[];
  /** Where the keys come from, for messages: the key file's path or `FLEETGATE_SECRETS_KEY`. */
  readonly source: string;
  seal(value: string, context: string): string;
  /** The value `seal` was given; throws `SealedValueError` for a value of another context, key or format. */
  open(sealed: string, context: string): string;
  /** The id of the key a sealed value was sealed with (undefined when it is not a sealed value). */
  keyIdOf(sealed: string): string | undefined;
}

/** A sealed value that cannot be opened: an unknown key, another variable's value, or damaged bytes. */
export class SealedValueError extends Error {
  override name = 'SealedValueError';
}

/** The key ring could not be read or does not fit the data: the message says what to do. */
export class SecretKeyError extends Error {
  override name = 'SecretKeyError';
}

export const SECRETS_KEY_ENV = 'FLEETGATE_SECRETS_KEY';
const VERSION = 'v1';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

/** `<data dir>/keys/secrets.json`: the key ring, when it is not given by `FLEETGATE_SECRETS_KEY`. */
export function secretsKeyFile(dataDir: string): string {
  return path.join(dataDir, 'keys', 'secrets.json');
}

/** The key file's content: newest first (the first key seals). */
export interface SecretsKeyFile {
  keys: { id: string; createdAt: number; key: string }[];
}

/** 16 hex characters of the key's SHA-256: names the key in sealed values without revealing it. */
export function secretKeyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

/** A new random key, base64 (what `FLEETGATE_SECRETS_KEY` takes). */
export function newSecretKey(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

/** A ring over `keys` (raw 32-byte keys), the first sealing. */
export function secretKeyRing(keys: Buffer[], source: string): SecretKeyRing {
  if (!keys.length) throw new SecretKeyError(`${source} holds no key`);
  const byId = new Map<string, Buffer>();
  for (const key of keys) {
    if (key.length !== KEY_BYTES)
      throw new SecretKeyError(`${source}: a key is ${key.length} bytes, not ${KEY_BYTES}`);
    byId.set(secretKeyId(key), key);
  }
  const currentKeyId = secretKeyId(keys[0]!);
  const current = keys[0]!;
  const parse = (sealed: string) => {
    const [version, keyId, body, extra] = sealed.split(':');
    if (version !== VERSION || !keyId || body === undefined || extra !== undefined) return undefined;
    return { keyId, body };
  };
  return {
    currentKeyId,
    keyIds: [...byId.keys()],
    source,
    seal(value, context) {
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv('aes-256-gcm', current, nonce);
      cipher.setAAD(Buffer.from(context));
      const body = Buffer.concat([nonce, cipher.update(value, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return `${VERSION}:${currentKeyId}:${body.toString('base64')}`;
    },
    open(sealed, context) {
      const parts = parse(sealed);
      if (!parts) throw new SealedValueError('not a sealed value');
      const key = byId.get(parts.keyId);
      if (!key) throw new SealedValueError(`sealed with key ${parts.keyId}, which ${source} does not hold`);
      const body = Buffer.from(parts.body, 'base64');
      if (body.length < NONCE_BYTES + TAG_BYTES) throw new SealedValueError('the sealed value is truncated');
      const decipher = createDecipheriv('aes-256-gcm', key, body.subarray(0, NONCE_BYTES));
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      try {
        return Buffer.concat([
          decipher.update(body.subarray(NONCE_BYTES, body.length - TAG_BYTES)),
          decipher.final(),
        ]).toString('utf8');
      } catch {
        // GCM's tag did not verify: another variable's value, another key's, or altered bytes.
        throw new SealedValueError(`the value sealed with key ${parts.keyId} does not open for ${context}`);
      }
    },
    keyIdOf: (sealed) => parse(sealed)?.keyId,
  };
}

/**
 * A ring that reads its key file again when it meets a value sealed by a key it does not hold (at most once a
 * second): `fleetgate secrets rotate` run beside a running server adds a key to the file and re-seals with it,
 * and the server picks the new key up instead of failing to deliver those values until a restart. A ring from
 * `FLEETGATE_SECRETS_KEY` has nothing to re-read (`reload` answers undefined).
 */
export function reloadingKeyRing(
  initial: SecretKeyRing,
  reload: () => SecretKeyRing | undefined,
): SecretKeyRing {
  let ring = initial;
  let reloadedAt = 0;
  const refreshFor = (sealed: string) => {
    const keyId = ring.keyIdOf(sealed);
    if (!keyId || ring.keyIds.includes(keyId) || Date.now() - reloadedAt < 1000) return;
    reloadedAt = Date.now();
    ring = reload() ?? ring;
  };
  return {
    get currentKeyId() {
      return ring.currentKeyId;
    },
    get keyIds() {
      return ring.keyIds;
    },
    get source() {
      return ring.source;
    },
    seal: (value, context) => ring.seal(value, context),
    open(sealed, context) {
      refreshFor(sealed);
      return ring.open(sealed, context);
    },
    keyIdOf: (sealed) => ring.keyIdOf(sealed),
  };
}

/** Parses `FLEETGATE_SECRETS_KEY`: base64 keys of 32 bytes, comma separated, the first sealing. */
export function keysFromEnv(value: string): Buffer[] {
  return value.split(',').map((part, i) => {
    const text = part.trim();
    const key = Buffer.from(text, 'base64');
    if (!/^[A-Za-z0-9+/]+=*$/.test(text) || key.length !== KEY_BYTES)
      throw new SecretKeyError(
        `${SECRETS_KEY_ENV}: key ${i + 1} is not ${KEY_BYTES} bytes in base64 (make one with \`openssl rand -base64 32\`)`,
      );
    return key;
  });
}

/**
 * The ring given by `envKeys` (`FLEETGATE_SECRETS_KEY`) when set, else read from the key file; undefined when
 * neither exists (a first start: `createSecretKeyFile` makes one).
 */
export function loadSecretKeyRing(options: {
  dataDir: string;
  envKeys?: string | undefined;
}): SecretKeyRing | undefined {
  if (options.envKeys) return secretKeyRing(keysFromEnv(options.envKeys), SECRETS_KEY_ENV);
  const file = secretsKeyFile(options.dataDir);
  const content = readKeyFile(file);
  return content && ringOfFile(content, file);
}

/** Makes the key file with one new key (first start) or puts a new key first (rotation), keeping the others. */
export function addSecretKey(dataDir: string): SecretKeyRing {
  const file = secretsKeyFile(dataDir);
  const key = randomBytes(KEY_BYTES);
  const content: SecretsKeyFile = {
    keys: [
      { id: secretKeyId(key), createdAt: Date.now(), key: key.toString('base64') },
      ...(readKeyFile(file)?.keys ?? []),
    ],
  };
  writeKeyFile(file, content);
  return ringOfFile(content, file);
}

function ringOfFile(content: SecretsKeyFile, file: string): SecretKeyRing {
  const keys = content.keys.map((entry) => {
    const key = Buffer.from(entry.key ?? '', 'base64');
    if (key.length !== KEY_BYTES || secretKeyId(key) !== entry.id)
      throw new SecretKeyError(
        `${file}: key ${entry.id} is damaged (its bytes do not match its id): restore the file from the backup of the data directory`,
      );
    return key;
  });
  return secretKeyRing(keys, file);
}

function readKeyFile(file: string): SecretsKeyFile | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let parsed: SecretsKeyFile;
  try {
    parsed = JSON.parse(text) as SecretsKeyFile;
  } catch {
    throw new SecretKeyError(`${file} is not JSON: restore it from the backup of the data directory`);
  }
  if (!Array.isArray(parsed.keys) || parsed.keys.length === 0)
    throw new SecretKeyError(`${file} holds no key: restore it from the backup of the data directory`);
  return parsed;
}

/** Writes atomically (temporary file, fsync, rename), readable by the owner only. */
function writeKeyFile(file: string, content: SecretsKeyFile): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(temporary, 'w', 0o600);
  try {
    fs.writeSync(fd, `${JSON.stringify(content, null, 2)}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temporary, file);
}
