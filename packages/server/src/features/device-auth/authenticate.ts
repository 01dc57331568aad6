import { type CompiledQuery, PostgresAdapter, type SqlBool, sql } from 'kysely';
import type { DevicePrincipal } from '../../infra/access/index.ts';
import { sha256Hex } from '../../infra/crypto/index.ts';
import { BatchedReads, type Db, readNow } from '../../infra/db/index.ts';
import { AppError, rateLimited } from '../../infra/errors/index.ts';
import type { EventBus } from '../../infra/events/index.ts';
import { FailureLimiter, GuessThrottle, sourceKeyOf } from '../../infra/rate-limit/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { DeviceKeyCache } from './credential-cache.ts';

/** A device key's last-used time is written at most this often (in batches: see last-used.ts). */
const LAST_USED_PRECISION_MS = 60 * 1000;
/** Recovery candidates kept at most, server-wide: a flood of made-up credentials cannot fill the disk. */
export const RECOVERY_CANDIDATES_MAX = 10_000;
/** New recovery candidates one source address may add per `RECOVERY_WINDOW_MS`. */
export const RECOVERY_CANDIDATES_PER_SOURCE = 50;
/** The window of `RECOVERY_CANDIDATES_PER_SOURCE`, in milliseconds (10 minutes). */
export const RECOVERY_WINDOW_MS = 10 * 60 * 1000;

/**
 * Refused device keys per (uuid, source network), per source network and per uuid in a window, before the
 * refusals turn into `429` with `Retry-After` (see `failed`).
 */
const DEVICE_GUESS_LIMITS = {
  perPair: 30,
  perSource: 300,
  perIdentity: 300,
  windowMs: 10 * 60 * 1000,
};

/** Device authentication's per-app state: made in `buildApp`, carried in `ServiceDeps` as `deviceAuth`. */
export interface DeviceAuthState {
  candidatesPerSource: FailureLimiter;
  /** Refused device keys, per (uuid, source network) and per source network. */
  guesses: GuessThrottle;
  /** Device keys verified a moment ago (see credential-cache.ts). */
  verifiedKeys: DeviceKeyCache;
}

declare module '../../infra/service/index.ts' {
  interface ServiceDeps {
    /** Device authentication's limits and verified-key cache, one per app (tests start many in a process). */
    deviceAuth: DeviceAuthState;
  }
}

/** @param events the app's bus: the verified-key cache forgets on every write committed in this app. */
export function createDeviceAuthState(events: EventBus): DeviceAuthState {
  return {
    candidatesPerSource: new FailureLimiter(RECOVERY_CANDIDATES_PER_SOURCE, RECOVERY_WINDOW_MS),
    guesses: new GuessThrottle(DEVICE_GUESS_LIMITS),
    verifiedKeys: new DeviceKeyCache(events),
  };
}

const refused = () =>
  new AppError('unauthorized', 'the device credential is unknown, revoked or expired', {
    details: { hint: 'devices send a device token, or uuid + device key' },
  });

/**
 * The credential in an `Authorization` header, if it has a device's shape:
 * `Bearer <device token (JWT)>`, `Basic base64(<uuid>:<device key>)`, or `Bearer <uuid>:<device key>`.
 */
export type DeviceCredential = { type: 'token'; token: string } | { type: 'key'; uuid: string; key: string };

export function deviceCredentialOf(header: string | undefined): DeviceCredential | undefined {
  if (!header || header.length > 8192) return undefined;
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
  if (bearer && /^[\w-]+\.[\w-]+\.[\w-]+$/.test(bearer)) return { type: 'token', token: bearer };
  const pair = bearer ?? decodeBasic(header);
  const match = pair && /^([0-9a-fA-F]{32}):(\S{16,512})$/.exec(pair);
  return match ? { type: 'key', uuid: match[1]!.toLowerCase(), key: match[2]! } : undefined;
}

function decodeBasic(header: string): string | undefined {
  const encoded = /^Basic\s+([A-Za-z0-9+/=]{1,2048})\s*$/i.exec(header)?.[1];
  return encoded ? Buffer.from(encoded, 'base64').toString('utf8') : undefined;
}

/**
 * Resolves a device credential to the device acting, or throws `unauthorized`. Decommissioned devices and
 * tokens issued before the device's credentials were revoked are refused at once, not when they expire.
 * An unknown uuid + key pair is remembered as a recovery candidate (its hash only) for an admin to adopt.
 */
