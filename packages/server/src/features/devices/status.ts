import { type RawBuilder, type SqlBool, sql } from 'kysely';

/**
 * A device's status, computed here and only here and shown everywhere. In order of precedence:
 *
 * - `decommissioned`: an admin decommissioned it;
 * - `online`: it holds a tunnel, an OpenVPN connection or a mender-connect link (for any link, its last connect is
 *   later than its last disconnect; presence is written in batches, so a connect shows here about a second later; `onlineLinks` says
 *   through which);
 * - `pending`: it waits for an admin: it has a pending auth set, no accepted or preauthorized one and no live
 *   device key (e.g. an accepted set was put back to pending);
 * - `offline`: it connected before, but not now;
 * - `never-connected`: none of the above.
 *
 * `deviceStatus` reads a row; `statusCondition` is the same rule as SQL over the `devices` table, so lists
 * filter by status in the database; `statusExpression` is it as one SQL value, so counts group by status. Change
 * them together.
 */
export const deviceStatuses = ['online', 'offline', 'pending', 'never-connected', 'decommissioned'] as const;
export type DeviceStatus = (typeof deviceStatuses)[number];

export interface StatusFacts {
  decommissioned_at?: number | null;
  connected_at?: number | null;
  disconnected_at?: number | null;
  vpn_connected_at?: number | null;
  vpn_disconnected_at?: number | null;
  mender_connected_at?: number | null;
  mender_disconnected_at?: number | null;
  /** 1 (or true) when the device waits for an admin to accept an auth set: see `pendingAuthExpression`. */
  pending_auth?: number | boolean | null;
}

export function deviceStatus(device: StatusFacts): DeviceStatus {
  if (device.decommissioned_at !== null && device.decommissioned_at !== undefined) return 'decommissioned';
  if (onlineLinks(device).length) return 'online';
  if (device.pending_auth) return 'pending';
  if (device.connected_at != null || device.vpn_connected_at != null || device.mender_connected_at != null)
    return 'offline';
  return 'never-connected';
}

/** The kinds of link a device may be online through: its agent's `tunnel`, `vpn` (OpenVPN), `mender-connect`. */
export const linkKinds = ['tunnel', 'vpn', 'mender-connect'] as const;
export type LinkKind = (typeof linkKinds)[number];

/** The links a device is online through now: its agent's `tunnel`, `vpn` (OpenVPN), `mender-connect`, or none. */
export function onlineLinks(device: StatusFacts): LinkKind[] {
  const links: LinkKind[] = [];
  if (device.connected_at != null && device.connected_at > (device.disconnected_at ?? 0))
    links.push('tunnel');
  if (device.vpn_connected_at != null && device.vpn_connected_at > (device.vpn_disconnected_at ?? 0))
    links.push('vpn');
  if (device.mender_connected_at != null && device.mender_connected_at > (device.mender_disconnected_at ?? 0))
    links.push('mender-connect');
  return links;
}

/** 1 when the device in `devices` has a pending auth set, no accepted or preauthorized one and no live key. */
export function pendingAuthExpression(): RawBuilder<number> {
  const id = sql.ref('devices.id');
  return sql<number>`(case when exists (select 1 from auth_sets s where s.device_id = ${id} and s.status = 'pending')
    and not exists (select 1 from auth_sets s where s.device_id = ${id} and s.status in ('accepted', 'preauthorized'))
    and not exists (select 1 from device_keys k where k.device_id = ${id} and k.revoked_at is null)
    then 1 else 0 end)`;
}

/** Each link's pair of columns in `devices`: a link is up when its last connect is after its last disconnect. */
const linkColumns = [
  ['devices.connected_at', 'devices.disconnected_at'],
  ['devices.vpn_connected_at', 'devices.vpn_disconnected_at'],
  ['devices.mender_connected_at', 'devices.mender_disconnected_at'],
] as const;

/** `deviceStatus`'s "online through any link", as SQL over the `devices` table. */
function onlineSql(): RawBuilder<SqlBool> {
  const up = linkColumns.map(
    ([connected, disconnected]) =>
      sql`(${sql.ref(connected)} is not null and ${sql.ref(connected)} > coalesce(${sql.ref(disconnected)}, 0))`,
  );
  return sql<SqlBool>`(${sql.join(up, sql` or `)})`;
}

/** Any link ever connected, as SQL over the `devices` table. */
function everConnectedSql(): RawBuilder<SqlBool> {
  const ever = linkColumns.map(([connected]) => sql`${sql.ref(connected)} is not null`);
  return sql<SqlBool>`(${sql.join(ever, sql` or `)})`;
}

/** The same rule as `deviceStatus`, as SQL over the `devices` table, so lists filter by status in the database. */
export function statusCondition(status: DeviceStatus): RawBuilder<SqlBool> {
  const decommissionedAt = sql.ref('devices.decommissioned_at');
  const live = sql`${decommissionedAt} is null`;
  const online = onlineSql();
  const everConnected = everConnectedSql();
  const pending = sql`${pendingAuthExpression()} = 1`;
  switch (status) {
    case 'decommissioned':
      return sql<SqlBool>`${decommissionedAt} is not null`;
    case 'online':
      return sql<SqlBool>`(${live} and ${online})`;
    case 'pending':
      return sql<SqlBool>`(${live} and not ${online} and ${pending})`;
    case 'offline':
      return sql<SqlBool>`(${live} and ${everConnected} and not ${online} and not ${pending})`;
    case 'never-connected':
      return sql<SqlBool>`(${live} and not ${everConnected} and not ${pending})`;
  }
}

/**
 * The same rule as `deviceStatus`, as one SQL value (the status's name) over the `devices` table: counts by status
 * group on it in one pass, each device's pending check made at most once (and only for devices neither
 * decommissioned nor online), where five `statusCondition` sums would make it three times for every device.
 */
export function statusExpression(): RawBuilder<DeviceStatus> {
  return sql<DeviceStatus>`(case
    when ${sql.ref('devices.decommissioned_at')} is not null then 'decommissioned'
    when ${onlineSql()} then 'online'
    when ${pendingAuthExpression()} = 1 then 'pending'
    when ${everConnectedSql()} then 'offline'
    else 'never-connected' end)`;
}
