import { type Action, type Actor, allowedActions, type Role, requireUser } from '../../infra/access/index.ts';
import { hashPassword, randomPassword, verifyPassword } from '../../infra/crypto/index.ts';
import { containsText, type Db, json } from '../../infra/db/index.ts';
import { AppError, forbidden, notFound } from '../../infra/errors/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import {
  type Page,
  type PageRequest,
  type ServiceDeps,
  type WriteDeps,
  write,
} from '../../infra/service/index.ts';

export interface UserView {
  id: number;
  email: string;
  name: string;
  serverAdmin: boolean;
  createdAt: string;
}

type UserRow = { id: number; email: string; name: string; is_server_admin: number; created_at: number };

const userColumns = [
  'users.id',
  'users.email',
  'users.name',
  'users.is_server_admin',
  'users.created_at',
] as const;

export function userView(row: UserRow): UserView {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    serverAdmin: row.is_server_admin === 1,
    createdAt: iso(row.created_at),
  };
}

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

/**
 * Creates a user row (no authorization: callers decide who may). A missing password is replaced by a random
 * one, returned so it can be shown once.
 */
export async function createUserRecord(
  trx: Db,
  input: { email: string; name?: string | undefined; password?: string | undefined; serverAdmin?: boolean },
): Promise<{ user: UserView; generatedPassword?: string }> {
  const email = normalizeEmail(input.email);
  const existing = await trx.selectFrom('users').select('id').where('email', '=', email).executeTakeFirst();
  if (existing) throw new AppError('conflict', `a user with e-mail ${email} already exists`);
  const generatedPassword = input.password ? undefined : randomPassword();
  const now = Date.now();
  const row = await trx
    .insertInto('users')
    .values({
      email,
      name: input.name ?? email.split('@')[0]!,
      password_hash: await hashPassword(input.password ?? generatedPassword!),
      is_server_admin: input.serverAdmin ? 1 : 0,
      created_at: now,
      updated_at: now,
    })
    .returning(userColumns)
    .executeTakeFirstOrThrow();
  return { user: userView(row), ...(generatedPassword ? { generatedPassword } : {}) };
}

/** A user by id, without authorization (for the sign-in answer). */
export async function userRecord(db: Db, userId: number): Promise<UserView> {
  return userView(
    await db.selectFrom('users').select(userColumns).where('id', '=', userId).executeTakeFirstOrThrow(),
  );
}

/** Users the actor may see: everyone for a server admin, else the people of the actor's organizations. */
function visibleUsers(db: Db, actor: Actor) {
  const p = requireUser(actor.principal);
  let query = db.selectFrom('users');
  if (!p.serverAdmin) {
    const orgIds = p.memberships.filter((m) => m.fleetIds === null).map((m) => m.orgId);
    query = query.where((eb) =>
      eb.or([
        eb('users.id', '=', p.userId),
        eb(
          'users.id',
          'in',
          eb
            .selectFrom('memberships')
            .select('memberships.user_id')
            .where('memberships.org_id', 'in', orgIds.length ? orgIds : [-1]),
        ),
      ]),
    );
  }
  return query;
}

export async function listUsers(
  deps: ServiceDeps,
  actor: Actor,
  q: PageRequest & { q?: string | undefined },
): Promise<Page<UserView>> {
  let query = visibleUsers(deps.db, actor);
  const text = q.q;
  if (text)
    query = query.where((eb) => eb.or([containsText('users.email', text), containsText('users.name', text)]));
  const { total } = await query
    .select((eb) => eb.fn.countAll<number>().as('total'))
    .executeTakeFirstOrThrow();
  const rows = await query
    .select(userColumns)
    .orderBy('users.id')
    .limit(q.limit)
    .offset((q.page - 1) * q.limit)
    .execute();
  return { items: rows.map(userView), total: Number(total), page: q.page, limit: q.limit };
}

