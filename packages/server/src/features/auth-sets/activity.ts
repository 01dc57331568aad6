import { sql } from 'kysely';
import type { ServiceDeps } from '../../infra/service/index.ts';

/**
 * Each signed auth request counts on its auth set (`request_count`, `last_request_at`). Writing that row on
 * every request made the auth request a database write: on PostgreSQL a commit that waits for the WAL to
 * reach the disk, on SQLite a WAL append. The counts are collected here instead and written together, in one
 * statement, at most `ACTIVITY_FLUSH_MS` later, when the server closes, and before anything shows them
 * (`flushAuthSetActivity`), so a reader never sees a count older than the requests already answered.
 */

/** How long a counted request may wait before it is written, in milliseconds. */
export const ACTIVITY_FLUSH_MS = 1000;
/** Auth sets updated per statement (3 parameters each: well below both dialects' limits). */
const SETS_PER_STATEMENT = 500;

interface Activity {
  count: number;
  lastAt: number;
}

class AuthSetActivity {
  private pending = new Map<number, Activity>();
  private timer: NodeJS.Timeout | undefined;
  /** The last write started: a flush waits for the ones before it, so counts land in order. */
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly deps: ServiceDeps) {}

  record(authSetId: number, at: number): void {
    const activity = this.pending.get(authSetId);
    if (activity) {
      activity.count++;
      activity.lastAt = Math.max(activity.lastAt, at);
    } else {
      this.pending.set(authSetId, { count: 1, lastAt: at });
    }
    // Unref'd: a pending flush never keeps the process alive; closing the server flushes what is left.
    this.timer ??= setTimeout(() => void this.flush(), ACTIVITY_FLUSH_MS).unref();
  }

  /** Writes what was counted so far; resolves when it (and every earlier write) is in the database. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    if (batch.size === 0) return this.writing;
    this.pending = new Map();
    this.writing = this.writing.then(() =>
      writeActivity(this.deps, batch).catch((err: unknown) =>
        this.deps.log.warn({ err, sets: batch.size }, 'could not write auth request counts; they are lost'),
      ),
    );
    return this.writing;
  }
}

/**
 * One `UPDATE … FROM (VALUES …)` per batch (SQLite ≥ 3.33 and PostgreSQL). A set created after the requests
 * counted for its id is left alone: SQLite may give a deleted set's id to the next new set.
 */
async function writeActivity(deps: ServiceDeps, batch: Map<number, Activity>): Promise<void> {
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
      where auth_sets.id = v.column1 and auth_sets.created_at <= v.column3`.execute(deps.db);
  }
}

/** One collector per running server (tests start many in one process). */
const collectors = new WeakMap<ServiceDeps, AuthSetActivity>();

function collectorOf(deps: ServiceDeps): AuthSetActivity {
  let collector = collectors.get(deps);
  if (!collector) {
    collector = new AuthSetActivity(deps);
    collectors.set(deps, collector);
  }
  return collector;
}

/** Counts one auth request on an auth set, written within `ACTIVITY_FLUSH_MS`. */
export function recordAuthRequest(deps: ServiceDeps, authSetId: number, at: number): void {
  collectorOf(deps).record(authSetId, at);
}

/** Writes the counted auth requests now; before showing counts, and when the server closes. */
export function flushAuthSetActivity(deps: ServiceDeps): Promise<void> {
  return collectors.get(deps)?.flush() ?? Promise.resolve();
}
