import type { Selectable } from 'kysely';
import type { FleetTable } from '../../db/schema.ts';
import { type Actor, authorize, readScope, scopeCondition } from '../../infra/access/index.ts';
import { containsText, type Db } from '../../infra/db/index.ts';
import { AppError, notFound } from '../../infra/errors/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import { type Page, type PageRequest, type ServiceDeps, write } from '../../infra/service/index.ts';
import { assertDeviceType } from '../device-types/service.ts';
import { deleteTag, fleetTags, putTag, tagsOf } from '../tags/service.ts';

export interface FleetView {
  id: number;
  orgId: number;
  name: string;
  description: string;
  defaultDeviceType: string | null;
  deviceCount: number;
  tags: Record<string, string>;
  createdAt: string;
  updatedAt: string;
}

export type FleetRow = Selectable<FleetTable>;

function fleetsWithCounts(db: Db) {
  return db
    .selectFrom('fleets')
    .selectAll('fleets')
    .select((eb) =>
      eb
        .selectFrom('devices')
        .select((e) => e.fn.countAll<number>().as('n'))
        .whereRef('devices.fleet_id', '=', 'fleets.id')
        .as('device_count'),
    );
}

async function fleetViews(
  db: Db,
  rows: (FleetRow & { device_count: number | null })[],
): Promise<FleetView[]> {
  const tags = await tagsOf(
    db,
    fleetTags,
    rows.map((r) => r.id),
  );
  return rows.map((r) => ({
    id: r.id,
    orgId: r.org_id,
    name: r.name,
    description: r.description,
    defaultDeviceType: r.default_device_type,
    deviceCount: Number(r.device_count ?? 0),
    tags: tags.get(r.id) ?? {},
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
  }));
}

/**
 * The fleet, after checking the actor may do `action` on it. Other services (devices, variables) use this to
 * reach a fleet; an unknown fleet and one the actor may not see both answer 404.
 */
export async function fleetForAction(
  db: Db,
  actor: Actor,
  fleetId: number,
  action: Parameters<typeof authorize>[1],
): Promise<FleetRow> {
  const row = await db.selectFrom('fleets').selectAll().where('id', '=', fleetId).executeTakeFirst();
  if (!row) throw notFound('fleet');
  authorize(actor.principal, action, { orgId: row.org_id, fleetId: row.id }, 'fleet');
  return row;
}

export type FleetSort = 'name' | '-name' | 'createdAt' | '-createdAt';

export async function listFleets(
  deps: ServiceDeps,
  actor: Actor,
  q: PageRequest & { orgId?: number | undefined; q?: string | undefined; sort?: FleetSort | undefined },
): Promise<Page<FleetView>> {
  let query = deps.db
    .selectFrom('fleets')
    .where(scopeCondition(readScope(actor.principal, 'fleet.read'), 'fleets.org_id', 'fleets.id'));
  if (q.orgId !== undefined) query = query.where('fleets.org_id', '=', q.orgId);
  const text = q.q;
  if (text) query = query.where(containsText('fleets.name', text));
  const { total } = await query
    .select((eb) => eb.fn.countAll<number>().as('total'))
    .executeTakeFirstOrThrow();
  const sort = q.sort ?? 'name';
  const column = sort.endsWith('name') ? 'fleets.name' : 'fleets.id';
  const rows = await fleetsWithCounts(deps.db)
    .where('fleets.id', 'in', query.select('fleets.id'))
    .orderBy(column, sort.startsWith('-') ? 'desc' : 'asc')
    .orderBy('fleets.id')
    .limit(q.limit)
    .offset((q.page - 1) * q.limit)
    .execute();
  return { items: await fleetViews(deps.db, rows), total: Number(total), page: q.page, limit: q.limit };
}

export async function getFleet(deps: ServiceDeps, actor: Actor, fleetId: number): Promise<FleetView> {
  await fleetForAction(deps.db, actor, fleetId, 'fleet.read');
  const row = await fleetsWithCounts(deps.db).where('fleets.id', '=', fleetId).executeTakeFirstOrThrow();
  return (await fleetViews(deps.db, [row]))[0]!;
}

async function assertNameFree(trx: Db, orgId: number, name: string, exceptId?: number): Promise<void> {
  const taken = await trx
    .selectFrom('fleets')
    .select('id')
    .where('org_id', '=', orgId)
    .where('name', '=', name)
    .$if(exceptId !== undefined, (qb) => qb.where('id', '!=', exceptId!))
    .executeTakeFirst();
  if (taken) throw new AppError('conflict', `the organization already has a fleet named ${name}`);
}

