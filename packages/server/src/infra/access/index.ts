import { type RawBuilder, type SqlBool, sql } from 'kysely';
import { AppError, notFound } from '../errors/index.ts';

/**
 * Access control: who may do what to which resource, decided here and nowhere else.
 *
 * Tenancy is organization → fleets → devices. A user holds one role per organization through a
 * membership, optionally narrowed to some fleets. Reads are also scoped in SQL through `readScope`.
 */

export const roles = ['owner', 'admin', 'operator', 'viewer'] as const;
export type Role = (typeof roles)[number];

export interface Membership {
  orgId: number;
  role: Role;
  /** Fleets the membership is narrowed to; `null` means the whole organization. */
  fleetIds: number[] | null;
}

export type Principal =
  | {
      type: 'user';
      userId: number;
      email: string;
      serverAdmin: boolean;
      memberships: Membership[];
      /** How the user proved who they are (`ssh_key`: at the SSH gateway, with a registered key). */
      credential: { type: 'session' | 'api_key' | 'ssh_key'; id: number };
    }
  | {
      type: 'device';
      deviceId: number;
      uuid: string;
      orgId: number;
      fleetId: number;
      /** How the device proved who it is: a device API key (its row id) or a device token (its jti). */
      credential: { type: 'device_key'; id: number } | { type: 'device_token'; id: string };
    }
  | { type: 'anonymous' };

export type UserPrincipal = Extract<Principal, { type: 'user' }>;
export type DevicePrincipal = Extract<Principal, { type: 'device' }>;

/** Everything a principal can be asked to be allowed to do. */
export const actions = [
  'org.read',
  'org.update',
  'org.delete',
  'member.read',
  'member.manage',
  'fleet.read',
  'fleet.create',
  'fleet.update',
  'fleet.delete',
  'device_type.read',
  'device_type.manage',
  'device.read',
  'device.create',
  'device.update',
  'device.delete',
  'device.tag',
  'device.variable.write',
  'fleet.variable.write',
  'audit.read',
  'device.ssh',
  'device.terminal',
  'device.connect',
  /** Create, list and revoke a fleet's provisioning keys (admins and owners). */
  'provisioning_key.manage',
  /** Revoke a device's keys and tokens (admins and owners). */
  'device.credentials',
  /** Decommission a device: every credential refused, live connections closed (admins and owners). */
  'device.decommission',
  /** Accept, reject and preauthorize devices' auth sets (Mender-style enrollment; admins and owners). */
  'device.authorize',
  /** Change the ports people may reach on a fleet's or device's port allow-list (admins and owners). */
  'ports.manage',
  /** End a person's live session to a device at once (admins and owners). */
  'session.terminate',
] as const;
export type Action = (typeof actions)[number];

const viewerActions: readonly Action[] = [
  'org.read',
  'member.read',
  'fleet.read',
  'device_type.read',
  'device.read',
];
const operatorActions: readonly Action[] = [
  ...viewerActions,
  'device.update',
  'device.tag',
  'device.variable.write',
  'device.ssh',
  'device.terminal',
  'device.connect',
];
const adminActions: readonly Action[] = actions.filter((a) => a !== 'org.delete');

const allowedByRole: Record<Role, ReadonlySet<Action>> = {
  owner: new Set(actions),
  admin: new Set(adminActions),
  operator: new Set(operatorActions),
  viewer: new Set(viewerActions),
};

/** Actions about the organization as a whole: a membership narrowed to some fleets may not do them. */
const organizationWide: ReadonlySet<Action> = new Set([
  'org.update',
  'org.delete',
  'member.manage',
  'fleet.create',
  'fleet.delete',
  'device_type.manage',
  'audit.read',
]);

/** What an action is about: an organization, and a fleet inside it when the resource lives in one. */
export interface ResourceRef {
  orgId: number;
  fleetId?: number | undefined;
}

