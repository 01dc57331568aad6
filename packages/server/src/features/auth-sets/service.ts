import type { Selectable } from 'kysely';
import type { AuthSetStatus, AuthSetTable, DeviceKeyType } from '../../db/schema.ts';
import { type Actor, authorize, readScope, requireUser, scopeCondition } from '../../infra/access/index.ts';
import type { Db } from '../../infra/db/index.ts';
import { json } from '../../infra/db/index.ts';
import { AppError, notFound } from '../../infra/errors/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import { type Page, type PageRequest, type ServiceDeps, write } from '../../infra/service/index.ts';
import { assertRoomForDevice, insertDevice } from '../devices/index.ts';
import { defaultFleetFor, fleetForAction } from '../fleets/index.ts';
import { type Identity, identityOf, nameFromIdentity, parsePublicKey } from './keys.ts';

/**
 * Auth sets (DESIGN section 5): a device identity plus a public key, with a status. Admins accept, reject
 * and preauthorize them here; the signed auth requests of devices are handled in `./auth-request.ts`.
 * Invariant: a device has at most one accepted set (accepting one rejects its others).
 */

export type AuthSetRow = Selectable<AuthSetTable>;

export interface AuthSetView {
  id: number;
  orgId: number;
  deviceId: number | null;
  deviceUuid: string | null;
  /** The device's fleet, or the fleet proposed for a pending set (from its provisioning key). */
  fleetId: number | null;
  identity: Identity;
  identityHash: string;
  publicKey: string;
  keyType: DeviceKeyType;
  status: AuthSetStatus;
  sourceIp: string | null;
  createdAt: string;
  updatedAt: string;
  lastRequestAt: string | null;
  requestCount: number;
}

/** Device type given to a device created from an auth set when its fleet has no default. */
export const FALLBACK_DEVICE_TYPE = 'generic-amd64';

export function authSetView(r: AuthSetRow & { device_uuid?: string | null }): AuthSetView {
  return {
    id: r.id,
    orgId: r.org_id,
    deviceId: r.device_id,
    deviceUuid: r.device_uuid ?? null,
    fleetId: r.fleet_id,
    identity: json.decode<Identity>(r.identity) ?? {},
    identityHash: r.identity_hash,
    publicKey: r.public_key,
    keyType: r.key_type,
    status: r.status,
    sourceIp: r.source_ip,
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
    lastRequestAt: iso(r.last_request_at),
    requestCount: Number(r.request_count),
  };
}

function withDeviceUuid(db: Db) {
  return db
    .selectFrom('auth_sets')
    .leftJoin('devices', 'devices.id', 'auth_sets.device_id')
    .selectAll('auth_sets')
    .select('devices.uuid as device_uuid');
}

export interface AuthSetQuery extends PageRequest {
  status?: AuthSetStatus | undefined;
  orgId?: number | undefined;
  deviceId?: number | undefined;
  identityHash?: string | undefined;
}

/** Auth sets the caller may see (scoped in SQL by `device.read`), newest first. */
export async function listAuthSets(
  deps: ServiceDeps,
  actor: Actor,
  q: AuthSetQuery,
): Promise<Page<AuthSetView>> {
  // Request counts are written in batches: the ones already answered first.
  await deps.authSetActivity.flush();
  let query = deps.db
    .selectFrom('auth_sets')
    .where(
      scopeCondition(readScope(actor.principal, 'device.read'), 'auth_sets.org_id', 'auth_sets.fleet_id'),
    );
  if (q.status) query = query.where('auth_sets.status', '=', q.status);
  if (q.orgId !== undefined) query = query.where('auth_sets.org_id', '=', q.orgId);
  if (q.deviceId !== undefined) query = query.where('auth_sets.device_id', '=', q.deviceId);
  if (q.identityHash !== undefined) query = query.where('auth_sets.identity_hash', '=', q.identityHash);
  const { total } = await query
    .select((eb) => eb.fn.countAll<number>().as('total'))
    .executeTakeFirstOrThrow();
  const ids = (
    await query
      .select('auth_sets.id')
      .orderBy('auth_sets.id', 'desc')
      .limit(q.limit)
      .offset((q.page - 1) * q.limit)
      .execute()
  ).map((r) => r.id);
  const rows = ids.length
    ? await withDeviceUuid(deps.db).where('auth_sets.id', 'in', ids).orderBy('auth_sets.id', 'desc').execute()
    : [];
  return { items: rows.map(authSetView), total: Number(total), page: q.page, limit: q.limit };
}

