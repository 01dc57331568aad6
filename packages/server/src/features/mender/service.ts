import {
  type Actor,
  can,
  type DevicePrincipal,
  readScope,
  scopeCondition,
} from '../../infra/access/index.ts';
import { json } from '../../infra/db/index.ts';
import { AppError, notFound } from '../../infra/errors/index.ts';
import { type ServiceDeps, write } from '../../infra/service/index.ts';
import type { Identity } from '../auth-sets/keys.ts';

/**
 * Mender's view of devices, over fleetgate's auth sets, and the Mender device inventory.
 *
 * Mender device ids: a device that exists in fleetgate (accepted, preauthorized, or a new key of a known
 * device) is its 32-hex `uuid`; an identity still waiting without a device is the 64-hex SHA-256 of its
 * canonical identity (stable across its requests). Auth set ids are fleetgate's auth set ids, as strings.
 */

export type MenderStatus = 'pending' | 'accepted' | 'rejected' | 'preauthorized';

export interface MenderAuthSet {
  id: string;
  identity_data: Identity;
  pubkey: string;
  ts: string;
  status: MenderStatus;
}

export interface MenderDevice {
  id: string;
  identity_data: Identity;
  status: MenderStatus;
  decommissioning: boolean;
  created_ts: string;
  updated_ts: string;
  auth_sets: MenderAuthSet[];
}

/** At most this many auth sets are grouped into Mender devices per request (pending queues are bounded). */
const GROUPING_MAX = 50_000;

async function groupedDevices(
  deps: ServiceDeps,
  actor: Actor,
  filter: { key?: string | undefined },
): Promise<MenderDevice[]> {
  let query = deps.db
    .selectFrom('auth_sets')
    .leftJoin('devices', 'devices.id', 'auth_sets.device_id')
    .select([
      'auth_sets.id',
      'auth_sets.identity',
      'auth_sets.identity_hash',
      'auth_sets.public_key',
      'auth_sets.status',
      'auth_sets.created_at',
      'auth_sets.updated_at',
      'devices.uuid as device_uuid',
    ])
    .where(
      scopeCondition(readScope(actor.principal, 'device.read'), 'auth_sets.org_id', 'auth_sets.fleet_id'),
    )
    .where('devices.decommissioned_at', 'is', null);
  if (filter.key !== undefined) {
    query =
      filter.key.length === 32
        ? query.where('devices.uuid', '=', filter.key)
        : query.where('auth_sets.identity_hash', '=', filter.key).where('auth_sets.device_id', 'is', null);
  }
  const rows = await query.orderBy('auth_sets.id').limit(GROUPING_MAX).execute();
  const devices = new Map<string, MenderDevice & { created: number; updated: number }>();
  for (const r of rows) {
    const key = r.device_uuid ?? r.identity_hash;
    const identity = json.decode<Identity>(r.identity) ?? {};
    let d = devices.get(key);
    if (!d) {
      d = {
        id: key,
        identity_data: identity,
        status: r.status,
        decommissioning: false,
        created_ts: '',
        updated_ts: '',
        auth_sets: [],
        created: r.created_at,
        updated: r.updated_at,
      };
      devices.set(key, d);
    }
    d.created = Math.min(d.created, r.created_at);
    d.updated = Math.max(d.updated, r.updated_at);
    d.auth_sets.push({
      id: String(r.id),
      identity_data: identity,
      pubkey: r.public_key,
      ts: new Date(r.created_at).toISOString(),
      status: r.status,
    });
  }
  const order: MenderStatus[] = ['accepted', 'preauthorized', 'pending', 'rejected'];
  return [...devices.values()].map(({ created, updated, ...d }) => ({
    ...d,
    status: order.find((s) => d.auth_sets.some((a) => a.status === s)) ?? 'rejected',
    created_ts: new Date(created).toISOString(),
    updated_ts: new Date(updated).toISOString(),
  }));
}

export async function listMenderDevices(
  deps: ServiceDeps,
  actor: Actor,
  q: { status?: MenderStatus | undefined; page: number; perPage: number },
): Promise<{ items: MenderDevice[]; total: number }> {
  const all = (await groupedDevices(deps, actor, {})).filter((d) => !q.status || d.status === q.status);
  const start = (q.page - 1) * q.perPage;
  return { items: all.slice(start, start + q.perPage), total: all.length };
}

export async function getMenderDevice(deps: ServiceDeps, actor: Actor, id: string): Promise<MenderDevice> {
  const [device] = await groupedDevices(deps, actor, { key: id.toLowerCase() });
  if (!device) throw notFound('device');
  return device;
}

/** The auth set `aid` of Mender device `id`, or 404. */
export async function menderAuthSetOf(
  deps: ServiceDeps,
  actor: Actor,
  id: string,
  aid: string,
): Promise<number> {
  const device = await getMenderDevice(deps, actor, id);
  const set = device.auth_sets.find((a) => a.id === aid);
  if (!set) throw notFound('auth set');
  return Number(set.id);
}

/** The organization a Mender management call without an organization acts on: the caller's first one. */
export function defaultOrgOf(actor: Actor, action: 'device.authorize' | 'org.read'): number {
  const p = actor.principal;
  if (p.type !== 'user') throw new AppError('unauthorized', 'sign in first');
  const orgs = p.memberships
    .filter((m) => can(p, action, { orgId: m.orgId }))
    .map((m) => m.orgId)
    .sort((a, b) => a - b);
  if (orgs.length === 0) throw new AppError('forbidden', `none of your memberships allows ${action}`);
  return orgs[0]!;
}

export type InventoryValue = string | number | boolean | (string | number | boolean)[];

/** Stores the device's inventory: `replace` (PUT) sets exactly these attributes, otherwise they are merged in. */
export async function updateInventory(
  deps: ServiceDeps,
  actor: Actor & { principal: DevicePrincipal },
  attributes: { name: string; value: InventoryValue }[],
  replace: boolean,
): Promise<void> {
  const device = actor.principal;
  await write(deps, actor, { action: 'device.inventory', resourceType: 'device' }, async (trx) => {
    const row = await trx
      .selectFrom('devices')
      .select(['attributes'])
      .where('id', '=', device.deviceId)
      .executeTakeFirst();
    if (!row) throw notFound('device');
    // A Map, not `object[name] = value`: every name stays an attribute, even one named like a prototype member.
    const next = new Map<string, InventoryValue>(
      replace ? [] : Object.entries(json.decode<Record<string, InventoryValue>>(row.attributes) ?? {}),
    );
    for (const a of attributes) next.set(a.name, a.value);
    await trx
      .updateTable('devices')
      .set({ attributes: json.encode(Object.fromEntries(next)), attributes_updated_at: Date.now() })
      .where('id', '=', device.deviceId)
      .execute();
    return {
      value: undefined,
      orgId: device.orgId,
      resourceId: device.uuid,
      details: { attributes: attributes.length, replace },
    };
  });
}