export function roleAllows(role: Role, action: Action): boolean {
  return allowedByRole[role].has(action);
}

/** The principal's membership that covers the resource (its organization and, if narrowed, its fleet). */
export function membershipFor(principal: Principal, resource: ResourceRef): Membership | undefined {
  if (principal.type !== 'user') return undefined;
  const m = principal.memberships.find((x) => x.orgId === resource.orgId);
  if (!m) return undefined;
  if (m.fleetIds && resource.fleetId !== undefined && !m.fleetIds.includes(resource.fleetId))
    return undefined;
  return m;
}

/**
 * Allows the action or throws. A principal that cannot even see the resource gets `not_found` (so the
 * existence of other organizations' resources does not leak); one that sees it but may not act gets
 * `forbidden`.
 */
export function authorize(
  principal: Principal,
  action: Action,
  resource: ResourceRef,
  what = 'resource',
): void {
  const m = membershipFor(principal, resource);
  if (!m) throw notFound(what);
  if (!roleAllows(m.role, action)) {
    throw new AppError('forbidden', `your role (${m.role}) does not allow ${action}`, {
      details: { orgId: resource.orgId },
    });
  }
  if (m.fleetIds && organizationWide.has(action)) {
    throw new AppError('forbidden', `${action} needs a membership for the whole organization`, {
      details: { orgId: resource.orgId },
    });
  }
}

export function can(principal: Principal, action: Action, resource: ResourceRef): boolean {
  const m = membershipFor(principal, resource);
  return !!m && roleAllows(m.role, action) && !(m.fleetIds && organizationWide.has(action));
}

/** One organization's part of a read scope: all of it, or only some fleets. */
export interface ScopeEntry {
  orgId: number;
  fleetIds: number[] | null;
}

/** The organizations (and fleets) in which the principal may do `action`; services turn it into SQL. */
export function readScope(principal: Principal, action: Action): ScopeEntry[] {
  if (principal.type !== 'user') return [];
  return principal.memberships
    .filter((m) => roleAllows(m.role, action) && !(m.fleetIds && organizationWide.has(action)))
    .map((m) => ({ orgId: m.orgId, fleetIds: m.fleetIds }));
}

export function requireUser(principal: Principal): UserPrincipal {
  if (principal.type !== 'user') throw new AppError('unauthorized', 'sign in first: POST /api/v1/auth/login');
  return principal;
}

/** Device routes take only devices; people and anonymous callers get 401 with what to send instead. */
export function requireDevice(principal: Principal): DevicePrincipal {
  if (principal.type !== 'device')
    throw new AppError('unauthorized', 'a device credential is needed: a device token or uuid + device key');
  return principal;
}

/** Who acts, and from where: handed to every service call. */
export interface Actor {
  principal: Principal;
  sourceIp: string | null;
}

/**
 * SQL for "the row is inside the scope": `org = A or (org = B and fleet in (…))`. An empty scope matches
 * nothing, so a principal without memberships reads no rows at all.
 */
export function scopeCondition(
  scope: ScopeEntry[],
  orgColumn: string,
  fleetColumn: string,
): RawBuilder<SqlBool> {
  if (!scope.length) return sql<SqlBool>`1 = 0`;
  const wholeOrgs = scope.filter((s) => s.fleetIds === null).map((s) => s.orgId);
  const parts: RawBuilder<unknown>[] = [];
  if (wholeOrgs.length) parts.push(sql`${sql.ref(orgColumn)} in (${sql.join(wholeOrgs)})`);
  for (const s of scope) {
    if (s.fleetIds === null) continue;
    const fleets = s.fleetIds.length ? s.fleetIds : [-1];
    parts.push(
      sql`(${sql.ref(orgColumn)} = ${s.orgId} and ${sql.ref(fleetColumn)} in (${sql.join(fleets)}))`,
    );
  }
  return sql<SqlBool>`(${sql.join(parts, sql` or `)})`;
}
