import { type Actor, authorize, requireUser } from '../../infra/access/index.ts';
import type { Db } from '../../infra/db/index.ts';
import { AppError, notFound } from '../../infra/errors/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import { type Page, type PageRequest, type ServiceDeps, write } from '../../infra/service/index.ts';

export interface OrgView {
  id: number;
  slug: string;
  name: string;
  createdAt: string;
  updatedAt: string;
}

type OrgRow = { id: number; slug: string; name: string; created_at: number; updated_at: number };

function orgView(row: OrgRow): OrgView {
  return {
    id: row.id,
    slug: row.slug,
    name: row.name,
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at),
  };
}

/** `My Company, Inc.` → `my-company-inc`. */
export function slugify(name: string): string {
  const slug = name
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 48);
  return slug || 'org';
}

/** Creates an organization with `ownerId` as its owner (no authorization: callers decide who may). */
export async function createOrgRecord(
  trx: Db,
  input: { name: string; slug?: string | undefined },
  ownerId: number,
): Promise<OrgView> {
  const base = input.slug ?? slugify(input.name);
  let slug = base;
  if (input.slug) {
    const taken = await trx
      .selectFrom('organizations')
      .select('id')
      .where('slug', '=', slug)
      .executeTakeFirst();
    if (taken) throw new AppError('conflict', `the slug ${slug} is taken`);
  } else {
    // A derived slug gets a numeric suffix until it is free.
    for (
      let n = 2;
      await trx.selectFrom('organizations').select('id').where('slug', '=', slug).executeTakeFirst();
      n++
    ) {
      slug = `${base}-${n}`;
    }
  }
  const now = Date.now();
  const row = await trx
    .insertInto('organizations')
    .values({ slug, name: input.name, created_at: now, updated_at: now })
    .returningAll()
    .executeTakeFirstOrThrow();
  await trx
    .insertInto('memberships')
    .values({ org_id: row.id, user_id: ownerId, role: 'owner', fleet_ids: null, created_at: now })
    .execute();
  return orgView(row);
}

export async function listOrgs(deps: ServiceDeps, actor: Actor, q: PageRequest): Promise<Page<OrgView>> {
  const p = requireUser(actor.principal);
  const ids = p.memberships.map((m) => m.orgId);
  if (!ids.length) return { items: [], total: 0, page: q.page, limit: q.limit };
  const rows = await deps.db
    .selectFrom('organizations')
    .selectAll()
    .where('id', 'in', ids)
    .orderBy('id')
    .execute();
  const start = (q.page - 1) * q.limit;
  return {
    items: rows.slice(start, start + q.limit).map(orgView),
    total: rows.length,
    page: q.page,
    limit: q.limit,
  };
}

export async function getOrg(deps: ServiceDeps, actor: Actor, orgId: number): Promise<OrgView> {
  authorize(actor.principal, 'org.read', { orgId }, 'organization');
  const row = await deps.db
    .selectFrom('organizations')
    .selectAll()
    .where('id', '=', orgId)
    .executeTakeFirst();
  if (!row) throw notFound('organization');
  return orgView(row);
}

export async function createOrg(
  deps: ServiceDeps,
  actor: Actor,
  input: { name: string; slug?: string | undefined },
): Promise<OrgView> {
  return write(deps, actor, { action: 'org.create', resourceType: 'organization' }, async (trx) => {
    const p = requireUser(actor.principal);
    const org = await createOrgRecord(trx, input, p.userId);
    return { value: org, orgId: org.id, resourceId: org.id, details: { name: org.name, slug: org.slug } };
  });
}

export async function updateOrg(
  deps: ServiceDeps,
  actor: Actor,
  orgId: number,
  input: { name?: string | undefined },
): Promise<OrgView> {
  return write(deps, actor, { action: 'org.update', resourceType: 'organization' }, async (trx) => {
    authorize(actor.principal, 'org.update', { orgId }, 'organization');
    const row = await trx
      .updateTable('organizations')
      .set({ ...(input.name !== undefined ? { name: input.name } : {}), updated_at: Date.now() })
      .where('id', '=', orgId)
      .returningAll()
      .executeTakeFirst();
    if (!row) throw notFound('organization');
    return { value: orgView(row), orgId, resourceId: orgId, details: input };
  });
}

export async function deleteOrg(deps: ServiceDeps, actor: Actor, orgId: number): Promise<void> {
  await write(deps, actor, { action: 'org.delete', resourceType: 'organization' }, async (trx) => {
    authorize(actor.principal, 'org.delete', { orgId }, 'organization');
    const fleets = await trx
      .selectFrom('fleets')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('org_id', '=', orgId)
      .executeTakeFirstOrThrow();
    if (Number(fleets.n) > 0) {
      throw new AppError(
        'conflict',
        `the organization still has ${fleets.n} fleet(s): delete or empty them first`,
      );
    }
    const row = await trx
      .deleteFrom('organizations')
      .where('id', '=', orgId)
      .returning(['id', 'name'])
      .executeTakeFirst();
    if (!row) throw notFound('organization');
    return { value: undefined, orgId, resourceId: orgId, details: { name: row.name } };
  });
}

/**
 * Serializes changes to one organization inside a transaction (PostgreSQL row lock; SQLite writes are serial
 * anyway): two owners leaving at once cannot both see the other as the remaining owner, two devices created at
 * once cannot both take the last place under the device limit. Transactions locking several organizations lock
 * them in ascending id order, so they cannot deadlock. Answers the organization's device limit as it is under
 * the lock (null: unlimited), or undefined when there is no such organization.
 */
export async function lockOrganization(
  trx: Db,
  orgId: number,
): Promise<{ deviceLimit: number | null } | undefined> {
  // A no-op UPDATE takes the row lock portably (no SELECT … FOR UPDATE in SQLite); it leaves the key alone.
  const row = await trx
    .updateTable('organizations')
    .set((eb) => ({ device_limit: eb.ref('device_limit') }))
    .where('id', '=', orgId)
    .returning('device_limit')
    .executeTakeFirst();
  return row && { deviceLimit: row.device_limit };
}

/** The organization's device limit (null: unlimited), or undefined when there is no such organization. */
export async function orgDeviceLimit(db: Db, orgId: number): Promise<number | null | undefined> {
  const row = await db
    .selectFrom('organizations')
    .select('device_limit')
    .where('id', '=', orgId)
    .executeTakeFirst();
  return row?.device_limit;
}

/**
 * Sets the organization's device limit inside the caller's write (which authorized it and audits it); answers
 * the limit it replaced, or undefined when there is no such organization. What the limit counts is the devices
 * feature's rule (`assertRoomForDevice`).
 */
export async function setOrgDeviceLimit(
  trx: Db,
  orgId: number,
  limit: number | null,
): Promise<{ from: number | null } | undefined> {
  const before = await lockOrganization(trx, orgId);
  if (!before) return undefined;
  await trx
    .updateTable('organizations')
    .set({ device_limit: limit, updated_at: Date.now() })
    .where('id', '=', orgId)
    .execute();
  return { from: before.deviceLimit };
}

/**
 * Turns recording of the organization's shell sessions on or off inside the caller's write (which authorized
 * it and audits it); answers false when there is no such organization.
 */
export async function setOrgSessionRecording(trx: Db, orgId: number, enabled: boolean): Promise<boolean> {
  const updated = await trx
    .updateTable('organizations')
    .set({ session_recording: enabled ? 1 : 0, updated_at: Date.now() })
    .where('id', '=', orgId)
    .returning('id')
    .executeTakeFirst();
  return updated !== undefined;
}