export async function getUser(deps: ServiceDeps, actor: Actor, userId: number): Promise<UserView> {
  const row = await visibleUsers(deps.db, actor)
    .select(userColumns)
    .where('users.id', '=', userId)
    .executeTakeFirst();
  if (!row) throw notFound('user');
  return userView(row);
}

export async function createUser(
  deps: ServiceDeps,
  actor: Actor,
  input: { email: string; name?: string | undefined; password?: string | undefined },
): Promise<UserView & { password?: string }> {
  return write(deps, actor, { action: 'user.create', resourceType: 'user' }, async (trx) => {
    if (!requireUser(actor.principal).serverAdmin) {
      throw forbidden(
        'only server administrators create users; organization admins add people with POST /api/v1/orgs/:orgId/members',
      );
    }
    const { user, generatedPassword } = await createUserRecord(trx, input);
    return {
      value: { ...user, ...(generatedPassword ? { password: generatedPassword } : {}) },
      orgId: null,
      resourceId: user.id,
      details: { email: user.email },
    };
  });
}

export async function updateUser(
  deps: ServiceDeps,
  actor: Actor,
  userId: number,
  input: { name?: string | undefined; password?: string | undefined; currentPassword?: string | undefined },
): Promise<UserView> {
  return write(deps, actor, { action: 'user.update', resourceType: 'user' }, async (trx) => {
    const p = requireUser(actor.principal);
    await getUser({ ...deps, db: trx }, actor, userId);
    const self = p.userId === userId;
    if (!self && !p.serverAdmin) throw forbidden('you may change only your own account');
    const row = await trx
      .selectFrom('users')
      .select('password_hash')
      .where('id', '=', userId)
      .executeTakeFirstOrThrow();
    if (input.password !== undefined && self) {
      if (!input.currentPassword || !(await verifyPassword(input.currentPassword, row.password_hash))) {
        throw new AppError('forbidden', 'to change your password, send your current one as currentPassword');
      }
    }
    const updated = await trx
      .updateTable('users')
      .set({
        ...(input.name !== undefined ? { name: input.name } : {}),
        ...(input.password !== undefined ? { password_hash: await hashPassword(input.password) } : {}),
        updated_at: Date.now(),
      })
      .where('id', '=', userId)
      .returning(userColumns)
      .executeTakeFirstOrThrow();
    if (input.password !== undefined) {
      // A new password ends every other session of the account.
      await trx
        .updateTable('sessions')
        .set({ revoked_at: Date.now() })
        .where('user_id', '=', userId)
        .where('revoked_at', 'is', null)
        .$if(self && p.credential.type === 'session', (q) => q.where('id', '!=', p.credential.id))
        .execute();
    }
    return {
      value: userView(updated),
      orgId: null,
      resourceId: userId,
      details: { changed: Object.keys(input).filter((k) => k !== 'currentPassword') },
    };
  });
}

export async function deleteUser(deps: ServiceDeps, actor: Actor, userId: number): Promise<void> {
  await write(deps, actor, { action: 'user.delete', resourceType: 'user' }, async (trx) => {
    const p = requireUser(actor.principal);
    const user = await getUser({ ...deps, db: trx }, actor, userId);
    if (!p.serverAdmin) throw forbidden('only server administrators delete users');
    if (p.userId === userId) throw new AppError('conflict', 'you cannot delete your own account');
    const ownedAlone = await trx
      .selectFrom('memberships as m')
      .select('m.org_id')
      .where('m.user_id', '=', userId)
      .where('m.role', '=', 'owner')
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('memberships as o')
              .select('o.id')
              .whereRef('o.org_id', '=', 'm.org_id')
              .where('o.role', '=', 'owner')
              .where('o.user_id', '!=', userId),
          ),
        ),
      )
      .execute();
    if (ownedAlone.length) {
      throw new AppError(
        'conflict',
        `${user.email} is the last owner of an organization: make someone else owner first`,
        {
          details: { orgIds: ownedAlone.map((r) => r.org_id) },
        },
      );
    }
    await trx.deleteFrom('users').where('id', '=', userId).execute();
    return { value: undefined, orgId: null, resourceId: userId, details: { email: user.email } };
  });
}

