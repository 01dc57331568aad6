import type { Kysely } from 'kysely';

/**
 * Service credentials (issue #5): an API key may be made for one service instead of for its creator. `service`
 * null is a person's key, acting as them with their rights; `openssh` is the OpenSSH bastion's key, which may only
 * look up registered SSH keys and open sessions as the owner of the SSH key sshd accepted (see `serviceActions`
 * in src/infra/access). Such keys are created by server administrators, hashed, shown once and revoked like any
 * other API key.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('api_keys').addColumn('service', 'varchar(32)').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('api_keys').dropColumn('service').execute();
}
