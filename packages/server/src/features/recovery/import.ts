import type { Actor } from '../../infra/access/index.ts';
import { sha256Hex } from '../../infra/crypto/index.ts';
import { AppError } from '../../infra/errors/index.ts';
import { type ServiceDeps, write } from '../../infra/service/index.ts';
import { insertDeviceKey } from '../device-keys/service.ts';
import { insertDevice } from '../devices/index.ts';
import { type FleetRow, fleetForAction } from '../fleets/index.ts';
import { lockOrganization } from '../orgs/index.ts';

/**
 * Bulk restore of balena devices from their `config.json` (uuid + deviceApiKey): each item becomes a device
 * in the given fleet whose key works unchanged (origin `import`). Running the same import twice is harmless:
 * a device that already holds that uuid and key is `present`.
 */

/** Items accepted per call. */
export const IMPORT_BATCH_MAX = 500;

export interface ImportItem {
  uuid: string;
  apiKey: string;
  fleetId: number;
  deviceType?: string | undefined;
  name?: string | undefined;
}

const TAKEN = 'this uuid or key is already in use';

export type ImportOutcome = 'created' | 'present' | 'failed';

export interface ImportResult {
  uuid: string;
  outcome: ImportOutcome;
  deviceId?: number;
  reason?: string;
}

export async function importDevices(
  deps: ServiceDeps,
  actor: Actor,
  items: ImportItem[],
): Promise<{ items: ImportResult[] }> {
  return write(deps, actor, { action: 'device.import', resourceType: 'device' }, async (trx) => {
    const fleets = new Map<number, FleetRow | AppError>();
    const fleetOf = async (fleetId: number) => {
      if (!fleets.has(fleetId)) {
        try {
          fleets.set(fleetId, await fleetForAction(trx, actor, fleetId, 'device.create'));
        } catch (err) {
          if (!(err instanceof AppError)) throw err;
          fleets.set(fleetId, err);
        }
      }
      return fleets.get(fleetId)!;
    };
    // A caller who may create devices in none of the named fleets is refused outright (403, or 404 for
    // fleets they cannot see), as any other write; per-item failures are for mixed batches.
    const resolved = await Promise.all([...new Set(items.map((i) => i.fleetId))].map(fleetOf));
    const refusal = resolved.find((fleet) => fleet instanceof AppError);
    if (refusal && resolved.every((fleet) => fleet instanceof AppError)) throw refusal;
    const orgIds = [
      ...new Set(resolved.flatMap((fleet) => (fleet instanceof AppError ? [] : [fleet.org_id]))),
    ];
    for (const orgId of orgIds.sort((a, b) => a - b)) await lockOrganization(trx, orgId);
    const results: ImportResult[] = [];
    const seenUuids = new Set<string>();
    const seenKeys = new Set<string>();
    const orgs = new Set<number>();
    const now = Date.now();
    // Every check runs before its insert, so no statement fails and aborts the transaction (PostgreSQL).
    for (const item of items) {
      const uuid = item.uuid.toLowerCase();
      const keyHash = sha256Hex(item.apiKey);
      const failed = (reason: string) => results.push({ uuid, outcome: 'failed', reason });
      if (seenUuids.has(uuid) || seenKeys.has(keyHash)) {
        failed('the same uuid or key appears twice in this import');
        continue;
      }
      seenUuids.add(uuid);
      seenKeys.add(keyHash);
      const fleet = await fleetOf(item.fleetId);
      if (fleet instanceof AppError) {
        failed(`fleet ${item.fleetId}: ${fleet.message}`);
        continue;
      }
      const existing = await trx
        .selectFrom('devices')
        .select(['id', 'org_id'])
        .where('uuid', '=', uuid)
        .executeTakeFirst();
      const keyOwner = await trx
        .selectFrom('device_keys')
        .select(['device_id', 'revoked_at'])
        .where('key_hash', '=', keyHash)
        .executeTakeFirst();
      // Another organization's devices stay invisible: one neutral answer for a taken uuid or key.
      if (existing && existing.org_id !== fleet.org_id) {
        failed(TAKEN);
        continue;
      }
      if (existing) {
        if (keyOwner && keyOwner.device_id === existing.id && keyOwner.revoked_at === null)
          results.push({ uuid, outcome: 'present', deviceId: existing.id });
        else failed('a device with this uuid exists in this organization with another key');
        continue;
      }
      if (keyOwner) {
        failed(TAKEN);
        continue;
      }
      const deviceType = item.deviceType ?? fleet.default_device_type;
      if (!deviceType) {
        failed('no device type: the config has none and the fleet has no default');
        continue;
      }
      let device: { id: number };
      try {
        device = await insertDevice(trx, { fleet, deviceType, uuid, name: item.name, admission: 'admitted' });
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        failed(err.message);
        continue;
      }
      await insertDeviceKey(trx, device.id, keyHash, 'import', now);
      orgs.add(fleet.org_id);
      results.push({ uuid, outcome: 'created', deviceId: device.id });
    }
    const count = (outcome: ImportOutcome) => results.filter((r) => r.outcome === outcome).length;
    return {
      value: { items: results },
      orgId: orgs.size === 1 ? [...orgs][0]! : null,
      resourceId: null,
      details: {
        created: results.filter((r) => r.outcome === 'created').map((r) => r.uuid),
        present: count('present'),
        failed: count('failed'),
      },
    };
  });
}