export async function createFleet(
  deps: ServiceDeps,
  actor: Actor,
  input: {
    orgId: number;
    name: string;
    description?: string | undefined;
    defaultDeviceType?: string | undefined;
  },
): Promise<FleetView> {
  const id = await write(deps, actor, { action: 'fleet.create', resourceType: 'fleet' }, async (trx) => {
    authorize(actor.principal, 'fleet.create', { orgId: input.orgId }, 'organization');
    await assertNameFree(trx, input.orgId, input.name);
    if (input.defaultDeviceType) await assertDeviceType(trx, input.orgId, input.defaultDeviceType);
    const now = Date.now();
    const row = await trx
      .insertInto('fleets')
      .values({
        org_id: input.orgId,
        name: input.name,
        description: input.description ?? '',
        default_device_type: input.defaultDeviceType ?? null,
        created_at: now,
        updated_at: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return { value: row.id, orgId: input.orgId, resourceId: row.id, details: { name: input.name } };
  });
  return getFleet(deps, actor, id);
}

/** The name of the fleet made for an organization's devices when it has none (Mender's flow names no fleet). */
export const DEFAULT_FLEET_NAME = 'default';

async function oldestFleetId(db: Db, orgId: number): Promise<number | undefined> {
  const row = await db
    .selectFrom('fleets')
    .select('id')
    .where('org_id', '=', orgId)
    .orderBy('created_at')
    .orderBy('id')
    .executeTakeFirst();
  return row?.id;
}

/**
 * The fleet an organization's devices go to when nobody names one: its oldest fleet, or, when it has none yet,
 * a fleet named `default` made now by `createFleet` (so checked, audited and shown like any other). Mender's
 * management flow accepts and preauthorizes devices without fleets; on a fresh server they land here.
 */
export async function defaultFleetFor(deps: ServiceDeps, actor: Actor, orgId: number): Promise<number> {
  const oldest = await oldestFleetId(deps.db, orgId);
  if (oldest !== undefined) return oldest;
  try {
    const made = await createFleet(deps, actor, {
      orgId,
      name: DEFAULT_FLEET_NAME,
      description: 'made for the devices accepted without naming a fleet (the Mender management flow)',
    });
    return made.id;
  } catch (err) {
    // Two devices accepted at once on a fresh server: the other request made it.
    if (err instanceof AppError && err.code === 'conflict') {
      const made = await oldestFleetId(deps.db, orgId);
      if (made !== undefined) return made;
    }
    throw err;
  }
}

export async function updateFleet(
  deps: ServiceDeps,
  actor: Actor,
  fleetId: number,
  input: {
    name?: string | undefined;
    description?: string | undefined;
    defaultDeviceType?: string | null | undefined;
  },
): Promise<FleetView> {
  await write(deps, actor, { action: 'fleet.update', resourceType: 'fleet' }, async (trx) => {
    const fleet = await fleetForAction(trx, actor, fleetId, 'fleet.update');
    if (input.name !== undefined) await assertNameFree(trx, fleet.org_id, input.name, fleetId);
    if (input.defaultDeviceType) await assertDeviceType(trx, fleet.org_id, input.defaultDeviceType);
    await trx
      .updateTable('fleets')
      .set({
        ...(input.name !== undefined ? { name: input.name } : {}),
        ...(input.description !== undefined ? { description: input.description } : {}),
        ...(input.defaultDeviceType !== undefined ? { default_device_type: input.defaultDeviceType } : {}),
        updated_at: Date.now(),
      })
      .where('id', '=', fleetId)
      .execute();
    return { value: undefined, orgId: fleet.org_id, resourceId: fleetId, details: { ...input } };
  });
  return getFleet(deps, actor, fleetId);
}

export async function deleteFleet(deps: ServiceDeps, actor: Actor, fleetId: number): Promise<void> {
  await write(deps, actor, { action: 'fleet.delete', resourceType: 'fleet' }, async (trx) => {
    const fleet = await fleetForAction(trx, actor, fleetId, 'fleet.delete');
    const { n } = await trx
      .selectFrom('devices')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('fleet_id', '=', fleetId)
      .executeTakeFirstOrThrow();
    if (Number(n) > 0)
      throw new AppError('conflict', `the fleet still has ${n} device(s): move or delete them first`);
    await trx.deleteFrom('fleets').where('id', '=', fleetId).execute();
    return { value: undefined, orgId: fleet.org_id, resourceId: fleetId, details: { name: fleet.name } };
  });
}

export async function listFleetTags(
  deps: ServiceDeps,
  actor: Actor,
  fleetId: number,
): Promise<Record<string, string>> {
  await fleetForAction(deps.db, actor, fleetId, 'fleet.read');
  return (await tagsOf(deps.db, fleetTags, [fleetId])).get(fleetId) ?? {};
}

export async function setFleetTag(
  deps: ServiceDeps,
  actor: Actor,
  fleetId: number,
  key: string,
  value: string,
): Promise<void> {
  await write(deps, actor, { action: 'fleet.tag.set', resourceType: 'fleet' }, async (trx) => {
    const fleet = await fleetForAction(trx, actor, fleetId, 'fleet.update');
    await putTag(trx, fleetTags, fleetId, key, value);
    return { value: undefined, orgId: fleet.org_id, resourceId: fleetId, details: { key, value } };
  });
}

export async function removeFleetTag(
  deps: ServiceDeps,
  actor: Actor,
  fleetId: number,
  key: string,
): Promise<void> {
  await write(deps, actor, { action: 'fleet.tag.delete', resourceType: 'fleet' }, async (trx) => {
    const fleet = await fleetForAction(trx, actor, fleetId, 'fleet.update');
    if (!(await deleteTag(trx, fleetTags, fleetId, key))) throw notFound('tag');
    return { value: undefined, orgId: fleet.org_id, resourceId: fleetId, details: { key } };
  });
}
