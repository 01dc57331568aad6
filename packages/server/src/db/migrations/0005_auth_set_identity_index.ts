import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.ts';

/**
 * A signed auth request finds its auth sets by identity and key hash in every organization (a device
 * preauthorized anywhere needs no tenant token). The unique constraint starts with `org_id`, so without this
 * index that lookup read the whole table on each request.
 */
export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  await db.schema
    .createIndex('auth_sets_identity_key_hash')
    .on('auth_sets')
    .columns(['identity_hash', 'public_key_hash'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('auth_sets_identity_key_hash').execute();
}
