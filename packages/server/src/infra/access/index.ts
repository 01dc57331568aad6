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
  | {
      /** A service credential: an API key made for one service, which may do only `serviceActions[service]`. */
      type: 'service';
      service: ServiceKind;
      /** The API key's row id and name. */
      keyId: number;
      name: string;
      /** The server administrator who created the key (it stops working when they no longer are one). */
      createdBy: { userId: number; email: string };
    }
  | {
      /**
       * fleetgate itself, acting on its own at start (first-run setup creates the first owner). No credential
       * authenticates to it, and it is no member of any organization: `authorize` refuses it every action,
       * and what it does is decided by the code that acts as it, audited like any other write.
       */
      type: 'system';
      /**
       * Set when a person on the server's machine ran a command against its data directory or database
       * (`fleetgate users reset-password`): their operating system user name, for the audit log.
       */
      osUser?: string;
    }
  | { type: 'anonymous' };

export type UserPrincipal = Extract<Principal, { type: 'user' }>;
export type DevicePrincipal = Extract<Principal, { type: 'device' }>;
export type ServicePrincipal = Extract<Principal, { type: 'service' }>;

/** The actor of fleetgate's own work (see the `system` principal). */
export const systemActor: Actor = {
  principal: { type: 'system' },
  sourceIp: null,
};

/** The services a service credential can be made for. `openssh`: the OpenSSH bastion (DESIGN section 7). */
export const serviceKinds = ['openssh'] as const;
export type ServiceKind = (typeof serviceKinds)[number];

/**
 * Server-wide actions: about no organization's resources, so no membership grants them. Service credentials
 * exist for some of them (`serviceActions`); server administrators may do the others.
 */
export const serverActions = [
  /** Read registered SSH public keys by login or fingerprint (sshd's AuthorizedKeysCommand). */
  'ssh_key.lookup',
  /** Open sessions to devices as the owner of a registered SSH key (the OpenSSH mode's forced command). */
  'ssh_key.act_as_owner',
  /** Create a service credential (it may look up everyone's SSH keys): server administrators only. */
  'service_key.create',
  /**
   * Read the server-wide audit events, those of no organization: sign-ins (failed ones too), users, API and
   * service keys, SSH keys, recovery. Server administrators only.
   */
  'audit.read_server',
] as const;
export type ServerAction = (typeof serverActions)[number];

/** What each kind of service credential may do; everything else, in the whole API, is refused to it. */
const serviceActions: Record<ServiceKind, ReadonlySet<ServerAction>> = {
  openssh: new Set(['ssh_key.lookup', 'ssh_key.act_as_owner']),
};

/** What server administrators may do of the server-wide actions (acting for an SSH key is a service's only). */
const serverAdminActions: ReadonlySet<ServerAction> = new Set([
  'ssh_key.lookup',
  'service_key.create',
  'audit.read_server',
]);

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
  /**
   * Run a device's remote diagnostics (read-only checks) and read their stored reports (operators and above):
   * apart from `device.ssh`, so diagnostics never need shell rights.
   */
  'device.diagnose',
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
  'device.diagnose',
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

const serverActionSet: ReadonlySet<string> = new Set(serverActions);

function isServerAction(action: Action | ServerAction): action is ServerAction {
  return serverActionSet.has(action);
}

function serverActionAllowed(principal: Principal, action: ServerAction): boolean {
  if (principal.type === 'service') return serviceActions[principal.service].has(action);
  return principal.type === 'user' && principal.serverAdmin && serverAdminActions.has(action);
}

function authorizeServerAction(principal: Principal, action: ServerAction): void {
  if (serverActionAllowed(principal, action)) return;
  if (principal.type === 'service') throw serviceRefusal(principal, action);
  switch (action) {
    case 'ssh_key.act_as_owner':
      throw new AppError(
        'forbidden',
        "only the OpenSSH bastion's service credential may act for an SSH key's owner " +
          '(a server administrator creates one: fleetgate api-keys create <name> --service openssh)',
      );
    case 'ssh_key.lookup':
      throw new AppError(
        'forbidden',
        "only the OpenSSH bastion's service credential (or a server administrator) may look up SSH keys",
      );
    case 'service_key.create':
      throw new AppError('forbidden', 'only server administrators create service credentials');
    case 'audit.read_server':
      throw new AppError(
        'forbidden',
        'only server administrators read the server-wide audit events (scope=server)',
      );
  }
}