export async function getAuthSet(deps: ServiceDeps, actor: Actor, id: number): Promise<AuthSetView> {
  await deps.authSetActivity.flush();
  const row = await withDeviceUuid(deps.db).where('auth_sets.id', '=', id).executeTakeFirst();
  if (!row) throw notFound('auth set');
  authorize(
    actor.principal,
    'device.read',
    { orgId: row.org_id, fleetId: row.fleet_id ?? undefined },
    'auth set',
  );
  return authSetView(row);
}

async function authSetForAction(trx: Db, actor: Actor, id: number): Promise<AuthSetRow> {
  const row = await trx.selectFrom('auth_sets').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw notFound('auth set');
  // Seeing it is enough to be told "forbidden" rather than "not found".
  authorize(
    actor.principal,
    'device.read',
    { orgId: row.org_id, fleetId: row.fleet_id ?? undefined },
    'auth set',
  );
  authorize(
    actor.principal,
    'device.authorize',
    { orgId: row.org_id, fleetId: row.fleet_id ?? undefined },
    'auth set',
  );
  return row;
}

/** The fleet a new device from this set goes to: the proposed one, else the given one, else the oldest. */
async function fleetForNewDevice(trx: Db, actor: Actor, set: AuthSetRow, fleetHint: number | undefined) {
  const fleetId =
    set.fleet_id ??
    fleetHint ??
    (
      await trx
        .selectFrom('fleets')
        .select('id')
        .where('org_id', '=', set.org_id)
        .orderBy('created_at')
        .orderBy('id')
        .executeTakeFirst()
    )?.id;
  if (fleetId === undefined)
    throw new AppError(
      'unprocessable',
      'the organization has no fleet to put the device in: create one (POST /api/v1/fleets) or pass a fleet id',
    );
  const fleet = await fleetForAction(trx, actor, fleetId, 'device.authorize');
  if (fleet.org_id !== set.org_id)
    throw new AppError('bad_request', 'the fleet belongs to another organization than the auth set');
  return fleet;
}

/**
 * Creates the device of an identity in `fleet` (through the devices feature's `insertDevice`): the fleet's
 * default device type, a name from the identity. `admitted` when it is accepted now, `awaiting` when
 * preauthorized (it takes its place under the device limit when accepted).
 */
async function insertDeviceForIdentity(
  trx: Db,
  fleet: { id: number; org_id: number; default_device_type: string | null },
  identity: Identity,
  admission: 'admitted' | 'awaiting',
  name?: string | undefined,
): Promise<{ id: number; uuid: string; org_id: number; fleet_id: number }> {
  return insertDevice(trx, {
    fleet,
    deviceType: fleet.default_device_type ?? FALLBACK_DEVICE_TYPE,
    name: name ?? nameFromIdentity(identity),
    admission,
  });
}

/**
 * Marks `set` accepted for its device (creating the device when the set has none) and rejects the device's
 * other accepted or preauthorized sets. The caller authorized it and made room under the device limit
 * (`assertRoomForDevice`).
 */
export async function markAccepted(
  trx: Db,
  set: AuthSetRow,
  device: { id: number; fleet_id: number },
): Promise<number> {
  const now = Date.now();
  const others = await trx
    .updateTable('auth_sets')
    .set({ status: 'rejected', updated_at: now })
    .where('device_id', '=', device.id)
    .where('id', '!=', set.id)
    .where('status', 'in', ['accepted', 'preauthorized'])
    .executeTakeFirst();
  await trx
    .updateTable('auth_sets')
    .set({ status: 'accepted', device_id: device.id, fleet_id: device.fleet_id, updated_at: now })
    .where('id', '=', set.id)
    .execute();
  return Number(others.numUpdatedRows);
}

