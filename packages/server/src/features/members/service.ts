import { type Actor, authorize, membershipFor, type Role, requireUser } from '../../infra/access/index.ts';
import { type Db, json } from '../../infra/db/index.ts';
import { AppError, forbidden, notFound } from '../../infra/errors/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import { type Page, type PageRequest, type ServiceDeps, write } from '../../infra/service/index.ts';
import { lockOrganization } from '../orgs/index.ts';
import { createUserRecord, normalizeEmail } from '../users/service.ts';

export interface MemberView {
  userId: number;
  email: string;
  name: string;
  role: Role;
  fleetIds: number[] | null;
  createdAt: string;
}

function memberQuery(db: Db, orgId: number) {
  return db
    .selectFrom('memberships')
    .innerJoin('users', 'users.id', 'memberships.user_id')
    .select([
      'memberships.user_id',
      'users.email',
      'users.name',
      'memberships.role',
      'memberships.fleet_ids',
      'memberships.created_at',
    ])
    .where('memberships.org_id', '=', orgId);
}

function memberView(r: {
  user_id: number;
  email: string;
  name: string;
  role: string;
  fleet_ids: string | null;
  created_at: number;
}): MemberView {
  return {
    userId: r.user_id,
    email: r.email,
    name: r.name,
    role: r.role as Role,
    fleetIds: json.decode<number[]>(r.fleet_ids),
    createdAt: iso(r.created_at),
  };
}

/** Only owners hand out or take away the owner role. */
function checkRoleChange(actor: Actor, orgId: number, from: Role | undefined, to: Role | undefined): void {
  const mine = membershipFor(actor.principal, { orgId });
  if ((from === 'owner' || to === 'owner') && mine?.role !== 'owner') {
    throw new AppError('forbidden', 'only owners grant or change the owner role', { details: { orgId } });
  }
}

async function checkFleets(trx: Db, orgId: number, fleetIds: number[] | null | undefined): Promise<void> {
  if (!fleetIds?.length) return;
  const found = await trx
    .selectFrom('fleets')
    .select('id')
    .where('org_id', '=', orgId)
    .where('id', 'in', fleetIds)
    .execute();
  if (found.length !== new Set(fleetIds).size)
    throw new AppError('bad_request', 'fleetIds must name fleets of this organization');
}

/** Owners always hold the whole organization: an owner narrowed to some fleets could lock everyone out. */
function checkOwnerScope(role: Role, fleetIds: number[] | null | undefined): void {
  if (role === 'owner' && fleetIds?.length) {
    throw new AppError(
      'conflict',
      'owners always have the whole organization: give this person another role to narrow them to fleets',
    );
  }
}

async function ownerCount(trx: Db, orgId: number): Promise<number> {
  const { n } = await trx
    .selectFrom('memberships')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('org_id', '=', orgId)
    .where('role', '=', 'owner')
    .executeTakeFirstOrThrow();
  return Number(n);
}

export async function listMembers(
  deps: ServiceDeps,
  actor: Actor,
  orgId: number,
  q: PageRequest,
): Promise<Page<MemberView>> {
  authorize(actor.principal, 'member.read', { orgId }, 'organization');
  const { total } = await deps.db
    .selectFrom('memberships')
    .select((eb) => eb.fn.countAll<number>().as('total'))
    .where('org_id', '=', orgId)
    .executeTakeFirstOrThrow();
  const rows = await memberQuery(deps.db, orgId)
    .orderBy('memberships.id')
    .limit(q.limit)
    .offset((q.page - 1) * q.limit)
    .execute();
  return { items: rows.map(memberView), total: Number(total), page: q.page, limit: q.limit };
}

