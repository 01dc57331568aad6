import os from 'node:os';
import type { Db } from '../../infra/db/index.ts';
import type { Logger } from '../../infra/logging/index.ts';

/**
 * The instance registry (issue 19): every running fleetgate writes a row for itself and refreshes its heartbeat
 * every `HEARTBEAT_MS`. An instance whose heartbeat is older than `DEAD_AFTER_MS` is dead; the first instance to
 * notice deletes its row (one DELETE, so only one instance wins) and closes what it held: its devices' presence
 * and its live sessions, through the callback the app gives (`onDead`), which asks the features owning them.
 *
 * On SQLite only one instance may run: a start that finds another live one on the same file stops with an error
 * that says so. On PostgreSQL any number may run.
 */

/** How often an instance refreshes its heartbeat, in milliseconds. */
export const HEARTBEAT_MS = 2_000;
/** A heartbeat older than this, in milliseconds, means the instance is dead. */
export const DEAD_AFTER_MS = 10_000;

export interface RegistryOptions {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  log: Logger;
  /** This instance's id. */
  instanceId: string;
  /** Its internal link, for the other instances; undefined = none. */
  internalUrl: string | undefined;
  /**
   * Closes what dead instances held (devices' presence, sessions). Runs once per dead instance found, by the
   * instance that removed its row; at start, for every instance found dead (and for rows from before instances
   * were recorded).
   */
  onDead(instanceIds: string[]): Promise<void>;
  /**
   * This instance was found dead by another one (its heartbeat stalled past `DEAD_AFTER_MS`: a long pause): its
   * presence has been closed by that one, so it must drop what it holds and let devices reconnect.
   */
  onRevived(): void;
}

/** Another instance runs on the same SQLite file. */
export class SecondInstanceError extends Error {
  constructor(other: { host: string; pid: number }) {
    super(
      `another fleetgate (process ${other.pid} on ${other.host}) is running on this SQLite database: SQLite serves ` +
        'one instance. Stop it first, or run several instances on one PostgreSQL database (DATABASE_URL).',
    );
    this.name = 'SecondInstanceError';
  }
}

export class InstanceRegistry {
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | undefined;
  private readonly host = os.hostname().slice(0, 255);

  constructor(private readonly options: RegistryOptions) {}

  /**
   * Registers this instance and closes what dead instances left (before this instance accepts any tunnel), then
   * heartbeats. On SQLite, throws `SecondInstanceError` when another instance runs on the file.
   */
  async start(): Promise<void> {
    const { db, dialect } = this.options;
    const now = Date.now();
    const others = await db.selectFrom('instances').selectAll().execute();
    const dead: string[] = [];
    for (const other of others) {
      const stale = other.heartbeat_at < now - DEAD_AFTER_MS;
      // A process on this machine that no longer exists held it: dead now, not in ten seconds. On SQLite (a file
      // on this machine) so is one of another machine (the file was copied or restored here), and an app of
      // this very process that did not stop: one instance per file, it cannot be serving.
      const gone =
        other.host === this.host
          ? !processExists(other.pid) || (dialect === 'sqlite' && other.pid === process.pid)
          : dialect === 'sqlite';
      if (stale || gone) dead.push(other.id);
      else if (dialect === 'sqlite') throw new SecondInstanceError(other);
    }
    await this.reap(dead, { atStart: true });
    await this.insertSelf(now);
    this.timer = setInterval(() => {
      this.beating ??= this.beat().finally(() => {
        this.beating = undefined;
      });
    }, HEARTBEAT_MS).unref();
  }

  private async insertSelf(now: number): Promise<void> {
    await this.options.db
      .insertInto('instances')
      .values({
        id: this.options.instanceId,
        host: this.host,
        pid: process.pid,
        internal_url: this.options.internalUrl ?? null,
        started_at: now,
        heartbeat_at: now,
      })
      .execute();
  }

  /** Stops heartbeating and removes this instance's row (what it held was closed by the app's own stop). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.beating;
    await this.options.db.deleteFrom('instances').where('id', '=', this.options.instanceId).execute();
  }

  /** One heartbeat, then a look for instances that stopped beating. */
  private async beat(): Promise<void> {
    const { db, log, instanceId } = this.options;
    const now = Date.now();
    try {
      const updated = await db
        .updateTable('instances')
        .set({ heartbeat_at: now })
        .where('id', '=', instanceId)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) === 0) {
        log.error(
          'another instance found this one dead (its heartbeat stalled): dropping its tunnels so devices reconnect',
        );
        this.options.onRevived();
        await this.insertSelf(now);
      }
      const stale = await db
        .selectFrom('instances')
        .select('id')
        .where('heartbeat_at', '<', now - DEAD_AFTER_MS)
        .execute();
      if (stale.length) await this.reap(stale.map((s) => s.id));
    } catch (err) {
      log.warn({ err }, 'instance heartbeat failed; trying again');
    }
  }

  /** Removes dead instances' rows (each by one instance only) and closes what they held. */
  private async reap(ids: string[], { atStart = false } = {}): Promise<void> {
    const { db, log } = this.options;
    const won: string[] = [];
    for (const id of ids) {
      const removed = await db
        .deleteFrom('instances')
        .where('id', '=', id)
        .where('heartbeat_at', '<', atStart ? Number.MAX_SAFE_INTEGER : Date.now() - DEAD_AFTER_MS)
        .executeTakeFirst();
      if (Number(removed.numDeletedRows) > 0) won.push(id);
    }
    if (won.length)
      log.warn({ instances: won }, `${won.length} fleetgate instance(s) stopped without saying so`);
    // At start also for what no recorded instance holds (written before instances were recorded).
    if (won.length || atStart) await this.options.onDead(won);
  }
}

/** Whether an instance runs: its heartbeat is fresh. */
export async function instanceRuns(db: Db, instanceId: string): Promise<boolean> {
  const row = await db
    .selectFrom('instances')
    .select('heartbeat_at')
    .where('id', '=', instanceId)
    .executeTakeFirst();
  return !!row && row.heartbeat_at >= Date.now() - DEAD_AFTER_MS;
}

/** The internal link of a running instance, or undefined when it does not run or has none. */
export async function internalUrlOf(db: Db, instanceId: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('instances')
    .select(['internal_url', 'heartbeat_at'])
    .where('id', '=', instanceId)
    .executeTakeFirst();
  if (!row || row.heartbeat_at < Date.now() - DEAD_AFTER_MS) return undefined;
  return row.internal_url ?? undefined;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
