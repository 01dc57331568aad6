import { type Actor, authorize } from '../../infra/access/index.ts';
import { appendAuditEvent } from '../../infra/audit/index.ts';
import { randomToken, sha256Hex } from '../../infra/crypto/index.ts';
import { AppError, notFound } from '../../infra/errors/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import { rethrowConstraint, type ServiceDeps, write } from '../../infra/service/index.ts';
import { deviceKeyHashTaken, insertDeviceKey } from '../device-keys/service.ts';
import { insertDevice } from '../devices/index.ts';
import { fleetForAction } from '../fleets/index.ts';

/**
 * Provisioning keys (balena style): a fleet-scoped secret baked into an OS image, with which a device
 * registers itself (`POST /api/v1/devices/register`). Optional expiry and maximum number of uses; stored as a
 * SHA-256 hash, shown once.
 */

export const PROVISIONING_KEY_PREFIX = 'fgp_';

export interface ProvisioningKeyView {
  id: number;
  orgId: number;
  fleetId: number;
  name: string;
  prefix: string;
  maxUses: number | null;
  uses: number;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

const columns = [
  'id',
  'org_id',
  'fleet_id',
  'name',
  'key_prefix',
  'max_uses',
  'uses',
  'created_at',
  'expires_at',
  'last_used_at',
  'revoked_at',
] as const;

type ProvisioningKeyRow = {
  id: number;
  org_id: number;
  fleet_id: number;
  name: string;
  key_prefix: string;
  max_uses: number | null;
  uses: number;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
};

function provisioningKeyView(r: ProvisioningKeyRow): ProvisioningKeyView {
  return {
    id: r.id,
    orgId: r.org_id,
    fleetId: r.fleet_id,
    name: r.name,
    prefix: r.key_prefix,
    maxUses: r.max_uses,
    uses: Number(r.uses),
    createdAt: iso(r.created_at),
    expiresAt: iso(r.expires_at),
    lastUsedAt: iso(r.last_used_at),
    revokedAt: iso(r.revoked_at),
  };
}

/** A fleet's provisioning keys, newest first, revoked ones included; never the keys themselves. */
export async function listProvisioningKeys(
  deps: ServiceDeps,
  actor: Actor,
  fleetId: number,
): Promise<ProvisioningKeyView[]> {
  const fleet = await fleetForAction(deps.db, actor, fleetId, 'provisioning_key.manage');
  const rows = await deps.db
    .selectFrom('provisioning_keys')
    .select(columns)
    .where('fleet_id', '=', fleet.id)
    .orderBy('id', 'desc')
    .execute();
  return rows.map(provisioningKeyView);
}

/** Characters of a generated key shown in lists (`fgp_` and 6 more), and of a restored one (6). */
const PREFIX_SHOWN = PROVISIONING_KEY_PREFIX.length + 6;
const RESTORED_PREFIX_SHOWN = 6;

/**
 * Creates a provisioning key for a fleet; the answer holds the key once. With `key`, the key is not generated
 * but restored: after a database loss the keys baked into OS images, agent configurations and `mender.conf`
 * (`TenantToken`) are still in the field, and restoring them lets those devices register and ask to join
 * again with no change on them. A value some key has already is refused (`conflict`).
 */
export async function createProvisioningKey(
  deps: ServiceDeps,
  actor: Actor,
  fleetId: number,
  input: {
    name: string;
    expiresInDays?: number | undefined;
    maxUses?: number | undefined;
    key?: string | undefined;
  },
): Promise<ProvisioningKeyView & { key: string }> {
  return write(
    deps,
    actor,
    {
      action: input.key === undefined ? 'provisioning_key.create' : 'provisioning_key.restore',
      resourceType: 'provisioning_key',
    },
    async (trx) => {
      const fleet = await fleetForAction(trx, actor, fleetId, 'provisioning_key.manage');
      const restored = input.key !== undefined;
      const key = input.key ?? randomToken(PROVISIONING_KEY_PREFIX);
      const keyHash = sha256Hex(key);
      // Checked before the insert, so no statement fails and aborts the transaction (PostgreSQL). Whoever sends
      // the value can use it anyway: saying that it exists tells them nothing more.
      const taken = await trx
        .selectFrom('provisioning_keys')
        .select('id')
        .where('key_hash', '=', keyHash)
        .executeTakeFirst();
      if (taken) throw new AppError('conflict', 'a provisioning key with this value exists already');
      const now = Date.now();
      const row = await trx
        .insertInto('provisioning_keys')
        .values({
          org_id: fleet.org_id,
          fleet_id: fleet.id,
          name: input.name,
          key_hash: keyHash,
          key_prefix: key.slice(
            0,
            restored && !key.startsWith(PROVISIONING_KEY_PREFIX) ? RESTORED_PREFIX_SHOWN : PREFIX_SHOWN,
          ),
          max_uses: input.maxUses ?? null,
          created_by: actor.principal.type === 'user' ? actor.principal.userId : null,
          created_at: now,
          expires_at: input.expiresInDays ? now + input.expiresInDays * 86_400_000 : null,
          last_used_at: null,
          revoked_at: null,
        })
        .returning(columns)
        .executeTakeFirstOrThrow();
      return {
        value: { ...provisioningKeyView(row), key },
        orgId: fleet.org_id,
        resourceId: row.id,
        details: { name: input.name, fleetId: fleet.id, maxUses: input.maxUses ?? null, restored },
      };
    },
  );
}

/** Revokes a provisioning key: registrations with it fail from now on; devices it registered keep working. */
export async function revokeProvisioningKey(deps: ServiceDeps, actor: Actor, keyId: number): Promise<void> {
  await write(
    deps,
    actor,
    { action: 'provisioning_key.revoke', resourceType: 'provisioning_key' },
    async (trx) => {
      const row = await trx
        .selectFrom('provisioning_keys')
        .select(['id', 'org_id', 'fleet_id', 'name', 'revoked_at'])
        .where('id', '=', keyId)
        .executeTakeFirst();
      if (!row) throw notFound('provisioning key');
      authorize(
        actor.principal,
        'provisioning_key.manage',
        { orgId: row.org_id, fleetId: row.fleet_id },
        'provisioning key',
      );
      if (row.revoked_at === null) {
        await trx
          .updateTable('provisioning_keys')
          .set({ revoked_at: Date.now() })
          .where('id', '=', row.id)
          .execute();
      }
      return { value: undefined, orgId: row.org_id, resourceId: row.id, details: { name: row.name } };
    },
  );
}

export interface Registration {
  uuid: string;
  deviceType: string;
  apiKey: string;
  name?: string | undefined;
  osVersion?: string | undefined;
  agentVersion?: string | undefined;
}

/** The one answer for every unusable provisioning key: it never says whether it was wrong, expired or used up. */
export function provisioningKeyRefused(): AppError {
  return new AppError('unauthorized', 'the provisioning key is not valid', {
    details: { hint: 'send Authorization: Bearer <provisioning key> of the fleet' },
  });
}

/**
 * Registers a device with a provisioning key (balena's `POST /device/register`): in one transaction the key's
 * use is counted (a conditional UPDATE, so concurrent registrations never exceed `max_uses`), the device is
 * created in the key's fleet and the key the device generated is stored as a hash. Any failure rolls the use
 * back.
 */
export async function registerDevice(
  deps: ServiceDeps,
  provisioningKey: string,
  input: Registration,
  sourceIp: string | null,
): Promise<{ id: number; uuid: string }> {
  const keyHash = sha256Hex(provisioningKey);
  const uuid = input.uuid.toLowerCase();
  try {
    let orgId: number | null = null;
    const registered = await deps.db.transaction().execute(async (trx) => {
      const now = Date.now();
      const key = await trx
        .updateTable('provisioning_keys')
        .set((eb) => ({ uses: eb('uses', '+', 1), last_used_at: now }))
        .where('key_hash', '=', keyHash)
        .where('revoked_at', 'is', null)
        .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
        .where((eb) => eb.or([eb('max_uses', 'is', null), eb('uses', '<', eb.ref('max_uses'))]))
        .returning(['id', 'org_id', 'fleet_id'])
        .executeTakeFirst();
      if (!key) throw provisioningKeyRefused();
      orgId = key.org_id;
      // The key the device generated, then the device (uuid, type, limit): every check before any insert.
      const apiKeyHash = sha256Hex(input.apiKey);
      if (await deviceKeyHashTaken(trx, apiKeyHash))
        throw new AppError('conflict', 'that api_key is already in use: generate another one');
      const device = await insertDevice(trx, {
        fleet: { id: key.fleet_id, org_id: key.org_id },
        deviceType: input.deviceType,
        uuid,
        name: input.name,
        osVersion: input.osVersion,
        agentVersion: input.agentVersion,
        admission: 'admitted',
      });
      await insertDeviceKey(trx, device.id, apiKeyHash, 'register', now);
      await appendAuditEvent(
        trx,
        {
          principal: {
            type: 'device',
            deviceId: device.id,
            uuid,
            orgId: key.org_id,
            fleetId: key.fleet_id,
            credential: { type: 'device_key', id: 0 },
          },
          sourceIp,
        },
        {
          orgId: key.org_id,
          action: 'device.register',
          resourceType: 'device',
          resourceId: uuid,
          outcome: 'success',
          details: { provisioningKeyId: key.id, fleetId: key.fleet_id, deviceType: input.deviceType },
        },
      );
      return { id: device.id, uuid };
    });
    // Committed outside `write()` (the device is its own actor, known only inside): told as every write is, so
    // device lists and their totals take the new device in at once.
    deps.events.emit('write.committed', { action: 'device.register', resourceType: 'device', orgId });
    return registered;
  } catch (err) {
    throw rethrowConstraint(err);
  }
}

/**
 * The device `uuid` of the provisioning key's fleet, when it holds no key of its own yet: balenaOS connects its VPN
 * with the fleet's provisioning key until the supervisor has exchanged it for the device's own key (its
 * `/var/volatile/vpn-auth` holds `apiKey` while config.json has one). Once the device holds a live key, the
 * provisioning key no longer stands for it: whoever holds a fleet's provisioning key cannot pose as its devices.
 * Reads only: a use is counted when a device registers, not when it connects.
 */
export async function deviceAwaitingOwnKey(
  deps: ServiceDeps,
  uuid: string,
  provisioningKey: string,
): Promise<{ id: number; uuid: string; org_id: number; fleet_id: number } | undefined> {
  const now = Date.now();
  return deps.db
    .selectFrom('devices')
    .innerJoin('provisioning_keys', 'provisioning_keys.fleet_id', 'devices.fleet_id')
    .select(['devices.id', 'devices.uuid', 'devices.org_id', 'devices.fleet_id'])
    .where('provisioning_keys.key_hash', '=', sha256Hex(provisioningKey))
    .where('provisioning_keys.revoked_at', 'is', null)
    .where((eb) =>
      eb.or([eb('provisioning_keys.expires_at', 'is', null), eb('provisioning_keys.expires_at', '>', now)]),
    )
    .where('devices.uuid', '=', uuid.toLowerCase())
    .where('devices.decommissioned_at', 'is', null)
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('device_keys')
            .select('device_keys.id')
            .whereRef('device_keys.device_id', '=', 'devices.id')
            .where('device_keys.revoked_at', 'is', null),
        ),
      ),
    )
    .executeTakeFirst();
}

