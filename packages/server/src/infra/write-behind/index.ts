/**
 * Write-behind: facts that would otherwise cost a database write on every request (an auth set's request
 * count, a device key's last use) are folded together in memory, per key, and written in one batch at most
 * `delayMs` later, when the app closes, and whenever a reader asks for them first (`flush`). One is made per
 * app in `buildApp` and carried in `ServiceDeps`: nothing here is module state.
 *
 * What waits here is lost if the process dies: only use it for counters and times that may lag or drop, never
 * for records.
 */

export interface WriteBehind<K, I> {
  /** Notes `input` for `key`; written within the delay. Never waits for the database. */
  record(key: K, input: I): void;
  /** Writes what was recorded so far; resolves when it, and every batch before it, is in the database. */
  flush(): Promise<void>;
}

export interface WriteBehindOptions<K, I, V> {
  /** How long a recorded input may wait before its batch is written, in milliseconds. */
  delayMs: number;
  /** Folds an input into what already waits for its key (`undefined`: nothing yet); may change `waiting`. */
  merge: (waiting: V | undefined, input: I) => V;
  /** Writes one batch (splitting it into statements as it needs). */
  write: (batch: Map<K, V>) => Promise<void>;
  /** Told when a batch could not be written: the batch is dropped, the next ones are still written. */
  onError: (err: unknown, keys: number) => void;
}

export function writeBehind<K, I, V>(options: WriteBehindOptions<K, I, V>): WriteBehind<K, I> {
  let waiting = new Map<K, V>();
  let timer: NodeJS.Timeout | undefined;
  /** The last batch started: a flush waits for the ones before it, so batches land in order. */
  let writing: Promise<void> = Promise.resolve();

  const flush = (): Promise<void> => {
    clearTimeout(timer);
    timer = undefined;
    const batch = waiting;
    if (batch.size === 0) return writing;
    waiting = new Map();
    writing = writing.then(() =>
      options.write(batch).catch((err: unknown) => options.onError(err, batch.size)),
    );
    return writing;
  };

  return {
    record(key, input) {
      waiting.set(key, options.merge(waiting.get(key), input));
      // Unref'd: a pending batch never keeps the process alive; closing the app flushes what is left.
      timer ??= setTimeout(() => void flush(), options.delayMs).unref();
    },
    flush,
  };
}
