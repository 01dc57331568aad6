import type { Db } from '../../infra/db/index.ts';
import type { Logger } from '../../infra/logging/index.ts';
import { type WriteBehind, writeBehind } from '../../infra/write-behind/index.ts';

/**
 * `device_keys.last_used_at` is written at most once a minute per key, but a fleet whose devices call in
 * every minute or so would still make nearly every key check a database write. The keys used are collected
 * here instead and written together once per `LAST_USED_FLUSH_MS`, when the server closes, and before a key
 * list shows them (`deps.deviceKeyUsage.flush()`).
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

/** The app's record of device key uses (made in `buildApp`): `record(keyId, at)` notes one use. */
export function createDeviceKeyUsage(db: Db, log: Logger): WriteBehind<number, number> {
  return writeBehind<number, number, number>({
    delayMs: LAST_USED_FLUSH_MS,
    merge: (lastAt, at) => Math.max(at, lastAt ?? 0),
    write: (batch) => writeUsage(db, batch),
    onError: (err, keys) => log.warn({ err, keys }, 'could not write device keys’ last use; it is lost'),
  });
}

/** The keys of a batch were used within `LAST_USED_FLUSH_MS` of each other: one time for all is precise enough. */
async function writeUsage(db: Db, batch: Map<number, number>): Promise<void> {
  const ids = [...batch.keys()];
  let at = 0;
  for (const usedAt of batch.values()) at = Math.max(at, usedAt);
  for (let first = 0; first < ids.length; first += KEYS_PER_STATEMENT) {
    // setImmediate runs after the event loop has polled for I/O: requests that arrived meanwhile go first.
    if (first > 0) await new Promise((resolve) => setImmediate(resolve));
    await db
      .updateTable('device_keys')
      .set({ last_used_at: at })
      .where('id', 'in', ids.slice(first, first + KEYS_PER_STATEMENT))
      .execute();
  }
}
