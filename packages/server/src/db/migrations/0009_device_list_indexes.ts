import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.ts';

/**
 * The devices list pages through an organization's devices by last seen (keyset paging), and a fleet's by
 * name. Without these indexes such a page sorted every device of the organization or fleet (100,000 rows,
 * tens of milliseconds) to answer 50. Sorting by name within an organization already has `devices_org_name`.
 */
export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  await db.schema
    .createIndex('devices_org_last_seen')
    .on('devices')
    .columns(['org_id', 'last_seen_at', 'id'])
    .execute();
  await db.schema.createIndex('devices_fleet_name').on('devices').columns(['fleet_id', 'name']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('devices_fleet_name').execute();
  await db.schema.dropIndex('devices_org_last_seen').execute();
}
