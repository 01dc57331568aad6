import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.ts';

/**
 * mender-connect devices (issue 20): a device may be online through mender-connect's deviceconnect link
 * (`GET /api/devices/v1/deviceconnect/connect`), beside the agent's tunnel and OpenVPN. Its presence has columns
 * of its own (online through it while `mender_connected_at` is later than `mender_disconnected_at`); its
 * connections go in the history with `link = 'mender-connect'`; the instance holding the link is written beside it,
 * as for the other links (0014).
 */
export async function up(db: Kysely<unknown>, { bigint }: MigrationContext): Promise<void> {
  await db.schema.alterTable('devices').addColumn('mender_connected_at', bigint).execute();
  await db.schema.alterTable('devices').addColumn('mender_disconnected_at', bigint).execute();
  await db.schema.alterTable('devices').addColumn('mender_instance', 'varchar(36)').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('devices').dropColumn('mender_instance').execute();
  await db.schema.alterTable('devices').dropColumn('mender_disconnected_at').execute();
  await db.schema.alterTable('devices').dropColumn('mender_connected_at').execute();
}