/** What a key exchange did: stored the key, or found it already the device's (a retry). */
export type KeyExchangeOutcome = 'stored' | 'already_stored';

/**
 * balena's key exchange (`POST /api-key/device/:deviceId/device-key`): the holder of a fleet's provisioning key
 * gives a device of that fleet the key the device generated. balena's supervisor calls it when its registration
 * answered 409 (the uuid exists: a device pre-registered, or registered by an earlier attempt whose answer was
 * lost), when it was registered but never saved its device id, or when it still holds the provisioning key after
 * registering (balena-supervisor src/lib/api-helper.ts `provision`, `exchangeKeyAndGetDevice`).
 *
 * balena lets a provisioning key add a key to any device of its fleet, whatever keys it has. Here that would let
 * anyone holding the key baked into every image of a fleet take over any device of it, so it is allowed only:
 * - with a provisioning key that could register a device now (not revoked, not expired, not used up), and it
 *   counts as one use, as a registration does;
 * - for a device of that key's fleet, not decommissioned (another fleet's device answers as a missing one);
 * - to a device that never had a credential: no device key (live or revoked: a key an admin revoked is replaced
 *   by an admin, not by whoever holds the fleet's key) and no accepted auth set.
 * Sending the key the device already has is a retry, answered as a success without writing anything. Any other
 * device that has a key gets 409, audited as denied.
 */
