import type { EventBus } from '../../infra/events/index.ts';

/**
 * How many devices match a list's filters, kept between requests. Counting an organization's 100,000 devices
 * costs 4-20 ms on SQLite (every matching index entry is read), far more than the page itself, and a UI asks
 * for the same total with every page and every sort.
 *
 * An entry is dropped when the app commits any write (`write.committed`), when presence is written and the
 * entry filters by status (`presence.written`: presence changes statuses, never which devices exist or their
 * names), and after `maxAgeMs` in any case: writes from another process on the same database, and the few
 * device-side writes that do not go through `write()` (a pending auth set attached to an existing device), show
 * in the total within that time.
 */
export class DeviceTotals {
  private readonly entries = new Map<string, { total: number; at: number; byStatus: boolean }>();
  private readonly counting = new Map<string, Promise<number>>();
  /** Bumped on every drop: a count that started before it may have read the rows as they were, so is not kept. */
  private generation = 0;

  /**
   * @param maxAgeMs how long a total is kept without a write (default 10 s)
   * @param maxEntries at most this many filter combinations are kept, the oldest dropped first (default 1,000)
   */
  constructor(
    events: EventBus,
    private readonly maxAgeMs = 10_000,
    private readonly maxEntries = 1_000,
  ) {
    events.on('write.committed', () => this.drop(() => true));
    events.on('presence.written', () => this.drop((entry) => entry.byStatus));
  }

  /** The total for `key` (the caller's scope and filters), counted by `count` when not kept. */
  async total(key: string, byStatus: boolean, count: () => Promise<number>): Promise<number> {
    const now = Date.now();
    const kept = this.entries.get(key);
    if (kept && now - kept.at < this.maxAgeMs) return kept.total;
    // Requests that miss together wait for one count, not one each.
    const counting = this.counting.get(key);
    if (counting) return counting;
    const generation = this.generation;
    const promise = count();
    this.counting.set(key, promise);
    let total: number;
    try {
      total = await promise;
    } finally {
      this.counting.delete(key);
    }
    if (generation === this.generation) {
      this.entries.delete(key);
      if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(key, { total, at: now, byStatus });
    }
    return total;
  }

  private drop(which: (entry: { byStatus: boolean }) => boolean): void {
    this.generation++;
    for (const [key, entry] of this.entries) if (which(entry)) this.entries.delete(key);
  }
}
