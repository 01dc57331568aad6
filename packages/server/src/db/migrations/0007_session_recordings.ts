import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.ts';

/**
 * Session recording (SSH gateway shells, asciicast v2): an organization setting, and the recordings, linked to
 * `remote_sessions` by the session id. A recording is appended in chunks (rows of asciicast lines, in `seq`
 * order) while the shell runs, so a long session never sits in memory.
 */
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  const { id, bigint } = ctx;
  // 0/1: record the organization's shell sessions.
  await db.schema
    .alterTable('organizations')
    .addColumn('session_recording', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .createTable('session_recordings')
    .addColumn('session_id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('org_id', 'integer', (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addColumn('device_uuid', 'varchar(32)', (c) => c.notNull())
    .addColumn('started_at', bigint, (c) => c.notNull())
    .addColumn('ended_at', bigint)
    .addColumn('bytes', bigint, (c) => c.notNull())
    .addColumn('truncated', 'integer', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('session_recording_chunks')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('session_id', 'varchar(32)', (c) =>
      c.notNull().references('session_recordings.session_id').onDelete('cascade'),
    )
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('data', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('session_recording_chunks_session')
    .on('session_recording_chunks')
    .columns(['session_id', 'seq'])
    .unique()
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('session_recording_chunks').execute();
  await db.schema.dropTable('session_recordings').execute();
  await db.schema.alterTable('organizations').dropColumn('session_recording').execute();
}
