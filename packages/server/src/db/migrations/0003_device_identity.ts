import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.ts';

/**
 * Device identity and enrollment (DESIGN section 5): provisioning keys, device API keys, Mender-style auth
 * sets, recovery candidates after database loss, inventory, decommissioning and a device limit.
 */
export async function up(db: Kysely<unknown>, { id, bigint }: MigrationContext): Promise<void> {
  // null = unlimited; 0 = no device may be accepted.
  await db.schema.alterTable('organizations').addColumn('device_limit', 'integer').execute();

  await db.schema.alterTable('devices').addColumn('os_version', 'varchar(128)').execute();
  await db.schema.alterTable('devices').addColumn('agent_version', 'varchar(128)').execute();
  // Inventory attributes as sent by the device: a JSON object of name → value.
  await db.schema.alterTable('devices').addColumn('attributes', 'text').execute();
  await db.schema.alterTable('devices').addColumn('attributes_updated_at', bigint).execute();
  await db.schema.alterTable('devices').addColumn('decommissioned_at', bigint).execute();
  // Device tokens (JWTs) issued before this moment are refused: set on decommission and credential revocation.
  await db.schema.alterTable('devices').addColumn('tokens_valid_after', bigint).execute();

  await db.schema
    .createTable('provisioning_keys')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('org_id', 'integer', (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    .addColumn('fleet_id', 'integer', (c) => c.notNull().references('fleets.id').onDelete('cascade'))
    .addColumn('name', 'varchar(128)', (c) => c.notNull())
    .addColumn('key_hash', 'char(64)', (c) => c.notNull().unique())
    .addColumn('key_prefix', 'varchar(16)', (c) => c.notNull())
    .addColumn('max_uses', 'integer')
    .addColumn('uses', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_by', 'integer', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('created_at', bigint, (c) => c.notNull())
    .addColumn('expires_at', bigint)
    .addColumn('last_used_at', bigint)
    .addColumn('revoked_at', bigint)
    .execute();
  await db.schema.createIndex('provisioning_keys_fleet').on('provisioning_keys').column('fleet_id').execute();

  await db.schema
    .createTable('device_keys')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('device_id', 'integer', (c) => c.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('key_hash', 'char(64)', (c) => c.notNull().unique())
    // register | rotate | import | recovery
    .addColumn('origin', 'varchar(16)', (c) => c.notNull())
    .addColumn('created_at', bigint, (c) => c.notNull())
    .addColumn('last_used_at', bigint)
    .addColumn('revoked_at', bigint)
    .execute();
  await db.schema.createIndex('device_keys_device').on('device_keys').column('device_id').execute();

  await db.schema
    .createTable('auth_sets')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('org_id', 'integer', (c) => c.notNull().references('organizations.id').onDelete('cascade'))
    // The device once accepted or preauthorized; null while an unknown identity waits in the pending queue.
    .addColumn('device_id', 'integer', (c) => c.references('devices.id').onDelete('cascade'))
    // The fleet a pending set is proposed for (from the provisioning key used as tenant token), if any.
    .addColumn('fleet_id', 'integer', (c) => c.references('fleets.id').onDelete('set null'))
    .addColumn('identity', 'text', (c) => c.notNull())
    .addColumn('identity_hash', 'char(64)', (c) => c.notNull())
    .addColumn('public_key', 'text', (c) => c.notNull())
    .addColumn('public_key_hash', 'char(64)', (c) => c.notNull())
    // rsa | ecdsa-p256 | ecdsa-p384 | ed25519
    .addColumn('key_type', 'varchar(16)', (c) => c.notNull())
    // pending | accepted | rejected | preauthorized
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('source_ip', 'varchar(64)')
    .addColumn('created_at', bigint, (c) => c.notNull())
    .addColumn('updated_at', bigint, (c) => c.notNull())
    .addColumn('last_request_at', bigint)
    .addColumn('request_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addUniqueConstraint('auth_sets_identity_key', ['org_id', 'identity_hash', 'public_key_hash'])
    .execute();
  await db.schema
    .createIndex('auth_sets_org_status')
    .on('auth_sets')
    .columns(['org_id', 'status', 'id'])
    .execute();
  await db.schema.createIndex('auth_sets_device').on('auth_sets').column('device_id').execute();

  // A device presenting a uuid + key the server does not know (after a database loss): kept for adoption,
  // with the key's hash only. Server-wide: nothing says which organization it belonged to.
  await db.schema
    .createTable('recovery_candidates')
    .addColumn('id', id, (c) => c.primaryKey())
    .addColumn('uuid', 'char(32)', (c) => c.notNull())
    .addColumn('key_hash', 'char(64)', (c) => c.notNull())
    .addColumn('source_ip', 'varchar(64)')
    .addColumn('agent_version', 'varchar(128)')
    .addColumn('first_seen_at', bigint, (c) => c.notNull())
    .addColumn('last_seen_at', bigint, (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(1))
    .addUniqueConstraint('recovery_candidates_uuid_key', ['uuid', 'key_hash'])
    .execute();
}
