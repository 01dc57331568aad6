import { type CompiledQuery, PostgresAdapter, type SqlBool, sql } from 'kysely';
import type { DeviceKeyTable } from '../../db/schema.ts';
import { type Actor, requireDevice } from '../../infra/access/index.ts';
import { appendAuditEvent } from '../../infra/audit/index.ts';
import { randomToken, sha256Hex } from '../../infra/crypto/index.ts';
import { BatchedReads, type Db, readNow } from '../../infra/db/index.ts';
import { AppError, notFound } from '../../infra/errors/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import { rethrowConstraint, type ServiceDeps, write } from '../../infra/service/index.ts';
import { type DeviceRef, type DeviceStatus, deviceForAction, deviceStatus } from '../devices/index.ts';

/**
 * Device API keys (balena style): a device proves who it is with its uuid and a long random key it chose
 * (or the server generated). Only the key's SHA-256 is stored, so a key is shown at most once.
 */

export type DeviceKeyOrigin = DeviceKeyTable['origin'];

/** What a device key must look like: 16-512 printable ASCII characters without spaces. */
export const DEVICE_KEY_PATTERN = /^[\x21-\x7e]{16,512}$/;

export interface DeviceKeyView {
  id: number;
  origin: DeviceKeyOrigin;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

/** Adds a key (by its hash) to a device, inside the caller's transaction. */
export async function insertDeviceKey(
  trx: Db,
  deviceId: number,
  keyHash: string,
  origin: DeviceKeyOrigin,
  now = Date.now(),
): Promise<number> {
  const row = await trx
    .insertInto('device_keys')
    .values({
      device_id: deviceId,
      key_hash: keyHash,
      origin,
      created_at: now,
      last_used_at: null,
      revoked_at: null,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/** `true` when some device (any, revoked or not) already holds a key with this hash. */
export async function deviceKeyHashTaken(trx: Db, keyHash: string): Promise<boolean> {
  const row = await trx
    .selectFrom('device_keys')
    .select('id')
    .where('key_hash', '=', keyHash)
    .executeTakeFirst();
  return !!row;
}

/**
 * Revokes every live key of a device (or only `keyId`) and refuses the device tokens issued so far, inside
 * the caller's transaction. Answers how many keys were revoked.
 */
export async function revokeDeviceCredentials(
  trx: Db,
  deviceId: number,
  now: number,
  keyId?: number,
): Promise<number> {
  let query = trx
    .updateTable('device_keys')
    .set({ revoked_at: now })
    .where('device_id', '=', deviceId)
    .where('revoked_at', 'is', null);
  if (keyId !== undefined) query = query.where('id', '=', keyId);
  const revoked = await query.executeTakeFirst();
  await trx
    .updateTable('devices')
    .set({ tokens_valid_after: now, updated_at: now })
    .where('id', '=', deviceId)
    .execute();
  return Number(revoked.numUpdatedRows);
}

/** A device's keys, newest first, metadata only (the keys themselves are never stored). */
export async function listDeviceKeys(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
): Promise<DeviceKeyView[]> {
  const device = await deviceForAction(deps.db, actor, ref, 'device.read');
  // Last-used times are written in batches: the uses already answered first.
  await deps.deviceKeyUsage.flush();
  const rows = await deps.db
    .selectFrom('device_keys')
    .select(['id', 'origin', 'created_at', 'last_used_at', 'revoked_at'])
    .where('device_id', '=', device.id)
    .orderBy('id', 'desc')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    origin: r.origin,
    createdAt: iso(r.created_at),
    lastUsedAt: iso(r.last_used_at),
    revokedAt: iso(r.revoked_at),
  }));
}

/**
 * Revokes a device's keys (all, or one by id) and every device token issued so far: the device is refused
 * from its next request on. Admins and owners only.
 */
export async function revokeDeviceKeys(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
  keyId?: number,
): Promise<{ revoked: number }> {
  const { revoked, device } = await write(
    deps,
    actor,
    { action: 'device.credentials.revoke', resourceType: 'device' },
    async (trx) => {
      const device = await deviceForAction(trx, actor, ref, 'device.credentials');
      if (keyId !== undefined) {
        const key = await trx
          .selectFrom('device_keys')
          .select('id')
          .where('id', '=', keyId)
          .where('device_id', '=', device.id)
          .executeTakeFirst();
        if (!key) throw notFound('device key');
      }
      const revoked = await revokeDeviceCredentials(trx, device.id, Date.now(), keyId);
      return {
        value: { revoked, device },
        orgId: device.org_id,
        resourceId: device.uuid,
        details: { revoked, ...(keyId !== undefined ? { keyId } : {}) },
      };
    },
  );
  deps.events.emit('device.credentials.revoked', { deviceId: device.id, uuid: device.uuid, keyId });
  return { revoked };
}

export interface DeviceSelfView {
  id: number;
  uuid: string;
  name: string;
  orgId: number;
  fleetId: number;
  deviceType: string;
  osVersion: string | null;
  agentVersion: string | null;
  status: DeviceStatus;
  /** How this request authenticated. */
  credential: 'device_key' | 'device_token';
}

/** The columns `deviceSelf` answers with, compiled once per database: devices call it thousands of times a second. */
function selfColumns(db: Db) {
  return db
    .selectFrom('devices')
    .select([
      'id',
      'uuid',
      'name',
      'org_id',
      'fleet_id',
      'device_type',
      'os_version',
      'agent_version',
      'decommissioned_at',
      'connected_at',
      'disconnected_at',
      'vpn_connected_at',
      'vpn_disconnected_at',
      'mender_connected_at',
      'mender_disconnected_at',
    ]);
}
type SelfRow = ReturnType<typeof selfQueryOf> extends CompiledQuery<infer R> ? R : never;
function selfQueryOf(db: Db) {
  return selfColumns(db).where('id', '=', 0).compile();
}
const selfQueries = new WeakMap<Db, ReturnType<typeof selfQueryOf>>();

/**
 * On PostgreSQL, the devices asking about themselves within one turn of the event loop are read by one query
 * (`BatchedReads`): a round trip each cost more than the read.
 */
function selfBatchOf(db: Db): BatchedReads<number, SelfRow> {
  const query = selfColumns(db)
    .where(sql<SqlBool>`id = any(${sql.val<number[]>([])})`)
    .compile() as CompiledQuery<SelfRow>;
  return new BatchedReads(db, query, (row) => row.id);
}
const selfBatches = new WeakMap<Db, BatchedReads<number, SelfRow>>();

async function selfRowOf(db: Db, deviceId: number): Promise<SelfRow | undefined> {
  if (db.getExecutor().adapter instanceof PostgresAdapter) {
    let batch = selfBatches.get(db);
    if (!batch) {
      batch = selfBatchOf(db);
      selfBatches.set(db, batch);
    }
    return batch.load(deviceId);
  }
  let query = selfQueries.get(db);
  if (!query) {
    query = selfQueryOf(db);
    selfQueries.set(db, query);
  }
  return (await readNow(db, query, [deviceId]))[0];
}

/** The calling device's own record. */
export async function deviceSelf(deps: ServiceDeps, actor: Actor): Promise<DeviceSelfView> {
  const p = requireDevice(actor.principal);
  const row = await selfRowOf(deps.db, p.deviceId);
  if (!row) throw notFound('device');
  return {
    id: row.id,
    uuid: row.uuid,
    name: row.name,
    orgId: row.org_id,
    fleetId: row.fleet_id,
    deviceType: row.device_type,
    osVersion: row.os_version,
    agentVersion: row.agent_version,
    status: deviceStatus(row),
    credential: p.credential.type,
  };
}

/** Revoked keys kept per device (for the key list's history); older ones are deleted, so rotation is bounded. */
const REVOKED_KEYS_KEPT = 10;

async function pruneRevokedKeys(trx: Db, deviceId: number): Promise<void> {
  const stale = await trx
    .selectFrom('device_keys')
    .select('id')
    .where('device_id', '=', deviceId)
    .where('revoked_at', 'is not', null)
    .orderBy('revoked_at', 'desc')
    .orderBy('id', 'desc')
    .offset(REVOKED_KEYS_KEPT)
    .limit(1000)
    .execute();
  if (stale.length)
    await trx
      .deleteFrom('device_keys')
      .where(
        'id',
        'in',
        stale.map((k) => k.id),
      )
      .execute();
}

/**
 * The calling device replaces its key: the new key is the one it sends, or one generated here and answered
 * once. Every other key of the device is revoked in the same transaction.
 */
export async function rotateOwnDeviceKey(
  deps: ServiceDeps,
  actor: Actor,
  input: { key?: string | undefined },
): Promise<{ keyId: number; key?: string }> {
  const p = requireDevice(actor.principal);
  // A device token only says who the device was when it was issued: it may not mint a lasting key.
  if (p.credential.type !== 'device_key')
    throw new AppError(
      'forbidden',
      'rotating the device key needs the current device key, not a device token',
    );
  const usedKeyId = p.credential.id;
  const generated = input.key === undefined ? randomToken() : undefined;
  const key = input.key ?? generated!;
  const keyHash = sha256Hex(key);
  try {
    const rotated = await deps.db.transaction().execute(async (trx) => {
      // The key this request came with may have been revoked since it was checked (an admin, at once).
      const used = await trx
        .selectFrom('device_keys')
        .select('id')
        .where('id', '=', usedKeyId)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      if (!used) throw new AppError('unauthorized', 'the device key was revoked meanwhile');
      if (await deviceKeyHashTaken(trx, keyHash))
        throw new AppError('conflict', 'that key is already in use: send another one');
      const now = Date.now();
      await trx
        .updateTable('device_keys')
        .set({ revoked_at: now })
        .where('device_id', '=', p.deviceId)
        .where('revoked_at', 'is', null)
        .execute();
      const keyId = await insertDeviceKey(trx, p.deviceId, keyHash, 'rotate', now);
      await pruneRevokedKeys(trx, p.deviceId);
      await appendAuditEvent(trx, actor, {
        orgId: p.orgId,
        action: 'device.key.rotate',
        resourceType: 'device',
        resourceId: p.uuid,
        outcome: 'success',
        details: { keyId, generated: generated !== undefined },
      });
      return generated === undefined ? { keyId } : { keyId, key: generated };
    });
    // The old key stops working from the next request on, also where it was cached as verified.
    deps.events.emit('write.committed', { action: 'device.key.rotate', resourceType: 'device', orgId: null });
    return rotated;
  } catch (err) {
    throw rethrowConstraint(err);
  }
}
