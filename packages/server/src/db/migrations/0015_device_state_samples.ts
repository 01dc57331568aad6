import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.ts';

/**
 * A bounded history of the numbers in the agents' state reports (CPU, memory, disk, temperature), for the charts
 * on the device page: at most one sample per device per minute (the primary key: a second report within the
 * minute is not kept), pruned after 7 days by presence's minute sweep. Written in presence's batches, never one
 * write per report. Also an index on the connection history's disconnect time: the dashboard counts disconnects
 * of the last 24 hours, which would otherwise read the whole 90 days of history.
 */
export async function up(db: Kysely<unknown>, { bigint }: MigrationContext): Promise<void> {
  await db.schema
    .createTable('device_state_samples')
    .addColumn('device_id', 'integer', (c) => c.notNull().references('devices.id').onDelete('cascade'))
    // The sample's minute (epoch ms / 60,000): one per device.
    .addColumn('minute', bigint, (c) => c.notNull())
    .addColumn('at', bigint, (c) => c.notNull())
    .addColumn('cpu_percent', 'double precision')
    .addColumn('memory_used_bytes', bigint)
    .addColumn('memory_total_bytes', bigint)
    .addColumn('disk_used_bytes', bigint)
    .addColumn('disk_total_bytes', bigint)
    .addColumn('temperature_celsius', 'double precision')
    .addPrimaryKeyConstraint('device_state_samples_pkey', ['device_id', 'minute'])
    .execute();
  // The prune deletes by age across every device.
  await db.schema
    .createIndex('device_state_samples_minute')
    .on('device_state_samples')
    .column('minute')
    .execute();
  await db.schema
    .createIndex('device_connections_disconnected')
    .on('device_connections')
    .column('disconnected_at')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('device_connections_disconnected').execute();
  await db.schema.dropTable('device_state_samples').execute();
}
