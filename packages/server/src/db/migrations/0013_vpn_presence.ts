import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.ts';

/**
 * The OpenVPN backend (issue 17): a device may be online through its agent's tunnel, through OpenVPN, or both,
 * and people see which. The VPN link's presence has columns of its own beside the tunnel's (online through the
 * VPN while `vpn_connected_at` is later than `vpn_disconnected_at`), with the device's VPN address while it is
 * connected; each connection in the history says which link it was.
 */
export async function up(db: Kysely<unknown>, { bigint }: MigrationContext): Promise<void> {
  await db.schema.alterTable('devices').addColumn('vpn_connected_at', bigint).execute();
  await db.schema.alterTable('devices').addColumn('vpn_disconnected_at', bigint).execute();
  await db.schema.alterTable('devices').addColumn('vpn_address', 'varchar(45)').execute();
  await db.schema
    .alterTable('device_connections')
    .addColumn('link', 'varchar(16)', (c) => c.notNull().defaultTo('tunnel'))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('device_connections').dropColumn('link').execute();
  await db.schema.alterTable('devices').dropColumn('vpn_address').execute();
  await db.schema.alterTable('devices').dropColumn('vpn_disconnected_at').execute();
  await db.schema.alterTable('devices').dropColumn('vpn_connected_at').execute();
}