function serviceRefusal(principal: ServicePrincipal, action: Action | ServerAction): AppError {
  return new AppError(
    'forbidden',
    `a service credential (${principal.service}) may not ${action}: it may only ${[...serviceActions[principal.service]].join(', ')}`,
  );
}

/**
 * Allows the action or throws. A principal that cannot even see the resource gets `not_found` (so the
 * existence of other organizations' resources does not leak); one that sees it but may not act gets
 * `forbidden`. A server-wide action (no resource) is allowed by the principal's service or server role, else
 * `forbidden`; a service credential gets `forbidden` for everything it was not made for, and the `system`
 * principal for everything.
 */
export function authorize(principal: Principal, action: ServerAction): void;
export function authorize(principal: Principal, action: Action, resource: ResourceRef, what?: string): void;
export function authorize(
  principal: Principal,
  action: Action | ServerAction,
  resource?: ResourceRef,
  what = 'resource',
): void {
  if (principal.type === 'system')
    throw new AppError('forbidden', `fleetgate's own system actor is given no role: it may not ${action}`);
  if (isServerAction(action)) {
    authorizeServerAction(principal, action);
    return;
  }
  if (principal.type === 'service') throw serviceRefusal(principal, action);
  // The overloads pair every organization action with its resource; a caller that got around them is a bug.
  if (!resource) throw new AppError('internal', `${action} was asked about no resource`);
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

/** Whom a route is made for, as the route declares it (Fastify route `config`, see infra/http). */
export interface RouteAudience {
  /** The server action the route is made for: service credentials allowed that action may call it. */
  serves?: ServerAction | undefined;
  /** The route is made for devices (`/api/v1/device/self`…): only device credentials may call it. */
  forDevices?: boolean | undefined;
}

/**
 * The first check on every authenticated request, before the route reads anything, from what the route
 * declares it is for: a device credential may call only the routes made for devices, and every other route
 * answers it 401 (it names no person), as a route made for devices answers a person; a service credential may
 * call only the routes made for its service (each declares the server action it serves, and `authorize`
 * decides), and every other route answers it 403, whatever that route would do next. People pass on to the
 * route's own checks.
 */
export function authorizeRoute(principal: Principal, route: RouteAudience): void {
  if (principal.type === 'service') {
    if (route.serves === undefined)
      throw new AppError(
        'forbidden',
        `a service credential (${principal.service}) may only call the routes made for it: use a person's token or API key`,
      );
    authorize(principal, route.serves);
    return;
  }
  if (route.forDevices) {
    requireDevice(principal);
    return;
  }
  if (principal.type === 'device')
    throw new AppError(
      'unauthorized',
      'a device credential may only call the routes made for devices: people sign in with POST /api/v1/auth/login',
    );
}

/**
 * Every action a membership allows in its organization (fleet-scoped ones only in its fleets when narrowed):
 * what `/api/v1/me` tells clients so they show only the controls that will work. The server still decides each
 * request with `authorize`.
 */
export function allowedActions(membership: Membership): Action[] {
  return actions.filter(
    (action) => roleAllows(membership.role, action) && !(membership.fleetIds && organizationWide.has(action)),
  );
}

/** Whether `authorize` would allow the action, without throwing (for what a read includes). */
export function can(principal: Principal, action: ServerAction): boolean;
export function can(principal: Principal, action: Action, resource: ResourceRef): boolean;
export function can(principal: Principal, action: Action | ServerAction, resource?: ResourceRef): boolean {
  if (isServerAction(action)) return serverActionAllowed(principal, action);
  if (!resource) return false;
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