export async function exchangeDeviceKey(
  deps: ServiceDeps,
  provisioningKey: string,
  deviceId: number,
  apiKey: string,
  sourceIp: string | null,
): Promise<KeyExchangeOutcome> {
  const keyHash = sha256Hex(provisioningKey);
  const apiKeyHash = sha256Hex(apiKey);
  let refusal: { orgId: number; uuid: string; provisioningKeyId: number } | undefined;
  try {
    let orgId: number | null = null;
    const outcome = await deps.db.transaction().execute(async (trx): Promise<KeyExchangeOutcome> => {
      const now = Date.now();
      const key = await trx
        .selectFrom('provisioning_keys')
        .select(['id', 'org_id', 'fleet_id'])
        .where('key_hash', '=', keyHash)
        .where('revoked_at', 'is', null)
        .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
        .where((eb) => eb.or([eb('max_uses', 'is', null), eb('uses', '<', eb.ref('max_uses'))]))
        .executeTakeFirst();
      if (!key) throw provisioningKeyRefused();
      // Updating the device first locks its row (PostgreSQL): two exchanges for one device run one after the
      // other, and the second sees the key the first stored.
      const device = await trx
        .updateTable('devices')
        .set({ updated_at: now })
        .where('id', '=', deviceId)
        .where('fleet_id', '=', key.fleet_id)
        .where('decommissioned_at', 'is', null)
        .returning(['id', 'uuid', 'org_id', 'fleet_id'])
        .executeTakeFirst();
      if (!device) throw notFound('device');
      orgId = device.org_id;
      const keys = await trx
        .selectFrom('device_keys')
        .select(['key_hash', 'revoked_at'])
        .where('device_id', '=', device.id)
        .execute();
      if (keys.some((k) => k.revoked_at === null && k.key_hash === apiKeyHash)) return 'already_stored';
      const acceptedSet = await trx
        .selectFrom('auth_sets')
        .select('id')
        .where('device_id', '=', device.id)
        .where('status', '=', 'accepted')
        .executeTakeFirst();
      if (keys.length > 0 || acceptedSet) {
        refusal = { orgId: device.org_id, uuid: device.uuid, provisioningKeyId: key.id };
        throw new AppError(
          'conflict',
          'the device already has a credential: a provisioning key may only give a key to a device that never had one ' +
            '(an admin replaces a device key: fleetgate import balena-config, or the recovery queue)',
        );
      }
      if (await deviceKeyHashTaken(trx, apiKeyHash))
        throw new AppError('conflict', 'that apiKey is already in use: generate another one');
      // Counted as a registration is: the same conditions, so a key used up meanwhile is refused.
      const used = await trx
        .updateTable('provisioning_keys')
        .set((eb) => ({ uses: eb('uses', '+', 1), last_used_at: now }))
        .where('id', '=', key.id)
        .where('revoked_at', 'is', null)
        .where((eb) => eb.or([eb('max_uses', 'is', null), eb('uses', '<', eb.ref('max_uses'))]))
        .executeTakeFirst();
      if (Number(used.numUpdatedRows) === 0) throw provisioningKeyRefused();
      const keyId = await insertDeviceKey(trx, device.id, apiKeyHash, 'exchange', now);
      await appendAuditEvent(
        trx,
        {
          principal: {
            type: 'device',
            deviceId: device.id,
            uuid: device.uuid,
            orgId: device.org_id,
            fleetId: device.fleet_id,
            credential: { type: 'device_key', id: keyId },
          },
          sourceIp,
        },
        {
          orgId: device.org_id,
          action: 'device.key.exchange',
          resourceType: 'device',
          resourceId: device.uuid,
          outcome: 'success',
          details: { provisioningKeyId: key.id, keyId },
        },
      );
      return 'stored';
    });
    if (outcome === 'stored')
      deps.events.emit('write.committed', { action: 'device.key.exchange', resourceType: 'device', orgId });
    return outcome;
  } catch (err) {
    if (refusal) {
      const { orgId, uuid, provisioningKeyId } = refusal;
      await appendAuditEvent(
        deps.db,
        { principal: { type: 'anonymous' }, sourceIp },
        {
          orgId,
          action: 'device.key.exchange',
          resourceType: 'device',
          resourceId: uuid,
          outcome: 'denied',
          details: { provisioningKeyId, reason: 'the device already has a credential' },
        },
      ).catch((e) => deps.log.error({ err: e }, 'could not record a refused key exchange in the audit log'));
    }
    throw rethrowConstraint(err);
  }
}

/**
 * The id of the device `uuid` as a provisioning key of its fleet may see it (not revoked, not expired, the
 * device not decommissioned), or undefined; throws the usual refusal for a key that is no usable provisioning
 * key at all. balena's supervisor looks its device up this way before a key exchange (`fetchDevice`).
 */
export async function deviceIdForProvisioningKey(
  deps: ServiceDeps,
  provisioningKey: string,
  uuid: string,
): Promise<number | undefined> {
  const now = Date.now();
  const key = await deps.db
    .selectFrom('provisioning_keys')
    .select(['fleet_id'])
    .where('key_hash', '=', sha256Hex(provisioningKey))
    .where('revoked_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .executeTakeFirst();
  if (!key) throw provisioningKeyRefused();
  const device = await deps.db
    .selectFrom('devices')
    .select('id')
    .where('uuid', '=', uuid.toLowerCase())
    .where('fleet_id', '=', key.fleet_id)
    .where('decommissioned_at', 'is', null)
    .executeTakeFirst();
  return device?.id;
}
