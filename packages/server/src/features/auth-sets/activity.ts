import { sql } from 'kysely';
import type { Db } from '../../infra/db/index.ts';
import type { Logger } from '../../infra/logging/index.ts';
import { type WriteBehind, writeBehind } from '../../infra/write-behind/index.ts';

/**
 * Each signed auth request counts on its auth set (`request_count`, `last_request_at`). Writing that row on
 * every request made the auth request a database write: on PostgreSQL a commit that waits for the WAL to
 * reach the disk, on SQLite a WAL append. The counts are collected here instead and written together, in one
 * statement, at most `ACTIVITY_FLUSH_MS` later, when the server closes, and before anything shows them
 * (`deps.authSetActivity.flush()`), so a reader never sees a count older than the requests already answered.
 */

/** How long a counted request may wait before it is written, in milliseconds. */
export const ACTIVITY_FLUSH_MS = 1000;
/** Auth sets updated per statement (3 parameters each: well below both dialects' limits). */
const SETS_PER_STATEMENT = 500;

interface Activity {
  count: number;
  lastAt: number;
}

/** The app's auth request counter (made in `buildApp`): `record(authSetId, at)` counts one request. */
export function createAuthSetActivity(db: Db, log: Logger): WriteBehind<number, number> {
  return writeBehind<number, number, Activity>({
    delayMs: ACTIVITY_FLUSH_MS,
    merge: (activity, at) => {
      if (!activity) return { count: 1, lastAt: at };
      activity.count++;
      activity.lastAt = Math.max(activity.lastAt, at);
      return activity;
    },
    write: (batch) => writeActivity(db, batch),
    onError: (err, sets) => log.warn({ err, sets }, 'could not write auth request counts; they are lost'),
  });
}

/**
 * One `UPDATE … FROM (VALUES …)` per batch (SQLite ≥ 3.33 and PostgreSQL). A set created after the requests
 * counted for its id is left alone: SQLite may give a deleted set's id to the next new set.
 */
async function writeActivity(db: Db, batch: Map<number, Activity>): Promise<void> {
  const rows = [...batch];
  for (let first = 0; first < rows.length; first += SETS_PER_STATEMENT) {
    const values = rows
      .slice(first, first + SETS_PER_STATEMENT)
      .map(
        ([id, { count, lastAt }]) =>
          sql`(cast(${id} as bigint), cast(${count} as bigint), cast(${lastAt} as bigint))`,
      );
    await sql`update auth_sets
      set request_count = request_count + v.column2,
          last_request_at = case when last_request_at > v.column3 then last_request_at else v.column3 end
      from (values ${sql.join(values)}) as v
      where auth_sets.id = v.column1 and auth_sets.created_at <= v.column3`.execute(db);
  }
}
