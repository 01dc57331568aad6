import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.ts';

/**
 * The tunnel (DESIGN section 6): presence and connection history, the agent's state reports, variables
 * delivery bookkeeping and the port allow-lists of fleets and devices.
 */
export async function up(db: Kysely<unknown>, { id, bigint }: MigrationContext): Promise<void> {
  const device = () => db.schema.alterTable('devices');
  // Presence, written in batches by the instance holding the tunnel: the device is online while
  // connected_at is later than disconnected_at (or disconnected_at is null).
  await device().addColumn('connected_at', bigint).execute();
  await device().addColumn('disconnected_at', bigint).execute();
  await device().addColumn('last_seen_at', bigint).execute();
  // The agent's last state report (hostname, OS, memory…): a JSON object.
  await device().addColumn('state', 'text').execute();
  await device().addColumn('state_reported_at', bigint).execute();
  // Variables delivery: when the device's own variables last changed (the revision, with its fleet's), and
  // what the agent answered about the last set it applied.
  await device().addColumn('variables_changed_at', bigint).execute();
  await device().addColumn('variables_applied_revision', bigint).execute();
  await device().addColumn('variables_applied_at', bigint).execute();
  await device().addColumn('variables_error', 'varchar(1024)').execute();
  // Ports people may reach on the device: a JSON array of port numbers; null = the fleet's list.
  await device().addColumn('allowed_ports', 'text').execute();

  await db.schema.alterTable('fleets').addColumn('variables_changed_at', bigint).execute();
  // null = the default list ([22]).
  await db.schema.alterTable('fleets').addColumn('allowed_ports', 'text').execute();

  await db.schema
    .createTable('device_connections')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('device_id', 'integer', (c) => c.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('remote_address', 'varchar(64)')
    .addColumn('agent_version', 'varchar(128)')
    .addColumn('connected_at', bigint, (c) => c.notNull())
    .addColumn('disconnected_at', bigint)
    .addColumn('duration_ms', bigint)
    .addColumn('close_code', 'integer')
    .addColumn('close_reason', 'varchar(256)')
    .execute();
  await db.schema
    .createIndex('device_connections_device')
    .on('device_connections')
    .columns(['device_id', 'connected_at'])
    .execute();
  await db.schema
    .createIndex('device_connections_connected')
    .on('device_connections')
    .column('connected_at')
    .execute();
}