export async function authenticateDevice(
  deps: ServiceDeps,
  credential: DeviceCredential,
  sourceIp: string | null,
): Promise<DevicePrincipal> {
  const { db } = deps;
  if (credential.type === 'token') {
    const claims = await deps.deviceTokens.verify(credential.token);
    const device = await db
      .selectFrom('devices')
      .select(['id', 'uuid', 'org_id', 'fleet_id', 'decommissioned_at', 'tokens_valid_after'])
      .where('id', '=', claims.deviceId)
      .executeTakeFirst();
    if (
      !device ||
      device.uuid !== claims.uuid ||
      device.decommissioned_at !== null ||
      (device.tokens_valid_after !== null && claims.issuedAtMs <= device.tokens_valid_after)
    )
      throw refused();
    return principalOf(device, { type: 'device_token', id: claims.jti });
  }

  return verifyDeviceKey(deps, credential.key, credential.uuid, sourceIp);
}

/** The throttle's identity for keys sent without a uuid: such refusals count per source (and all together). */
const BARE_KEY_IDENTITY = '(device key alone)';

/**
 * Resolves a device API key sent alone, without its uuid, as balenaOS's os-config sends it (`Authorization:
 * Bearer <deviceApiKey>`): the key identifies its device, since key hashes are unique (open-balena-api resolves
 * a bare key the same way, `permissions.checkApiKey`). Throws `unauthorized` (or `rate_limited`) as
 * `authenticateDevice` does; an unknown key is not remembered for recovery (there is no uuid to adopt).
 */
export function authenticateDeviceKey(
  deps: ServiceDeps,
  key: string,
  sourceIp: string | null,
): Promise<DevicePrincipal> {
  return verifyDeviceKey(deps, key, undefined, sourceIp);
}

/** A device key, and the uuid it came with unless it came alone: the one check behind both functions above. */
async function verifyDeviceKey(
  deps: ServiceDeps,
  key: string,
  uuid: string | undefined,
  sourceIp: string | null,
): Promise<DevicePrincipal> {
  const { db } = deps;
  // The key is checked before any limit: the right key always gets its device in, whoever else guessed at
  // its uuid or from its network (a NAT). Device keys are random (128 bits and more), so online guessing
  // cannot find one however fast it goes; limits only tell a client sending wrong keys to stop (`failed`).
  const limits = deps.deviceAuth;
  const keyHash = sha256Hex(key);
  const now = Date.now();
  // A key verified a moment ago (for this same uuid, when sent): nothing changed since, or the cache would be empty.
  const cached = limits.verifiedKeys.get(keyHash, now);
  if (cached && (uuid === undefined || cached.device.uuid === uuid)) {
    if (cached.lastUsedAt === null || now - cached.lastUsedAt > LAST_USED_PRECISION_MS) {
      cached.lastUsedAt = now;
      deps.deviceKeyUsage.record(cached.keyId, now);
    }
    return principalOf(cached.device, { type: 'device_key', id: cached.keyId });
  }

  const snapshot = limits.verifiedKeys.snapshot();
  const found = await lookUpKey(db, keyHash);
  // Lookup by the key's hash, then the uuid (when sent) must match: a key works only for its own device.
  if (
    !found ||
    (uuid !== undefined && found.uuid !== uuid) ||
    found.revoked_at !== null ||
    found.decommissioned_at !== null
  ) {
    const source = sourceKeyOf(sourceIp);
    const refusal = failed(limits, source, uuid ?? BARE_KEY_IDENTITY);
    // An unknown pair may be a device whose record was lost (unless its sender keeps sending wrong keys).
    if (!found && uuid !== undefined && refusal.code === 'unauthorized') {
      await rememberRecoveryCandidate(deps, uuid, keyHash, sourceIp);
    }
    throw refusal;
  }
  let lastUsedAt = found.last_used_at;
  if (lastUsedAt === null || now - lastUsedAt > LAST_USED_PRECISION_MS) {
    deps.deviceKeyUsage.record(found.key_id, now);
    lastUsedAt = now;
  }
  const device = { id: found.id, uuid: found.uuid, org_id: found.org_id, fleet_id: found.fleet_id };
  limits.verifiedKeys.put(keyHash, { keyId: found.key_id, device, lastUsedAt }, snapshot, now);
  return principalOf(device, { type: 'device_key', id: found.key_id });
}

/**
 * Counts a refused device key against its (uuid, source network) and its source network, and answers the
 * refusal: `401`, or `429` with `Retry-After` once its sender has failed too often; never which half was
 * wrong. Not a closure inside `authenticateDevice`: that would be made on every check, and under tsx (which
 * runs the server) named with an `Object.defineProperty` each time, ~2 % of the server's CPU in bench/auth's
 * device-key checks.
 */
function failed(limits: DeviceAuthState, source: string, uuid: string): AppError {
  const wait = limits.guesses.retryAfter(uuid, source);
  if (wait > 0)
    return rateLimited('too many refused device credentials from your network: try again later', wait);
  limits.guesses.failed(uuid, source);
  return refused();
}

/**
 * A device key and its device, by the key's hash: compiled once per database and run on the read connection
 * (`readNow`), since every device's first request after a while asks it.
 */
