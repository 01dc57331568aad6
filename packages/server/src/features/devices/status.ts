import { type RawBuilder, type SqlBool, sql } from 'kysely';

/**
 * A device's status, computed here and only here and shown everywhere. Today a device has only its record,
 * so it is `never-connected`; credentials and the tunnel's presence columns extend this function and its SQL
 * twin below together.
 */
export const deviceStatuses = ['online', 'offline', 'pending', 'never-connected', 'decommissioned'] as const;
export type DeviceStatus = (typeof deviceStatuses)[number];

export function deviceStatus(_device: { id: number }): DeviceStatus {
  return 'never-connected';
}

/** The same rule as `deviceStatus`, as SQL, so lists filter by status in the database. */
export function statusCondition(status: DeviceStatus): RawBuilder<SqlBool> {
  return status === 'never-connected' ? sql<SqlBool>`1 = 1` : sql<SqlBool>`1 = 0`;
}
