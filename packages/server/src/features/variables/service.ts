import type { Actor } from '../../infra/access/index.ts';
import type { Db } from '../../infra/db/index.ts';
import { notFound } from '../../infra/errors/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import type { SecretKeyRing } from '../../infra/secrets/index.ts';
import { type ServiceDeps, write } from '../../infra/service/index.ts';
import { type DeviceRef, deviceForAction } from '../devices/index.ts';
import { fleetForAction } from '../fleets/index.ts';
import { bumpVariablesRevision } from './changes.ts';
import { plainValue, storedValue } from './sealing.ts';

/**
 * Environment variables for devices: fleet-wide values and per-device values, the device's value overriding
 * the fleet's. A secret variable is write-only: its value is delivered to the device but never returned by
 * the API (answers show `value: null`).
 */
export interface VariableView {
  name: string;
  value: string | null;
  secret: boolean;
  updatedAt: string;
}

export interface EffectiveVariableView extends VariableView {
  /** Where the effective value comes from. */
  source: 'device' | 'fleet';
  /** For a device value: it hides a fleet value of the same name. */
  overridesFleet: boolean;
}

/** What a device is sent: its effective variables (secrets included: they are for the device) and their revision. */
export interface DeviceVariables {
  /** Changes whenever the set may have changed: the later of the device's and its fleet's last change. */
  revision: number;
  variables: Record<string, string>;
}

/**
 * The effective variables of several devices at once (the device's value wins over its fleet's), for delivery
 * to the devices themselves, secret values unsealed with `secrets`. No actor: the caller is the tunnel, acting
 * for the devices.
 */
export async function effectiveVariablesOf(
  db: Db,
  secrets: SecretKeyRing,
  deviceIds: number[],
): Promise<Map<number, DeviceVariables>> {
  const out = new Map<number, DeviceVariables>();
  for (let i = 0; i < deviceIds.length; i += 500) {
    const ids = deviceIds.slice(i, i + 500);
    const devices = await db
      .selectFrom('devices')
      .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
      .select([
        'devices.id',
        'devices.fleet_id',
        'devices.variables_changed_at as device_rev',
        'fleets.variables_changed_at as fleet_rev',
      ])
      .where('devices.id', 'in', ids)
      .execute();
    const fleetIds = [...new Set(devices.map((d) => d.fleet_id))];
    const [own, fleet] = await Promise.all([
      db
        .selectFrom('device_variables')
        .select(['device_id', 'name', 'value', 'key_id'])
        .where('device_id', 'in', ids)
        .execute(),
      fleetIds.length
        ? db
            .selectFrom('fleet_variables')
            .select(['fleet_id', 'name', 'value', 'key_id'])
            .where('fleet_id', 'in', fleetIds)
            .execute()
        : [],
    ]);
    // Built as Maps, then turned into objects with Object.fromEntries, which defines every name as its own
    // property (`variables[name] = value` would set the prototype for `__proto__` and drop the variable).
    const fleetValues = fleet.map((f) => ({ ...f, value: plainValue(secrets, { fleetId: f.fleet_id }, f) }));
    const sets = new Map<number, Map<string, string>>();
    for (const d of devices) {
      const variables = new Map<string, string>();
      for (const f of fleetValues) if (f.fleet_id === d.fleet_id) variables.set(f.name, f.value);
      sets.set(d.id, variables);
    }
    for (const o of own)
      sets.get(o.device_id)?.set(o.name, plainValue(secrets, { deviceId: o.device_id }, o));
    for (const d of devices) {
      out.set(d.id, {
        revision: Math.max(d.device_rev ?? 0, d.fleet_rev ?? 0),
        variables: Object.fromEntries(sets.get(d.id)!),
      });
    }
  }
  return out;
}

function variableView(r: { name: string; value: string; secret: number; updated_at: number }): VariableView {
  return {
    name: r.name,
    value: r.secret ? null : r.value,
    secret: r.secret === 1,
    updatedAt: iso(r.updated_at),
  };
}

export async function listFleetVariables(
  deps: ServiceDeps,
  actor: Actor,
  fleetId: number,
): Promise<VariableView[]> {
  await fleetForAction(deps.db, actor, fleetId, 'fleet.read');
  const rows = await deps.db
    .selectFrom('fleet_variables')
    .selectAll()
    .where('fleet_id', '=', fleetId)
    .orderBy('name')
    .execute();
  return rows.map(variableView);
}

