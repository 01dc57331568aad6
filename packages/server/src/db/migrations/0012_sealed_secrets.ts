import type { Kysely } from 'kysely';

/**
 * Secret variables sealed at rest (issue 18): `key_id` names the key that sealed the row's `value`
 * (`v1:<key id>:…`, see infra/secrets); null = the value is plain (every non-secret value, and secret values
 * written before this migration). The sealing itself needs the key ring, which migrations do not have: each
 * start seals the secret rows still plain (`sealPlainSecretVariables`), which makes it idempotent and also
 * covers rows an older instance writes during a rolling upgrade.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  for (const table of ['fleet_variables', 'device_variables']) {
    await db.schema.alterTable(table).addColumn('key_id', 'varchar(32)').execute();
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['fleet_variables', 'device_variables']) {
    await db.schema.alterTable(table).dropColumn('key_id').execute();
  }
}
