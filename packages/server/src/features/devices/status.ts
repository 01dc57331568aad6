import { type RawBuilder, type SqlBool, sql } from 'kysely';

/**
 * A device's status, computed here and only here and shown everywhere: `decommissioned` once an admin
 * decommissioned it, otherwise `never-connected` until the tunnel's presence columns extend this function
 * and its SQL twin below together.
 */
export const deviceStatuses = ['online', 'offline', 'pending', 'never-connected', 'decommissioned'] as const;
export type DeviceStatus = (typeof deviceStatuses)[number];

export function deviceStatus(device: { id: number; decommissioned_at?: number | null }): DeviceStatus {
  if (device.decommissioned_at !== null && device.decommissioned_at !== undefined) return 'decommissioned';
  return 'never-connected';
}

/** The same rule as `deviceStatus`, as SQL over the `devices` table, so lists filter by status in the database. */
export function statusCondition(status: DeviceStatus): RawBuilder<SqlBool> {
  const decommissionedAt = sql.ref('devices.decommissioned_at');
  switch (status) {
    case 'decommissioned':
      return sql<SqlBool>`${decommissionedAt} is not null`;
    case 'never-connected':
      return sql<SqlBool>`${decommissionedAt} is null`;
    case 'online':
    case 'offline':
    case 'pending':
      return sql<SqlBool>`1 = 0`;
  }
}