export async function setFleetVariable(
  deps: ServiceDeps,
  actor: Actor,
  fleetId: number,
  name: string,
  input: { value: string; secret?: boolean | undefined },
): Promise<VariableView> {
  const view = await write(
    deps,
    actor,
    { action: 'fleet.variable.set', resourceType: 'fleet' },
    async (trx) => {
      const fleet = await fleetForAction(trx, actor, fleetId, 'fleet.variable.write');
      const row = {
        fleet_id: fleetId,
        name,
        ...storedValue(deps.secrets, { fleetId }, name, input.value, !!input.secret),
        secret: input.secret ? 1 : 0,
        updated_at: Date.now(),
      };
      await trx
        .insertInto('fleet_variables')
        .values(row)
        .onConflict((oc) =>
          oc.columns(['fleet_id', 'name']).doUpdateSet({
            value: row.value,
            key_id: row.key_id,
            secret: row.secret,
            updated_at: row.updated_at,
          }),
        )
        .execute();
      await bumpVariablesRevision(trx, { fleetId });
      return {
        value: variableView(row),
        orgId: fleet.org_id,
        resourceId: fleetId,
        details: { name, secret: !!input.secret },
      };
    },
  );
  deps.events.emit('variables.changed', { fleetId });
  return view;
}

export async function deleteFleetVariable(
  deps: ServiceDeps,
  actor: Actor,
  fleetId: number,
  name: string,
): Promise<void> {
  await write(deps, actor, { action: 'fleet.variable.delete', resourceType: 'fleet' }, async (trx) => {
    const fleet = await fleetForAction(trx, actor, fleetId, 'fleet.variable.write');
    const result = await trx
      .deleteFrom('fleet_variables')
      .where('fleet_id', '=', fleetId)
      .where('name', '=', name)
      .executeTakeFirst();
    if (!Number(result.numDeletedRows)) throw notFound('variable');
    await bumpVariablesRevision(trx, { fleetId });
    return { value: undefined, orgId: fleet.org_id, resourceId: fleetId, details: { name } };
  });
  deps.events.emit('variables.changed', { fleetId });
}

/** The device's effective variables: its own values, then the fleet values it does not override. */
export async function listDeviceVariables(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
): Promise<EffectiveVariableView[]> {
  const device = await deviceForAction(deps.db, actor, ref, 'device.read');
  const [own, fleet] = await Promise.all([
    deps.db.selectFrom('device_variables').selectAll().where('device_id', '=', device.id).execute(),
    deps.db.selectFrom('fleet_variables').selectAll().where('fleet_id', '=', device.fleet_id).execute(),
  ]);
  const fleetNames = new Set(fleet.map((f) => f.name));
  const ownNames = new Set(own.map((o) => o.name));
  const out: EffectiveVariableView[] = [
    ...own.map((o) => ({
      ...variableView(o),
      source: 'device' as const,
      overridesFleet: fleetNames.has(o.name),
    })),
    ...fleet
      .filter((f) => !ownNames.has(f.name))
      .map((f) => ({ ...variableView(f), source: 'fleet' as const, overridesFleet: false })),
  ];
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export async function setDeviceVariable(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
  name: string,
  input: { value: string; secret?: boolean | undefined },
): Promise<VariableView> {
  const { view, deviceId } = await write(
    deps,
    actor,
    { action: 'device.variable.set', resourceType: 'device' },
    async (trx) => {
      const device = await deviceForAction(trx, actor, ref, 'device.variable.write');
      const row = {
        device_id: device.id,
        name,
        ...storedValue(deps.secrets, { deviceId: device.id }, name, input.value, !!input.secret),
        secret: input.secret ? 1 : 0,
        updated_at: Date.now(),
      };
      await trx
        .insertInto('device_variables')
        .values(row)
        .onConflict((oc) =>
          oc.columns(['device_id', 'name']).doUpdateSet({
            value: row.value,
            key_id: row.key_id,
            secret: row.secret,
            updated_at: row.updated_at,
          }),
        )
        .execute();
      await bumpVariablesRevision(trx, { deviceId: device.id });
      return {
        value: { view: variableView(row), deviceId: device.id },
        orgId: device.org_id,
        resourceId: device.uuid,
        details: { name, secret: !!input.secret },
      };
    },
  );
  deps.events.emit('variables.changed', { deviceId });
  return view;
}

export async function deleteDeviceVariable(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
  name: string,
): Promise<void> {
  const deviceId = await write(
    deps,
    actor,
    { action: 'device.variable.delete', resourceType: 'device' },
    async (trx) => {
      const device = await deviceForAction(trx, actor, ref, 'device.variable.write');
      const result = await trx
        .deleteFrom('device_variables')
        .where('device_id', '=', device.id)
        .where('name', '=', name)
        .executeTakeFirst();
      if (!Number(result.numDeletedRows)) throw notFound('variable');
      await bumpVariablesRevision(trx, { deviceId: device.id });
      return { value: device.id, orgId: device.org_id, resourceId: device.uuid, details: { name } };
    },
  );
  deps.events.emit('variables.changed', { deviceId });
}
