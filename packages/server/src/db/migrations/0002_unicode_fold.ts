import { type Kysely, sql } from 'kysely';
import type { MigrationContext } from './index.ts';

/**
 * `fold(text)`: lower case for every script, used by case-insensitive search. SQLite's built-in `lower`
 * folds ASCII only, so on SQLite fleetgate registers `fold` on each connection instead (infra/db).
 */
export async function up(db: Kysely<unknown>, { dialect }: MigrationContext): Promise<void> {
  if (dialect !== 'postgres') return;
  await sql`create or replace function fold(value text) returns text language sql immutable strict as 'select lower(value)'`.execute(
    db,
  );
}