/** Shortest password accepted (as the API's user schema). */
const minPasswordLength = 8;

export interface PasswordReset {
  user: UserView;
  /** Set when fleetgate chose the password: shown once, never stored. */
  generatedPassword?: string;
  /** Sessions of the user that were still open and now end. */
  sessionsRevoked: number;
}

/**
 * `fleetgate users reset-password`: a person on the server's machine (the `system` principal with their OS user
 * name; only who can read the data directory or the database URL gets here) sets a user's password, `password`
 * or a random one, and ends every session the user had. Audited `user.reset_password`. API keys stay valid:
 * they are revoked one by one (`fleetgate api-keys`), signed in.
 */
export async function resetPasswordOnMachine(
  deps: WriteDeps,
  osUser: string,
  input: { email: string; password?: string | undefined },
): Promise<PasswordReset> {
  if (input.password !== undefined && input.password.length < minPasswordLength) {
    throw new AppError('bad_request', `the password must have at least ${minPasswordLength} characters`);
  }
  const actor: Actor = { principal: { type: 'system', osUser }, sourceIp: null };
  return write(deps, actor, { action: 'user.reset_password', resourceType: 'user' }, async (trx) => {
    const email = normalizeEmail(input.email);
    const found = await trx.selectFrom('users').select('id').where('email', '=', email).executeTakeFirst();
    if (!found) throw new AppError('not_found', `no user has the e-mail ${email}`);
    const generatedPassword = input.password === undefined ? randomPassword() : undefined;
    const now = Date.now();
    const updated = await trx
      .updateTable('users')
      .set({ password_hash: await hashPassword(input.password ?? generatedPassword!), updated_at: now })
      .where('id', '=', found.id)
      .returning(userColumns)
      .executeTakeFirstOrThrow();
    const revoked = await trx
      .updateTable('sessions')
      .set({ revoked_at: now })
      .where('user_id', '=', found.id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    const sessionsRevoked = Number(revoked.numUpdatedRows);
    return {
      value: {
        user: userView(updated),
        sessionsRevoked,
        ...(generatedPassword ? { generatedPassword } : {}),
      },
      orgId: null,
      resourceId: found.id,
      details: { email, osUser, passwordGenerated: generatedPassword !== undefined, sessionsRevoked },
    };
  });
}

export interface MeView extends UserView {
  memberships: {
    orgId: number;
    orgName: string;
    orgSlug: string;
    role: Role;
    fleetIds: number[] | null;
    actions: Action[];
  }[];
}

export async function me(deps: ServiceDeps, actor: Actor): Promise<MeView> {
  const p = requireUser(actor.principal);
  const row = await deps.db
    .selectFrom('users')
    .select(userColumns)
    .where('id', '=', p.userId)
    .executeTakeFirstOrThrow();
  const memberships = await deps.db
    .selectFrom('memberships')
    .innerJoin('organizations', 'organizations.id', 'memberships.org_id')
    .select([
      'memberships.org_id',
      'organizations.name',
      'organizations.slug',
      'memberships.role',
      'memberships.fleet_ids',
    ])
    .where('memberships.user_id', '=', p.userId)
    .orderBy('organizations.id')
    .execute();
  return {
    ...userView(row),
    memberships: memberships.map((m) => {
      const membership = { role: m.role as Role, fleetIds: json.decode<number[]>(m.fleet_ids) };
      return {
        orgId: m.org_id,
        orgName: m.name,
        orgSlug: m.slug,
        ...membership,
        actions: allowedActions({ orgId: m.org_id, ...membership }),
      };
    }),
  };
}
