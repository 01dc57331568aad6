import { type Actor, authorize } from '../../infra/access/index.ts';
import { appendAuditEvent } from '../../infra/audit/index.ts';
import { randomToken, sha256Hex } from '../../infra/crypto/index.ts';
import { AppError, notFound } from '../../infra/errors/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import { rethrowConstraint, type ServiceDeps, write } from '../../infra/service/index.ts';
import { deviceKeyHashTaken, insertDeviceKey } from '../device-keys/service.ts';
import { insertDevice } from '../devices/service.ts';
import { fleetForAction } from '../fleets/service.ts';

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