/** Changes one auth set's status as an admin: accepted, rejected or pending (see the transitions below). */
async function applyStatus(
  trx: Db,
  actor: Actor,
  set: AuthSetRow,
  status: 'accepted' | 'rejected' | 'pending',
  fleetHint: number | undefined,
): Promise<{ deviceId: number | null; details: Record<string, unknown> }> {
  const from = set.status;
  const now = Date.now();
  if (from === status) return { deviceId: set.device_id, details: { from, to: status, unchanged: true } };
  let device: { id: number; fleet_id: number; decommissioned_at: number | null } | undefined;
  if (set.device_id !== null) {
    device = await trx
      .selectFrom('devices')
      .select(['id', 'fleet_id', 'decommissioned_at'])
      .where('id', '=', set.device_id)
      .executeTakeFirst();
  }
  if (status === 'accepted') {
    if (device?.decommissioned_at !== null && device?.decommissioned_at !== undefined)
      throw new AppError(
        'unprocessable',
        'the device was decommissioned: delete this auth set and let the device ask again, or preauthorize it anew',
      );
    let created = false;
    if (device) {
      authorize(
        actor.principal,
        'device.authorize',
        { orgId: set.org_id, fleetId: device.fleet_id },
        'auth set',
      );
      await assertRoomForDevice(trx, set.org_id, device.id);
    } else {
      // A new device takes its place under the limit as insertDevice makes it.
      const fleet = await fleetForNewDevice(trx, actor, set, fleetHint);
      const identity = json.decode<Identity>(set.identity) ?? {};
      const inserted = await insertDeviceForIdentity(trx, fleet, identity, 'admitted');
      device = { id: inserted.id, fleet_id: inserted.fleet_id, decommissioned_at: null };
      created = true;
    }
    const rejectedOthers = await markAccepted(trx, set, device);
    return { deviceId: device.id, details: { from, to: status, createdDevice: created, rejectedOthers } };
  }
  // rejected or pending: an accepted set's tokens stop working at once.
  await trx.updateTable('auth_sets').set({ status, updated_at: now }).where('id', '=', set.id).execute();
  if (from === 'accepted' && device) {
    await trx.updateTable('devices').set({ tokens_valid_after: now }).where('id', '=', device.id).execute();
  }
  return { deviceId: set.device_id, details: { from, to: status } };
}

export async function setAuthSetStatus(
  deps: ServiceDeps,
  actor: Actor,
  id: number,
  status: 'accepted' | 'rejected' | 'pending',
  fleetId?: number | undefined,
): Promise<AuthSetView> {
  // A new device accepted without a fleet named, in an organization without fleets: its default fleet, made now.
  let fleetHint = fleetId;
  if (status === 'accepted' && fleetHint === undefined) {
    const set = await authSetForAction(deps.db, actor, id);
    if (set.fleet_id === null && set.device_id === null)
      fleetHint = await defaultFleetFor(deps, actor, set.org_id);
  }
  const tokensRevokedOf = await write(
    deps,
    actor,
    {
      action: `auth_set.${status === 'accepted' ? 'accept' : status === 'rejected' ? 'reject' : 'pend'}`,
      resourceType: 'auth_set',
    },
    async (trx) => {
      const set = await authSetForAction(trx, actor, id);
      const { details } = await applyStatus(trx, actor, set, status, fleetHint);
      const revoked = set.status === 'accepted' && status !== 'accepted' ? set.device_id : null;
      return { value: revoked, orgId: set.org_id, resourceId: set.id, details };
    },
  );
  // The device's tokens stopped working: its live tunnel closes too.
  if (tokensRevokedOf !== null)
    deps.events.emit('device.credentials.revoked', { deviceId: tokensRevokedOf, tokensOnly: true });
  return getAuthSet(deps, actor, id);
}