export async function addMember(
  deps: ServiceDeps,
  actor: Actor,
  orgId: number,
  input: { email: string; role: Role; fleetIds?: number[] | null | undefined; name?: string | undefined },
): Promise<MemberView & { password?: string }> {
  return write(deps, actor, { action: 'member.add', resourceType: 'membership' }, async (trx) => {
    authorize(actor.principal, 'member.manage', { orgId }, 'organization');
    checkRoleChange(actor, orgId, undefined, input.role);
    checkOwnerScope(input.role, input.fleetIds);
    await checkFleets(trx, orgId, input.fleetIds);
    const email = normalizeEmail(input.email);
    let user = await trx.selectFrom('users').select(['id']).where('email', '=', email).executeTakeFirst();
    let password: string | undefined;
    if (!user) {
      const created = await createUserRecord(trx, { email, name: input.name });
      user = { id: created.user.id };
      password = created.generatedPassword;
    }
    const exists = await trx
      .selectFrom('memberships')
      .select('id')
      .where('org_id', '=', orgId)
      .where('user_id', '=', user.id)
      .executeTakeFirst();
    if (exists) throw new AppError('conflict', `${email} is already a member: change the role with PATCH`);
    await trx
      .insertInto('memberships')
      .values({
        org_id: orgId,
        user_id: user.id,
        role: input.role,
        fleet_ids: input.fleetIds ? json.encode([...new Set(input.fleetIds)]) : null,
        created_at: Date.now(),
      })
      .execute();
    const row = await memberQuery(trx, orgId)
      .where('memberships.user_id', '=', user.id)
      .executeTakeFirstOrThrow();
    return {
      value: { ...memberView(row), ...(password ? { password } : {}) },
      orgId,
      resourceId: user.id,
      details: { email, role: input.role, fleetIds: input.fleetIds ?? null, userCreated: !!password },
    };
  });
}

export async function updateMember(
  deps: ServiceDeps,
  actor: Actor,
  orgId: number,
  userId: number,
  input: { role?: Role | undefined; fleetIds?: number[] | null | undefined },
): Promise<MemberView> {
  return write(deps, actor, { action: 'member.update', resourceType: 'membership' }, async (trx) => {
    authorize(actor.principal, 'member.manage', { orgId }, 'organization');
    await lockOrganization(trx, orgId);
    const current = await memberQuery(trx, orgId)
      .where('memberships.user_id', '=', userId)
      .executeTakeFirst();
    if (!current) throw notFound('member');
    checkRoleChange(actor, orgId, current.role as Role, input.role);
    const role = input.role ?? (current.role as Role);
    // Becoming owner widens the membership to the whole organization.
    const fleetIds = role === 'owner' && input.fleetIds === undefined ? null : input.fleetIds;
    checkOwnerScope(role, fleetIds);
    if (
      current.role === 'owner' &&
      input.role &&
      input.role !== 'owner' &&
      (await ownerCount(trx, orgId)) <= 1
    ) {
      throw new AppError(
        'conflict',
        'an organization keeps at least one owner: make someone else owner first',
      );
    }
    await checkFleets(trx, orgId, fleetIds);
    await trx
      .updateTable('memberships')
      .set({
        role,
        ...(fleetIds !== undefined
          ? { fleet_ids: fleetIds ? json.encode([...new Set(fleetIds)]) : null }
          : {}),
      })
      .where('org_id', '=', orgId)
      .where('user_id', '=', userId)
      .execute();
    const row = await memberQuery(trx, orgId)
      .where('memberships.user_id', '=', userId)
      .executeTakeFirstOrThrow();
    return { value: memberView(row), orgId, resourceId: userId, details: { ...input } };
  });
}

export async function removeMember(
  deps: ServiceDeps,
  actor: Actor,
  orgId: number,
  userId: number,
): Promise<void> {
  await write(deps, actor, { action: 'member.remove', resourceType: 'membership' }, async (trx) => {
    const p = requireUser(actor.principal);
    // Anyone may leave an organization; removing others needs member.manage.
    if (p.userId !== userId) authorize(p, 'member.manage', { orgId }, 'organization');
    else if (!membershipFor(p, { orgId })) throw notFound('organization');
    await lockOrganization(trx, orgId);
    const current = await memberQuery(trx, orgId)
      .where('memberships.user_id', '=', userId)
      .executeTakeFirst();
    if (!current) throw notFound('member');
    if (current.role === 'owner') {
      if (p.userId !== userId && membershipFor(p, { orgId })?.role !== 'owner')
        throw forbidden('only owners remove owners');
      if ((await ownerCount(trx, orgId)) <= 1)
        throw new AppError('conflict', 'an organization keeps at least one owner');
    }
    await trx.deleteFrom('memberships').where('org_id', '=', orgId).where('user_id', '=', userId).execute();
    return { value: undefined, orgId, resourceId: userId, details: { email: current.email } };
  });
}
