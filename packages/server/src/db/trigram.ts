/**
 * PostgreSQL: the schema that holds the pg_trgm extension (trigram indexes, for searching text inside names),
 * after creating it in `public` when the server has it and it is not created yet; `undefined` when this database
 * cannot have it (PostgreSQL's contrib modules not installed, or no right to create it). `run` sends one
 * statement; inside a transaction the attempt is made under a savepoint, so a refusal leaves it usable.
 */
export async function trigramSchema(
  run: (statement: string) => Promise<{ rows: unknown[] }>,
  inTransaction: boolean,
): Promise<string | undefined> {
  const installed = async () =>
    (
      (
        await run(
          "select n.nspname as schema from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = 'pg_trgm'",
        )
      ).rows[0] as { schema: string } | undefined
    )?.schema;
  const schema = await installed();
  if (schema) return schema;
  const available = await run("select 1 from pg_available_extensions where name = 'pg_trgm'");
  if (!available.rows.length) return undefined;
  if (inTransaction) await run('savepoint fleetgate_trigram');
  try {
    await run('create extension if not exists pg_trgm schema public');
    if (inTransaction) await run('release savepoint fleetgate_trigram');
  } catch {
    if (inTransaction) await run('rollback to savepoint fleetgate_trigram');
    // Another migration may have made it meanwhile (a duplicate key in pg_extension): then it is there.
    return installed();
  }
  return installed();
}
