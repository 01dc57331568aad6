import { sql } from 'kysely';
import type { Db } from '../../infra/db/index.ts';

/**
 * When a device's effective variables change — a fleet or device variable written, or the device moved to
 * another fleet — the change moves a revision on in the writing transaction and, once committed, tells the
 * app's event bus (`variables.changed`; the variables push sends the new set to connected devices). Kept apart
 * from service.ts so the devices service can use it without importing the variables service, which imports it.
 */

/**
 * Moves the fleet's or device's variables revision on, in the writing transaction: the epoch milliseconds of
 * the change, and always above the previous value (two changes in one millisecond differ).
 */
export async function bumpVariablesRevision(
  trx: Db,
  owner: { fleetId: number } | { deviceId: number },
): Promise<void> {
  const now = Date.now();
  const next = sql<number>`case when coalesce(variables_changed_at, 0) >= ${now} then variables_changed_at + 1 else ${now} end`;
  if ('fleetId' in owner) {
    await trx
      .updateTable('fleets')
      .set({ variables_changed_at: next })
      .where('id', '=', owner.fleetId)
      .execute();
  } else {
    await trx
      .updateTable('devices')
      .set({ variables_changed_at: next })
      .where('id', '=', owner.deviceId)
      .execute();
  }
}
