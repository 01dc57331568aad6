import type { ServiceDeps } from '../../infra/service/index.ts';

/**
 * `device_keys.last_used_at` is written at most once a minute per key, but a fleet whose devices call in
 * every minute or so would still make nearly every key check a database write. The keys used are collected
 * here instead and written together once per `LAST_USED_FLUSH_MS`, when the server closes, and before a key
 * list shows them (`flushDeviceKeyUsage`).
 */

/** How long a key's use may wait before it is written, in milliseconds. */
export const LAST_USED_FLUSH_MS = 1000;
/**
 * Keys updated per statement, each statement in a turn of the event loop of its own. On SQLite a statement
 * holds the process while it runs, and the keys come in waves: after a restart every device's first check
 * falls within the same second or two (and a minute later, when each is due again). 10,000 keys written
 * back to back, 1,000 per statement, held every request waiting meanwhile ~8 ms; 250 keys take 0.2–0.6 ms,
 * with the requests that arrived meanwhile answered before the next statement.
 */
export const KEYS_PER_STATEMENT = 250;

class DeviceKeyUsage {
  /** Key id → when it was last used (epoch ms). */
  private pending = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  /** The last write started: a flush waits for the ones before it. */
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly deps: ServiceDeps) {}

  record(keyId: number, at: number): void {
    this.pending.set(keyId, Math.max(at, this.pending.get(keyId) ?? 0));
    // Unref'd: a pending flush never keeps the process alive; closing the server flushes what is left.
    this.timer ??= setTimeout(() => void this.flush(), LAST_USED_FLUSH_MS).unref();
  }

  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    if (batch.size === 0) return this.writing;
    this.pending = new Map();
    this.writing = this.writing.then(() =>
      writeUsage(this.deps, batch).catch((err: unknown) =>
        this.deps.log.warn({ err, keys: batch.size }, 'could not write device keys’ last use; it is lost'),
      ),
    );
    return this.writing;
  }
}

/** The keys of a batch were used within `LAST_USED_FLUSH_MS` of each other: one time for all is precise enough. */
async function writeUsage(deps: ServiceDeps, batch: Map<number, number>): Promise<void> {
  const ids = [...batch.keys()];
  let at = 0;
  for (const usedAt of batch.values()) at = Math.max(at, usedAt);
  for (let first = 0; first < ids.length; first += KEYS_PER_STATEMENT) {
    // setImmediate runs after the event loop has polled for I/O: requests that arrived meanwhile go first.
    if (first > 0) await new Promise((resolve) => setImmediate(resolve));
    await deps.db
      .updateTable('device_keys')
      .set({ last_used_at: at })
      .where('id', 'in', ids.slice(first, first + KEYS_PER_STATEMENT))
      .execute();
  }
}

/** One collector per running server (tests start many in one process). */
const collectors = new WeakMap<ServiceDeps, DeviceKeyUsage>();

/** Notes that a device key was used at `at`; written within `LAST_USED_FLUSH_MS`. */
export function recordDeviceKeyUse(deps: ServiceDeps, keyId: number, at: number): void {
  let collector = collectors.get(deps);
  if (!collector) {
    collector = new DeviceKeyUsage(deps);
    collectors.set(deps, collector);
  }
  collector.record(keyId, at);
}

/** Writes the recorded key uses now: before a key list shows them, and when the server closes. */
export function flushDeviceKeyUsage(deps: ServiceDeps): Promise<void> {
  return collectors.get(deps)?.flush() ?? Promise.resolve();
}
