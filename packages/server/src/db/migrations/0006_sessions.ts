import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.ts';

/**
 * People's sessions to devices (DESIGN section 7): every stream opened through `openStream` — `fleetgate
 * tunnel`, the SSH gateway, the CONNECT proxy — is one row, from open to end, with the bytes each way and how
 * it ended. (`sessions` already names sign-in sessions, hence `remote_sessions`.) The audit log keeps its
 * open and close events as well.
 */
export async function up(db: Kysely<unknown>, { bigint }: MigrationContext): Promise<void> {
  await db.schema
    .createTable('remote_sessions')
    // Random hex, handed out by openStream: not guessable, not a count of anybody's sessions.
    .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('org_id', 'integer', (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    // No foreign keys on fleet, device and users: a session's record outlives them (like its audit events).
    .addColumn('fleet_id', 'integer', (c) => c.notNull())
    .addColumn('device_id', 'integer', (c) => c.notNull())
    .addColumn('device_uuid', 'varchar(64)', (c) => c.notNull())
    .addColumn('device_name', 'varchar(128)', (c) => c.notNull())
    .addColumn('user_id', 'integer')
    .addColumn('actor_label', 'varchar(320)', (c) => c.notNull())
    // tunnel, connect, ssh, ssh-exec…
    .addColumn('surface', 'varchar(16)', (c) => c.notNull())
    // The device port, or null for a target that is not a port (the agent's exec service).
    .addColumn('port', 'integer')
    .addColumn('target', 'varchar(128)', (c) => c.notNull())
    .addColumn('client_address', 'varchar(64)')
    .addColumn('started_at', bigint, (c) => c.notNull())
    // Null while the session is live.
    .addColumn('ended_at', bigint)
    .addColumn('bytes_to_device', bigint, (c) => c.notNull().defaultTo(0))
    .addColumn('bytes_from_device', bigint, (c) => c.notNull().defaultTo(0))
    .addColumn('outcome', 'varchar(256)')
    // Who terminated the session, when an administrator did.
    .addColumn('terminated_by', 'integer')
    .addColumn('terminated_by_label', 'varchar(320)')
    .execute();
  await db.schema
    .createIndex('remote_sessions_org_started')
    .on('remote_sessions')
    .columns(['org_id', 'started_at'])
    .execute();
  await db.schema
    .createIndex('remote_sessions_device')
    .on('remote_sessions')
    .columns(['device_uuid', 'started_at'])
    .execute();
}
