import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.ts';

/**
 * Remote diagnostics (issue 16): each run's report, kept per device with history (the newest
 * `DIAGNOSTICS_KEPT_PER_DEVICE` of each device; features/diagnostics prunes older ones as it stores a new one).
 * A report goes with its device (deleted with it), as its variables and tags do.
 */
export async function up(db: Kysely<unknown>, { id, bigint }: MigrationContext): Promise<void> {
  await db.schema
    .createTable('device_diagnostics')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('org_id', 'integer', (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addColumn('device_id', 'integer', (c) => c.notNull().references('devices.id').onDelete('cascade'))
    // The stream router's session of the run (remote_sessions.id).
    .addColumn('session_id', 'varchar(32)', (c) => c.notNull())
    .addColumn('requested_by', 'integer')
    .addColumn('requested_by_label', 'varchar(320)', (c) => c.notNull())
    .addColumn('started_at', bigint, (c) => c.notNull())
    .addColumn('finished_at', bigint, (c) => c.notNull())
    // The version of the agent's set of checks, and the agent's own version.
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('agent_version', 'varchar(64)', (c) => c.notNull())
    // The worst status of its checks: ok, warning, failed, unavailable, timed_out.
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    // How many checks came out in each status, as JSON text: what lists show without reading every report.
    .addColumn('counts', 'varchar(256)', (c) => c.notNull())
    // The checks, as JSON text (infra/db/json).
    .addColumn('checks', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('device_diagnostics_device_started')
    .on('device_diagnostics')
    .columns(['device_id', 'started_at'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('device_diagnostics').execute();
}
