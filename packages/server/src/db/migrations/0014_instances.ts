import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.ts';

/**
 * Several instances on one PostgreSQL database (issue 19): each instance registers itself and heartbeats; each
 * device says which instance holds its tunnel and its OpenVPN connection (written with the connect time, so a
 * late write of an older connection never wins); connections and sessions say which instance held them, so the
 * instance that notices another one dead closes exactly what that one held.
 */
export async function up(db: Kysely<unknown>, { bigint }: MigrationContext): Promise<void> {
  await db.schema
    .createTable('instances')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('host', 'varchar(255)', (c) => c.notNull())
    .addColumn('pid', 'integer', (c) => c.notNull())
    .addColumn('internal_url', 'varchar(255)')
    .addColumn('started_at', bigint, (c) => c.notNull())
    .addColumn('heartbeat_at', bigint, (c) => c.notNull())
    .execute();
  await db.schema.alterTable('devices').addColumn('tunnel_instance', 'varchar(36)').execute();
  await db.schema.alterTable('devices').addColumn('vpn_instance', 'varchar(36)').execute();
  await db.schema.alterTable('device_connections').addColumn('instance_id', 'varchar(36)').execute();
  await db.schema.alterTable('remote_sessions').addColumn('instance_id', 'varchar(36)').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('remote_sessions').dropColumn('instance_id').execute();
  await db.schema.alterTable('device_connections').dropColumn('instance_id').execute();
  await db.schema.alterTable('devices').dropColumn('vpn_instance').execute();
  await db.schema.alterTable('devices').dropColumn('tunnel_instance').execute();
  await db.schema.dropTable('instances').execute();
}
