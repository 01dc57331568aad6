import { type CompiledQuery, sql } from 'kysely';
import { type Db, padIds, readNow } from '../../infra/db/index.ts';

/**
 * Key/value tags on devices and fleets. These helpers only read and write rows; the devices and fleets
 * services authorize and audit around them.
 */
export type TagTarget =
  | { table: 'device_tags'; ownerColumn: 'device_id' }
  | { table: 'fleet_tags'; ownerColumn: 'fleet_id' };

export const deviceTags: TagTarget = { table: 'device_tags', ownerColumn: 'device_id' };
export const fleetTags: TagTarget = { table: 'fleet_tags', ownerColumn: 'fleet_id' };

/** Tags of several owners at once (one query for a page of devices), as `ownerId → {key: value}`. */
export async function tagsOf(
  db: Db,
  target: TagTarget,
  ownerIds: number[],
): Promise<Map<number, Record<string, string>>> {
  if (!ownerIds.length) return new Map();
  const rows = await tagsQuery(target, ownerIds).execute(db);
  return tagsByOwner(ownerIds, rows.rows);
}

/**
 * `tagsOf` for reads outside any transaction (a page of the device list, a device's view): through `readNow`,
 * one statement per padded list length (`padIds`), prepared once; on SQLite on the read connection.
 */
export async function tagsNow(
  db: Db,
  target: TagTarget,
  ownerIds: number[],
): Promise<Map<number, Record<string, string>>> {
  if (!ownerIds.length) return new Map();
  const ids = padIds(ownerIds);
  let compiled = compiledTagQueries.get(db);
  if (!compiled) {
    compiled = new Map();
    compiledTagQueries.set(db, compiled);
  }
  const key = `${target.table}:${ids.length}`;
  let query = compiled.get(key);
  if (!query) {
    query = tagsQuery(target, ids).compile(db);
    compiled.set(key, query);
  }
  return tagsByOwner(ownerIds, await readNow(db, query, ids));
}

type TagRow = { owner: number; key: string; value: string };
const compiledTagQueries = new WeakMap<Db, Map<string, CompiledQuery<TagRow>>>();

function tagsQuery(target: TagTarget, ownerIds: number[]) {
  return sql<TagRow>`
    select ${sql.ref(target.ownerColumn)} as owner, key, value from ${sql.table(target.table)}
    where ${sql.ref(target.ownerColumn)} in (${sql.join(ownerIds)}) order by key`;
}

function tagsByOwner(ownerIds: number[], rows: TagRow[]): Map<number, Record<string, string>> {
  const entries = new Map<number, [string, string][]>(ownerIds.map((id) => [id, []]));
  for (const r of rows) entries.get(Number(r.owner))!.push([r.key, r.value]);
  // Object.fromEntries defines each key as its own property: a key named like an Object.prototype member
  // stays a tag (`tags[key] = value` would set the prototype for `__proto__`).
  return new Map([...entries].map(([owner, tags]) => [owner, Object.fromEntries(tags)]));
}

export async function putTag(
  db: Db,
  target: TagTarget,
  ownerId: number,
  key: string,
  value: string,
): Promise<void> {
  await sql`
    insert into ${sql.table(target.table)} (${sql.ref(target.ownerColumn)}, key, value) values (${ownerId}, ${key}, ${value})
    on conflict (${sql.ref(target.ownerColumn)}, key) do update set value = excluded.value`.execute(db);
}

/** Deletes a tag; `false` when there was none. */
export async function deleteTag(db: Db, target: TagTarget, ownerId: number, key: string): Promise<boolean> {
  const result = await sql`
    delete from ${sql.table(target.table)} where ${sql.ref(target.ownerColumn)} = ${ownerId} and key = ${key}`.execute(
    db,
  );
  return Number(result.numAffectedRows ?? 0) > 0;
}