function keyQueryOf(db: Db) {
  return keyColumns(db).where('device_keys.key_hash', '=', '').compile();
}
const keyQueries = new WeakMap<Db, ReturnType<typeof keyQueryOf>>();

function keyColumns(db: Db) {
  return db
    .selectFrom('device_keys')
    .innerJoin('devices', 'devices.id', 'device_keys.device_id')
    .select([
      'device_keys.id as key_id',
      'device_keys.revoked_at',
      'device_keys.last_used_at',
      'devices.id',
      'devices.uuid',
      'devices.org_id',
      'devices.fleet_id',
      'devices.decommissioned_at',
      'device_keys.key_hash',
    ]);
}

type KeyRow = ReturnType<typeof keyQueryOf> extends CompiledQuery<infer R> ? R : never;

/**
 * A device key and its device, by the key's hash. On SQLite one indexed read on the read connection (`readNow`),
 * microseconds; on PostgreSQL each read is a round trip to the server, so the first checks of many devices at once
 * (a reconnect storm, after a restart: bench/vpn, bench/auth) are read together, one `key_hash = any($1)` query
 * for the hashes asked within the same turn of the event loop (`BatchedReads`).
 */
function lookUpKey(db: Db, keyHash: string): Promise<KeyRow | undefined> {
  if (db.getExecutor().adapter instanceof PostgresAdapter) {
    let batch = keyBatches.get(db);
    if (!batch) {
      batch = keyBatchOf(db);
      keyBatches.set(db, batch);
    }
    return batch.load(keyHash);
  }
  let query = keyQueries.get(db);
  if (!query) {
    query = keyQueryOf(db);
    keyQueries.set(db, query);
  }
  return readNow(db, query, [keyHash]).then(([row]) => row);
}

/** Hashes per batched query: well under PostgreSQL's limits, and a burst is split into a few. */
const KEY_BATCH_MAX = 500;

function keyBatchOf(db: Db): BatchedReads<string, KeyRow> {
  const query = keyColumns(db)
    .where(sql<SqlBool>`device_keys.key_hash = any(${sql.val<string[]>([])})`)
    .compile() as CompiledQuery<KeyRow>;
  return new BatchedReads(db, query, (row) => row.key_hash, KEY_BATCH_MAX);
}
const keyBatches = new WeakMap<Db, BatchedReads<string, KeyRow>>();

function principalOf(
  device: { id: number; uuid: string; org_id: number; fleet_id: number },
  credential: DevicePrincipal['credential'],
): DevicePrincipal {
  return {
    type: 'device',
    deviceId: device.id,
    uuid: device.uuid,
    orgId: device.org_id,
    fleetId: device.fleet_id,
    credential,
  };
}

/**
 * After a database loss, devices in the field keep presenting a uuid and key the server no longer knows.
 * Each distinct pair is kept once (attempts counted) until an admin adopts or discards it; a known device's
 * uuid with a wrong key is not a candidate (that is a guess, not a lost record).
 */
async function rememberRecoveryCandidate(
  deps: ServiceDeps,
  uuid: string,
  keyHash: string,
  sourceIp: string | null,
): Promise<void> {
  const { db } = deps;
  const source = sourceKeyOf(sourceIp);
  const now = Date.now();
  const known = await db.selectFrom('devices').select('id').where('uuid', '=', uuid).executeTakeFirst();
  if (known) return;
  const updated = await db
    .updateTable('recovery_candidates')
    .set((eb) => ({ last_seen_at: now, attempts: eb('attempts', '+', 1), source_ip: sourceIp }))
    .where('uuid', '=', uuid)
    .where('key_hash', '=', keyHash)
    .executeTakeFirst();
  if (Number(updated.numUpdatedRows) > 0) return;
  const limiter = deps.deviceAuth.candidatesPerSource;
  if (limiter.retryAfter(source) > 0) {
    deps.log.debug({ uuid, source }, 'too many new recovery candidates from this network: not remembered');
    return;
  }
  const { n } = await db
    .selectFrom('recovery_candidates')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  if (Number(n) >= RECOVERY_CANDIDATES_MAX) {
    // Full: a pair seen once and longest ago makes room. Real devices keep retrying and keep their place.
    const stalest = await db
      .selectFrom('recovery_candidates')
      .select('id')
      .where('attempts', '=', 1)
      .orderBy('last_seen_at')
      .limit(1)
      .executeTakeFirst();
    if (!stalest) {
      deps.log.warn({ uuid }, 'recovery candidates are full: not remembering another unknown device');
      return;
    }
    await db.deleteFrom('recovery_candidates').where('id', '=', stalest.id).execute();
  }
  await db
    .insertInto('recovery_candidates')
    .values({ uuid, key_hash: keyHash, source_ip: sourceIp, first_seen_at: now, last_seen_at: now })
    .onConflict((oc) => oc.columns(['uuid', 'key_hash']).doNothing())
    .execute();
  limiter.fail(source);
}