export interface BulkResult {
  id: number;
  outcome: 'accepted' | 'rejected' | 'error';
  deviceId?: number | undefined;
  reason?: string | undefined;
}

/** Accepts or rejects many auth sets, each on its own (one failing does not stop the others). */
export async function setAuthSetStatuses(
  deps: ServiceDeps,
  actor: Actor,
  ids: number[],
  status: 'accepted' | 'rejected',
  fleetId?: number | undefined,
): Promise<BulkResult[]> {
  requireUser(actor.principal);
  // A fleet named for new devices must be one the caller may add devices to, before any set is touched.
  if (fleetId !== undefined) await fleetForAction(deps.db, actor, fleetId, 'device.authorize');
  const results: BulkResult[] = [];
  for (const id of ids) {
    try {
      const view = await setAuthSetStatus(deps, actor, id, status, fleetId);
      results.push({ id, outcome: status, deviceId: view.deviceId ?? undefined });
    } catch (error) {
      if (!(error instanceof AppError) || error.code === 'internal') throw error;
      results.push({ id, outcome: 'error', reason: error.message });
    }
  }
  return results;
}

/**
 * Deletes an auth set. A device that was only preauthorized (it never connected) and has no other set is
 * deleted with it, as Mender does; an accepted set's tokens stop working at once.
 */
export async function deleteAuthSet(deps: ServiceDeps, actor: Actor, id: number): Promise<void> {
  let tokensRevokedOf: number | null = null;
  await write(deps, actor, { action: 'auth_set.delete', resourceType: 'auth_set' }, async (trx) => {
    const set = await authSetForAction(trx, actor, id);
    await trx.deleteFrom('auth_sets').where('id', '=', set.id).execute();
    let deletedDevice = false;
    if (set.device_id !== null) {
      if (set.status === 'accepted') {
        await trx
          .updateTable('devices')
          .set({ tokens_valid_after: Date.now() })
          .where('id', '=', set.device_id)
          .execute();
        tokensRevokedOf = set.device_id;
      }
      const rest = await trx
        .selectFrom('auth_sets')
        .select('id')
        .where('device_id', '=', set.device_id)
        .executeTakeFirst();
      if (!rest && set.status === 'preauthorized') {
        await trx.deleteFrom('devices').where('id', '=', set.device_id).execute();
        deletedDevice = true;
      }
    }
    return {
      value: undefined,
      orgId: set.org_id,
      resourceId: set.id,
      details: { status: set.status, deviceId: set.device_id, deletedDevice },
    };
  });
  if (tokensRevokedOf !== null)
    deps.events.emit('device.credentials.revoked', { deviceId: tokensRevokedOf, tokensOnly: true });
}

export interface PreauthorizeRow {
  identity: unknown;
  publicKey: string;
  name?: string | undefined;
}

export interface PreauthorizeResult {
  index: number;
  outcome: 'created' | 'conflict' | 'invalid';
  identity?: Identity | undefined;
  authSetId?: number | undefined;
  device?: { id: number; uuid: string; name: string; fleetId: number } | undefined;
  reason?: string | undefined;
}

/** The live (not decommissioned) device that already has this identity in the organization, if any. */
async function deviceWithIdentity(trx: Db, orgId: number, hash: string) {
  return trx
    .selectFrom('auth_sets')
    .innerJoin('devices', 'devices.id', 'auth_sets.device_id')
    .select(['devices.id', 'devices.uuid', 'devices.name', 'devices.fleet_id'])
    .where('auth_sets.org_id', '=', orgId)
    .where('auth_sets.identity_hash', '=', hash)
    .where('devices.decommissioned_at', 'is', null)
    .orderBy('devices.id')
    .executeTakeFirst();
}

/**
 * Preauthorizes one identity + public key for a fleet: creates the device and a `preauthorized` set, accepted
 * on the device's first valid auth request. An identity that a live device already has answers `conflict`
 * with that device in the details, unless `force` (then the new set is added to that device).
 */
