import { type SqlBool, sql } from 'kysely';
import { type Actor, authorize, readScope, roleAllows, scopeCondition } from '../../infra/access/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { type DeviceStatus, deviceStatuses, statusExpression } from '../devices/index.ts';

/** The window the dashboard's activity figures cover, in hours. */
export const DASHBOARD_HOURS = 24;
const HOUR_MS = 3600 * 1000;

export type StatusCounts = Record<DeviceStatus, number>;

export interface DashboardView {
  orgId: number;
  /** When the figures were read; the hourly buckets end at the hour after it. */
  at: string;
  devices: {
    total: StatusCounts;
    /** Per fleet the caller sees, fleets without devices included. */
    fleets: { fleetId: number; name: string; counts: StatusCounts }[];
  };
  /** `DASHBOARD_HOURS` hourly buckets, oldest first: connects and disconnects from the connection history. */
  connections: { start: string; connects: number; disconnects: number }[];
  /**
   * Refused device credentials recorded in the audit log over the window; null for callers who may not read the
   * organization's audit log. Refused device keys and tokens themselves are only counted in memory (rate limits).
   */
  failedDeviceAuthentications: number | null;
  /** Auth sets waiting for acceptance. */
  pendingAuthSets: number;
  /** Remote sessions open now. */
  liveSessions: number;
}

function emptyCounts(): StatusCounts {
  return Object.fromEntries(deviceStatuses.map((s) => [s, 0])) as StatusCounts;
}

/**
 * The organization at a glance, read in a handful of grouped queries instead of one list request per figure.
 * Scoped like the device list: a membership narrowed to fleets counts only those fleets; another organization
 * (or none) answers 404.
 */
export async function readDashboard(deps: ServiceDeps, actor: Actor, orgId: number): Promise<DashboardView> {
  authorize(actor.principal, 'device.read', { orgId }, 'organization');
  const scope = readScope(actor.principal, 'device.read').filter((s) => s.orgId === orgId);
  const now = Date.now();
  // Buckets are whole hours: the last one holds the current hour.
  const end = Math.floor(now / HOUR_MS) * HOUR_MS + HOUR_MS;
  const since = end - DASHBOARD_HOURS * HOUR_MS;

  const [fleets, connects, disconnects, pending, live, failed] = await Promise.all([
    fleetCounts(deps, scope, orgId),
    hourly(deps, scope, orgId, 'connected_at', since),
    hourly(deps, scope, orgId, 'disconnected_at', since),
    deps.db
      .selectFrom('auth_sets')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where(scopeCondition(scope, 'auth_sets.org_id', 'auth_sets.fleet_id'))
      .where('auth_sets.org_id', '=', orgId)
      .where('auth_sets.status', '=', 'pending')
      .executeTakeFirstOrThrow(),
    deps.db
      .selectFrom('remote_sessions')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where(scopeCondition(scope, 'remote_sessions.org_id', 'remote_sessions.fleet_id'))
      .where('remote_sessions.org_id', '=', orgId)
      .where('remote_sessions.ended_at', 'is', null)
      .executeTakeFirstOrThrow(),
    mayReadAudit(actor, orgId) ? failedDeviceAuthentications(deps, orgId, since) : Promise.resolve(null),
  ]);

  const total = emptyCounts();
  for (const fleet of fleets) for (const s of deviceStatuses) total[s] += fleet.counts[s];
  return {
    orgId,
    at: iso(now),
    devices: { total, fleets },
    connections: Array.from({ length: DASHBOARD_HOURS }, (_, i) => ({
      start: iso(since + i * HOUR_MS),
      connects: connects.get(i) ?? 0,
      disconnects: disconnects.get(i) ?? 0,
    })),
    failedDeviceAuthentications: failed,
    pendingAuthSets: Number(pending.n),
    liveSessions: Number(live.n),
  };
}

/** Devices by status per fleet, in one grouped query over the status rule of devices/status.ts. */
async function fleetCounts(deps: ServiceDeps, scope: ReturnType<typeof readScope>, orgId: number) {
  const [fleets, counts] = await Promise.all([
    deps.db
      .selectFrom('fleets')
      .select(['fleets.id', 'fleets.name'])
      .where(scopeCondition(scope, 'fleets.org_id', 'fleets.id'))
      .where('fleets.org_id', '=', orgId)
      .orderBy('fleets.name')
      .orderBy('fleets.id')
      .execute(),
    deps.db
      .selectFrom('devices')
      .select(['devices.fleet_id', statusExpression().as('status'), (eb) => eb.fn.countAll<number>().as('n')])
      .where(scopeCondition(scope, 'devices.org_id', 'devices.fleet_id'))
      .where('devices.org_id', '=', orgId)
      .groupBy(['devices.fleet_id', statusExpression()])
      .execute(),
  ]);
  const byFleet = new Map(fleets.map((f) => [f.id, emptyCounts()]));
  for (const row of counts) {
    const fleet = byFleet.get(row.fleet_id);
    if (fleet) fleet[row.status] = Number(row.n);
  }
  return fleets.map((f) => ({ fleetId: f.id, name: f.name, counts: byFleet.get(f.id)! }));
}

/** Connection events per hour since `since` (bucket index → count), over the devices the caller sees. */
async function hourly(
  deps: ServiceDeps,
  scope: ReturnType<typeof readScope>,
  orgId: number,
  column: 'connected_at' | 'disconnected_at',
  since: number,
): Promise<Map<number, number>> {
  const at = sql.ref(`device_connections.${column}`);
  // Integer division in both dialects (bigint / integer): the hour's index in the window. Literals, not
  // parameters: PostgreSQL matches the select's expression to the group by's only when they are the same text.
  const bucket = sql<number>`(${at} - ${sql.lit(since)}) / ${sql.lit(HOUR_MS)}`;
  const rows = await deps.db
    .selectFrom('device_connections')
    .innerJoin('devices', 'devices.id', 'device_connections.device_id')
    .select([bucket.as('bucket'), (eb) => eb.fn.countAll<number>().as('n')])
    .where(scopeCondition(scope, 'devices.org_id', 'devices.fleet_id'))
    .where('devices.org_id', '=', orgId)
    .where(sql<SqlBool>`${at} >= ${since}`)
    .groupBy(bucket)
    .execute();
  return new Map(rows.map((r) => [Number(r.bucket), Number(r.n)]));
}

function mayReadAudit(actor: Actor, orgId: number): boolean {
  const p = actor.principal;
  if (p.type !== 'user') return false;
  const m = p.memberships.find((x) => x.orgId === orgId);
  return m !== undefined && m.fleetIds === null && roleAllows(m.role, 'audit.read');
}

/**
 * Refusals of a device or of a caller acting for one (registrations, key exchanges, auth requests) that the
 * audit log holds for the organization since `since`. Wrong device keys and tokens name no organization and are
 * counted in memory only (device-auth's rate limits), so they are not in this figure.
 */
async function failedDeviceAuthentications(deps: ServiceDeps, orgId: number, since: number) {
  const row = await deps.db
    .selectFrom('audit_events')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('org_id', '=', orgId)
    .where('at', '>=', since)
    .where('outcome', 'in', ['denied', 'failure'])
    .where('actor_type', 'in', ['device', 'anonymous'])
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
