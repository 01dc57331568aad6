import { randomBytes } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { DeviceTable } from '../../db/schema.ts';
import { type Action, type Actor, authorize, readScope, scopeCondition } from '../../infra/access/index.ts';
import { containsText, type Db, json } from '../../infra/db/index.ts';
import { AppError, notFound } from '../../infra/errors/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import { type Page, type PageRequest, type ServiceDeps, write } from '../../infra/service/index.ts';
import { assertDeviceType } from '../device-types/service.ts';
import { fleetForAction } from '../fleets/service.ts';
import { deleteTag, deviceTags, putTag, tagsOf } from '../tags/service.ts';
import { bumpVariablesRevision } from '../variables/changes.ts';
import { type DeviceStatus, deviceStatus, pendingAuthExpression, statusCondition } from './status.ts';

export interface DeviceView {
  id: number;
  uuid: string;
  name: string;
  orgId: number;
  fleetId: number;
  fleetName: string;
  deviceType: string;
  notes: string;
  status: DeviceStatus;
  tags: Record<string, string>;
  /** Inventory attributes reported by the device (name → value), or null before its first report. */
  attributes: Record<string, unknown> | null;
  /** Presence: the last tunnel connect and disconnect, and the last sign of life (written in batches). */
  connectedAt: string | null;
  disconnectedAt: string | null;
  lastSeenAt: string | null;
  agentVersion: string | null;
  /** The agent's last state report (hostname, OS, kernel, memory…), or null before its first. */
  state: Record<string, unknown> | null;
  stateReportedAt: string | null;
  /** What the agent answered about the last variables it applied, or null before it answered. */
  variablesApplied: { revision: number; at: string; error: string | null } | null;
  createdAt: string;
  updatedAt: string;
}

export type DeviceRow = Selectable<DeviceTable>;

/** A device named in a URL: its numeric id or its 32-hex uuid. */
export type DeviceRef = number | string;

export function parseDeviceRef(ref: string): DeviceRef {
  // A uuid may be all digits (serial numbers make such uuids): only short digit strings are ids.
  return /^\d{1,10}$/.test(ref) ? Number(ref) : ref.toLowerCase();
}

function deviceColumns(db: Db) {
  return db
    .selectFrom('devices')
    .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
    .selectAll('devices')
    .select('fleets.name as fleet_name')
    .select(pendingAuthExpression().as('pending_auth'));
}

async function deviceViews(
  db: Db,
  rows: (DeviceRow & { fleet_name: string; pending_auth: number })[],
): Promise<DeviceView[]> {
  const tags = await tagsOf(
    db,
    deviceTags,
    rows.map((r) => r.id),
  );
  return rows.map((r) => ({
    id: r.id,
    uuid: r.uuid,
    name: r.name,
    orgId: r.org_id,
    fleetId: r.fleet_id,
    fleetName: r.fleet_name,
    deviceType: r.device_type,
    notes: r.notes,
    status: deviceStatus(r),
    tags: tags.get(r.id) ?? {},
    attributes: json.decode<Record<string, unknown>>(r.attributes),
    connectedAt: iso(r.connected_at),
    disconnectedAt: iso(r.disconnected_at),
    lastSeenAt: iso(r.last_seen_at),
    agentVersion: r.agent_version,
    state: json.decode<Record<string, unknown>>(r.state),
    stateReportedAt: iso(r.state_reported_at),
    variablesApplied:
      r.variables_applied_revision === null || r.variables_applied_at === null
        ? null
        : {
            revision: r.variables_applied_revision,
            at: iso(r.variables_applied_at),
            error: r.variables_error,
          },
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
  }));
}

/** The device, after checking the actor may do `action` on it; unknown and invisible devices both answer 404. */
export async function deviceForAction(
  db: Db,
  actor: Actor,
  ref: DeviceRef,
  action: Action,
): Promise<DeviceRow> {
  const row = await db
    .selectFrom('devices')
    .selectAll()
    .where(typeof ref === 'number' ? 'id' : 'uuid', '=', ref)
    .executeTakeFirst();
  if (!row) throw notFound('device');
  authorize(actor.principal, action, { orgId: row.org_id, fleetId: row.fleet_id }, 'device');
  return row;
}

export type DeviceSort = 'name' | '-name' | 'createdAt' | '-createdAt';

export interface DeviceQuery extends PageRequest {
  orgId?: number | undefined;
  fleetId?: number | undefined;
  /** `key` (has the tag) or `key=value`. */
  tag?: string | undefined;
  /** Free text matched against name and uuid. */
  q?: string | undefined;
  status?: DeviceStatus | undefined;
  sort?: DeviceSort | undefined;
}