export async function preauthorizeOne(
  deps: ServiceDeps,
  actor: Actor,
  input: { fleetId: number; row: PreauthorizeRow; force?: boolean | undefined },
): Promise<{ authSet: AuthSetView; deviceId: number }> {
  const { identity, canonical, hash } = identityOf(input.row.identity);
  const key = parsePublicKey(input.row.publicKey);
  const result = await write(
    deps,
    actor,
    { action: 'auth_set.preauthorize', resourceType: 'auth_set' },
    async (trx) => {
      const fleet = await fleetForAction(trx, actor, input.fleetId, 'device.authorize');
      const existing = await deviceWithIdentity(trx, fleet.org_id, hash);
      if (existing && !input.force) {
        throw new AppError('conflict', `a device with this identity exists already (${existing.uuid})`, {
          details: {
            device: { id: existing.id, uuid: existing.uuid, name: existing.name, fleetId: existing.fleet_id },
            hint: 'pass force to add this key to it',
          },
        });
      }
      // Sets this one supersedes: the same identity and key anywhere in the organization (a pending request,
      // a decommissioned device's old set), and the identity's requests still waiting without a device.
      await trx
        .deleteFrom('auth_sets')
        .where('org_id', '=', fleet.org_id)
        .where('identity_hash', '=', hash)
        .where((eb) => eb.or([eb('public_key_hash', '=', key.hash), eb('device_id', 'is', null)]))
        .execute();
      const device = existing
        ? { id: existing.id, uuid: existing.uuid, fleet_id: existing.fleet_id }
        : await insertDeviceForIdentity(trx, fleet, identity, 'awaiting', input.row.name);
      const now = Date.now();
      const set = await trx
        .insertInto('auth_sets')
        .values({
          org_id: fleet.org_id,
          device_id: device.id,
          fleet_id: device.fleet_id,
          identity: canonical,
          identity_hash: hash,
          public_key: key.pem,
          public_key_hash: key.hash,
          key_type: key.type,
          status: 'preauthorized',
          source_ip: null,
          created_at: now,
          updated_at: now,
          last_request_at: null,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return {
        value: { setId: set.id, deviceId: device.id },
        orgId: fleet.org_id,
        resourceId: set.id,
        details: { deviceUuid: device.uuid, fleetId: device.fleet_id, keyType: key.type, forced: !!existing },
      };
    },
  );
  return { authSet: await getAuthSet(deps, actor, result.setId), deviceId: result.deviceId };
}

/** Preauthorizes many rows (a CSV from `fleetgate keygen`), each on its own, and reports each row. */
export async function preauthorizeMany(
  deps: ServiceDeps,
  actor: Actor,
  input: { fleetId: number; rows: PreauthorizeRow[]; force?: boolean | undefined },
): Promise<PreauthorizeResult[]> {
  requireUser(actor.principal);
  await fleetForAction(deps.db, actor, input.fleetId, 'device.authorize');
  const results: PreauthorizeResult[] = [];
  for (const [index, row] of input.rows.entries()) {
    try {
      const { authSet } = await preauthorizeOne(deps, actor, {
        fleetId: input.fleetId,
        row,
        force: input.force,
      });
      const device = await deps.db
        .selectFrom('devices')
        .select(['id', 'uuid', 'name', 'fleet_id'])
        .where('id', '=', authSet.deviceId!)
        .executeTakeFirstOrThrow();
      results.push({
        index,
        outcome: 'created',
        identity: authSet.identity,
        authSetId: authSet.id,
        device: { id: device.id, uuid: device.uuid, name: device.name, fleetId: device.fleet_id },
      });
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      // A missing or forbidden fleet fails the whole request: every row would fail the same way.
      if (error.code === 'not_found' || error.code === 'forbidden' || error.code === 'internal') throw error;
      const device = (error.details as { device?: PreauthorizeResult['device'] } | undefined)?.device;
      results.push({
        index,
        outcome: error.code === 'conflict' ? 'conflict' : 'invalid',
        reason: error.message,
        ...(device ? { device } : {}),
      });
    }
  }
  return results;
}
