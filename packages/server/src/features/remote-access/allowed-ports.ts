import type { Actor } from '../../infra/access/index.ts';
import { type Db, json } from '../../infra/db/index.ts';
import { badRequest } from '../../infra/errors/index.ts';
import { type ServiceDeps, write } from '../../infra/service/index.ts';
import { type DeviceRef, deviceForAction } from '../devices/index.ts';
import { fleetForAction } from '../fleets/index.ts';
import type { DeviceReach } from '../sessions/index.ts';

/**
 * Port allow-lists: the TCP ports people may reach on a device. A device has its own list, or its fleet's, or
 * the default; the stream router checks every port stream against it, and live sessions are checked again when
 * a list changes.
 */

/** Ports people may reach when neither the device nor its fleet has a list of its own. */
export const DEFAULT_ALLOWED_PORTS: readonly number[] = [22];
/** Most ports on one allow-list. */
export const MAX_ALLOWED_PORTS = 64;

export interface AllowedPortsView {
  ports: number[];
  /** Where the list comes from: the device's own, its fleet's, or the default. */
  source: 'device' | 'fleet' | 'default';
}

function portsOf(text: string | null): number[] | null {
  return json.decode<number[]>(text);
}

/** The list that applies: the device's own, else its fleet's, else the default. */
export function effectivePorts(
  device: { allowed_ports: string | null } | null,
  fleet: { allowed_ports: string | null },
) {
  const own = device ? portsOf(device.allowed_ports) : null;
  if (own) return { ports: own, source: 'device' as const };
  const fleetPorts = portsOf(fleet.allowed_ports);
  if (fleetPorts) return { ports: fleetPorts, source: 'fleet' as const };
  return { ports: [...DEFAULT_ALLOWED_PORTS], source: 'default' as const };
}

function normalizePorts(ports: number[]): number[] {
  if (ports.length > MAX_ALLOWED_PORTS) throw badRequest(`at most ${MAX_ALLOWED_PORTS} ports`);
  return [...new Set(ports)].sort((a, b) => a - b);
}

export async function getFleetAllowedPorts(
  deps: ServiceDeps,
  actor: Actor,
  fleetId: number,
): Promise<AllowedPortsView> {
  const fleet = await fleetForAction(deps.db, actor, fleetId, 'fleet.read');
  return effectivePorts(null, fleet);
}

/** Sets the fleet's allow-list; `null` goes back to the default. */
export async function setFleetAllowedPorts(
  deps: ServiceDeps,
  actor: Actor,
  fleetId: number,
  ports: number[] | null,
): Promise<AllowedPortsView> {
  return write(deps, actor, { action: 'fleet.ports.set', resourceType: 'fleet' }, async (trx) => {
    const fleet = await fleetForAction(trx, actor, fleetId, 'ports.manage');
    const list = ports === null ? null : normalizePorts(ports);
    const allowed_ports = list === null ? null : json.encode(list);
    await trx
      .updateTable('fleets')
      .set({ allowed_ports, updated_at: Date.now() })
      .where('id', '=', fleet.id)
      .execute();
    return {
      value: effectivePorts(null, { allowed_ports }),
      orgId: fleet.org_id,
      resourceId: fleet.id,
      details: { ports: list },
    };
  });
}

/**
 * Where the device is now (its organization and fleet) and the ports people may reach on it, or undefined when
 * it is gone: what live sessions to it are checked against when devices, fleets or allow-lists change.
 */
export async function currentDeviceReach(db: Db, deviceId: number): Promise<DeviceReach | undefined> {
  const row = await db
    .selectFrom('devices')
    .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
    .select(['devices.org_id', 'devices.fleet_id', 'devices.allowed_ports'])
    .select('fleets.allowed_ports as fleet_allowed_ports')
    .where('devices.id', '=', deviceId)
    .executeTakeFirst();
  if (!row) return undefined;
  const { ports } = effectivePorts(row, { allowed_ports: row.fleet_allowed_ports });
  return { orgId: row.org_id, fleetId: row.fleet_id, ports };
}

/** The allow-list column of a device's fleet. */
export async function fleetOfDevice(db: Db, fleetId: number) {
  return db.selectFrom('fleets').select('allowed_ports').where('id', '=', fleetId).executeTakeFirstOrThrow();
}

export async function getDeviceAllowedPorts(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
): Promise<AllowedPortsView> {
  const device = await deviceForAction(deps.db, actor, ref, 'device.read');
  return effectivePorts(device, await fleetOfDevice(deps.db, device.fleet_id));
}

/**
 * Whether the caller may open streams to `port` on the device now: people who may connect to it (operators and
 * above; viewers get `forbidden`, others `not_found`) learn the device's allow-list and whether `port` is on it.
 */
export async function getPortAccess(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
  port: number,
): Promise<AllowedPortsView & { port: number; allowed: boolean }> {
  const device = await deviceForAction(deps.db, actor, ref, 'device.connect');
  const list = effectivePorts(device, await fleetOfDevice(deps.db, device.fleet_id));
  return { ...list, port, allowed: list.ports.includes(port) };
}

/** Sets the device's own allow-list; `null` goes back to its fleet's. */
export async function setDeviceAllowedPorts(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
  ports: number[] | null,
): Promise<AllowedPortsView> {
  return write(deps, actor, { action: 'device.ports.set', resourceType: 'device' }, async (trx) => {
    const device = await deviceForAction(trx, actor, ref, 'ports.manage');
    const list = ports === null ? null : normalizePorts(ports);
    const allowed_ports = list === null ? null : json.encode(list);
    await trx
      .updateTable('devices')
      .set({ allowed_ports, updated_at: Date.now() })
      .where('id', '=', device.id)
      .execute();
    const fleet = await trx
      .selectFrom('fleets')
      .select('allowed_ports')
      .where('id', '=', device.fleet_id)
      .executeTakeFirstOrThrow();
    return {
      value: effectivePorts({ allowed_ports }, fleet),
      orgId: device.org_id,
      resourceId: device.uuid,
      details: { ports: list },
    };
  });
}