export async function listDevices(
  deps: ServiceDeps,
  actor: Actor,
  q: DeviceQuery,
): Promise<Page<DeviceView>> {
  let query = deps.db
    .selectFrom('devices')
    .where(scopeCondition(readScope(actor.principal, 'device.read'), 'devices.org_id', 'devices.fleet_id'));
  if (q.orgId !== undefined) query = query.where('devices.org_id', '=', q.orgId);
  if (q.fleetId !== undefined) query = query.where('devices.fleet_id', '=', q.fleetId);
  if (q.tag) {
    const eq = q.tag.indexOf('=');
    const key = eq < 0 ? q.tag : q.tag.slice(0, eq);
    const value = eq < 0 ? undefined : q.tag.slice(eq + 1);
    query = query.where('devices.id', 'in', (eb) =>
      eb
        .selectFrom('device_tags')
        .select('device_tags.device_id')
        .where('device_tags.key', '=', key)
        .$if(value !== undefined, (sq) => sq.where('device_tags.value', '=', value!)),
    );
  }
  const text = q.q;
  if (text)
    query = query.where((eb) =>
      eb.or([containsText('devices.name', text), containsText('devices.uuid', text)]),
    );
  if (q.status) query = query.where(statusCondition(q.status));

  const sort = q.sort ?? 'name';
  // The page and the total in one pass over the matching devices: `count(*) over ()` counts before the limit.
  const ids = await query
    .select((eb) => ['devices.id', eb.fn.countAll<number>().over().as('total')])
    .orderBy(sort.endsWith('name') ? 'devices.name' : 'devices.id', sort.startsWith('-') ? 'desc' : 'asc')
    .orderBy('devices.id')
    .limit(q.limit)
    .offset((q.page - 1) * q.limit)
    .execute();
  // A page past the end has no row to carry the total: only then count on its own.
  const total =
    ids[0]?.total ??
    (q.page > 1
      ? (await query.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow()).total
      : 0);
  const order = new Map(ids.map((r, i) => [r.id, i]));
  const rows = ids.length
    ? await deviceColumns(deps.db)
        .where('devices.id', 'in', [...order.keys()])
        .execute()
    : [];
  rows.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
  return { items: await deviceViews(deps.db, rows), total: Number(total), page: q.page, limit: q.limit };
}

export async function getDevice(deps: ServiceDeps, actor: Actor, ref: DeviceRef): Promise<DeviceView> {
  // The row with its fleet's name in one query, checked as deviceForAction checks it.
  const row = await deviceColumns(deps.db)
    .where(typeof ref === 'number' ? 'devices.id' : 'devices.uuid', '=', ref)
    .executeTakeFirst();
  if (!row) throw notFound('device');
  authorize(actor.principal, 'device.read', { orgId: row.org_id, fleetId: row.fleet_id }, 'device');
  return (await deviceViews(deps.db, [row]))[0]!;
}

export function newDeviceUuid(): string {
  return randomBytes(16).toString('hex');
}

/**
 * Throws `unprocessable` when the organization may not hold another (not decommissioned) device: its
 * `device_limit` is set and reached. Call it inside the transaction that creates the device; it first takes
 * the organization's row lock (a no-op UPDATE, portable to SQLite), so concurrent creations count in turn.
 */
export async function assertDeviceLimit(trx: Db, orgId: number): Promise<void> {
  const org = await trx
    .updateTable('organizations')
    .set((eb) => ({ device_limit: eb.ref('device_limit') }))
    .where('id', '=', orgId)
    .returning('device_limit')
    .executeTakeFirst();
  if (!org || org.device_limit === null) return;
  const { n } = await trx
    .selectFrom('devices')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('org_id', '=', orgId)
    .where('decommissioned_at', 'is', null)
    .executeTakeFirstOrThrow();
  if (Number(n) >= org.device_limit)
    throw new AppError('unprocessable', `the organization's device limit (${org.device_limit}) is reached`);
}

