import { PostgresAdapter, type RawBuilder, sql } from 'kysely';
import type { Db } from '../../infra/db/index.ts';

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
 * SQL for the tags of the owner whose id is in `ownerColumn` of the outer query, as the text of a JSON object, its
 * keys in `tagsOf`'s order (`order by key`): `JSON.parse` of it is the object `tagsOf` builds (own keys,
 * `__proto__` included, in the same order). A page of 50 devices reads its ~125 tags as 50 strings in its own
 * statement this way, where a second query made an object for every tag row and merged them by owner.
 */
export function tagsJsonExpression(db: Db, target: TagTarget, ownerColumn: string): RawBuilder<string> {
  const owner = sql.ref(ownerColumn);
  const tags = sql.table(target.table);
  const column = sql.ref(`t.${target.ownerColumn}`);
  // PostgreSQL's aggregate gives null over no rows, SQLite's `{}`; as text on both (pg would parse json itself).
  return db.getExecutor().adapter instanceof PostgresAdapter
    ? sql<string>`coalesce((select json_object_agg(t.key, t.value order by t.key)::text from ${tags} t where ${column} = ${owner}), '{}')`
    : sql<string>`(select json_group_object(t.key, t.value order by t.key) from ${tags} t where ${column} = ${owner})`;
}

type TagRow = { owner: number; key: string; value: string };

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
