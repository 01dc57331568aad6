import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.ts';

/**
 * Device web pages (issue 16): a person's way into one device port's web page, served from an origin of its own.
 * One row per grant: made by `POST /api/v1/devices/:device/web-sessions` with a single-use grant (its SHA-256 in
 * `grant_hash`), entered once on the device origin, which turns it into a session: the cookie's SHA-256 in
 * `cookie_hash`, set by one conditional UPDATE so a grant can be used once even with several instances. Bound
 * to the credential the person signed in with (`credential_type`, `credential_id`): the page stops when it goes.
 */
export async function up(db: Kysely<unknown>, { id, bigint }: MigrationContext): Promise<void> {
  await db.schema
    .createTable('device_web_sessions')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('grant_hash', 'varchar(64)', (c) => c.notNull().unique())
    // Null until the grant is entered.
    .addColumn('cookie_hash', 'varchar(64)', (c) => c.unique())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    // session, api_key or ssh_key: what the person signed in with when they asked for the grant.
    .addColumn('credential_type', 'varchar(16)', (c) => c.notNull())
    .addColumn('credential_id', 'integer', (c) => c.notNull())
    .addColumn('org_id', 'integer', (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addColumn('device_id', 'integer', (c) => c.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('device_uuid', 'varchar(64)', (c) => c.notNull())
    .addColumn('port', 'integer', (c) => c.notNull())
    // 1: the device serves HTTPS on the port (TLS over the stream).
    .addColumn('tls', 'integer', (c) => c.notNull())
    .addColumn('created_at', bigint, (c) => c.notNull())
    .addColumn('grant_expires_at', bigint, (c) => c.notNull())
    .addColumn('entered_at', bigint)
    .addColumn('expires_at', bigint)
    .execute();
  await db.schema
    .createIndex('device_web_sessions_created')
    .on('device_web_sessions')
    .column('created_at')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('device_web_sessions').execute();
}