export async function createDevice(
  deps: ServiceDeps,
  actor: Actor,
  input: {
    fleetId: number;
    deviceType?: string | undefined;
    name?: string | undefined;
    uuid?: string | undefined;
    notes?: string | undefined;
  },
): Promise<DeviceView> {
  const id = await write(deps, actor, { action: 'device.create', resourceType: 'device' }, async (trx) => {
    const fleet = await fleetForAction(trx, actor, input.fleetId, 'device.create');
    const deviceType = input.deviceType ?? fleet.default_device_type;
    if (!deviceType)
      throw new AppError('bad_request', 'deviceType is required (the fleet has no default device type)');
    await assertDeviceType(trx, fleet.org_id, deviceType);
    await assertDeviceLimit(trx, fleet.org_id);
    const uuid = input.uuid?.toLowerCase() ?? newDeviceUuid();
    const existing = await trx.selectFrom('devices').select('id').where('uuid', '=', uuid).executeTakeFirst();
    if (existing) throw new AppError('conflict', `a device with uuid ${uuid} already exists`);
    const now = Date.now();
    const row = await trx
      .insertInto('devices')
      .values({
        uuid,
        org_id: fleet.org_id,
        fleet_id: fleet.id,
        name: input.name ?? `device-${uuid.slice(0, 7)}`,
        device_type: deviceType,
        notes: input.notes ?? '',
        created_at: now,
        updated_at: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return {
      value: row.id,
      orgId: fleet.org_id,
      resourceId: uuid,
      details: { fleetId: fleet.id, deviceType },
    };
  });
  return getDevice(deps, actor, id);
}

export async function updateDevice(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
  input: {
    name?: string | undefined;
    notes?: string | undefined;
    deviceType?: string | undefined;
    fleetId?: number | undefined;
  },
): Promise<DeviceView> {
  const updated = await write(
    deps,
    actor,
    { action: 'device.update', resourceType: 'device' },
    async (trx) => {
      const device = await deviceForAction(trx, actor, ref, 'device.update');
      if (input.fleetId !== undefined && input.fleetId !== device.fleet_id) {
        // Moving needs the right to add devices to the target fleet, which must be in the same organization.
        const target = await fleetForAction(trx, actor, input.fleetId, 'device.create');
        if (target.org_id !== device.org_id)
          throw new AppError('bad_request', 'a device moves only between fleets of its organization');
      }
      if (input.deviceType !== undefined) await assertDeviceType(trx, device.org_id, input.deviceType);
      await trx
        .updateTable('devices')
        .set({
          ...(input.name !== undefined ? { name: input.name } : {}),
          ...(input.notes !== undefined ? { notes: input.notes } : {}),
          ...(input.deviceType !== undefined ? { device_type: input.deviceType } : {}),
          ...(input.fleetId !== undefined ? { fleet_id: input.fleetId } : {}),
          updated_at: Date.now(),
        })
        .where('id', '=', device.id)
        .execute();
      const details: Record<string, unknown> = { ...input };
      const moved = input.fleetId !== undefined && input.fleetId !== device.fleet_id;
      // In another fleet, the device's effective variables are the new fleet's (and its own).
      if (moved) await bumpVariablesRevision(trx, { deviceId: device.id });
      if (input.fleetId !== undefined) details.fromFleetId = device.fleet_id;
      return { value: { id: device.id, moved }, orgId: device.org_id, resourceId: device.uuid, details };
    },
  );
  if (updated.moved) deps.events.emit('variables.changed', { deviceId: updated.id });
  return getDevice(deps, actor, updated.id);
}

export async function deleteDevice(deps: ServiceDeps, actor: Actor, ref: DeviceRef): Promise<void> {
  await write(deps, actor, { action: 'device.delete', resourceType: 'device' }, async (trx) => {
    const device = await deviceForAction(trx, actor, ref, 'device.delete');
    await trx.deleteFrom('devices').where('id', '=', device.id).execute();
    return {
      value: undefined,
      orgId: device.org_id,
      resourceId: device.uuid,
      details: { name: device.name },
    };
  });
}

export async function listDeviceTags(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
): Promise<Record<string, string>> {
  const device = await deviceForAction(deps.db, actor, ref, 'device.read');
  return (await tagsOf(deps.db, deviceTags, [device.id])).get(device.id) ?? {};
}

export async function setDeviceTag(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
  key: string,
  value: string,
): Promise<void> {
  await write(deps, actor, { action: 'device.tag.set', resourceType: 'device' }, async (trx) => {
    const device = await deviceForAction(trx, actor, ref, 'device.tag');
    await putTag(trx, deviceTags, device.id, key, value);
    return { value: undefined, orgId: device.org_id, resourceId: device.uuid, details: { key, value } };
  });
}

export async function removeDeviceTag(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
  key: string,
): Promise<void> {
  await write(deps, actor, { action: 'device.tag.delete', resourceType: 'device' }, async (trx) => {
    const device = await deviceForAction(trx, actor, ref, 'device.tag');
    if (!(await deleteTag(trx, deviceTags, device.id, key))) throw notFound('tag');
    return { value: undefined, orgId: device.org_id, resourceId: device.uuid, details: { key } };
  });
}
