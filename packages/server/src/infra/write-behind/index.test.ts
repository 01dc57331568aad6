import { afterEach, describe, expect, it, vi } from 'vitest';
import { writeBehind } from './index.ts';

/** A counter per key, as the auth sets' request counts use it. */
function counter(write: (batch: Map<string, number>) => Promise<void>, onError = vi.fn()) {
  return writeBehind<string, number, number>({
    delayMs: 1000,
    merge: (waiting, n) => (waiting ?? 0) + n,
    write,
    onError,
  });
}

describe('write-behind', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes what was recorded per key once, after the delay, not on every record', async () => {
    vi.useFakeTimers();
    const batches: [string, number][][] = [];
    const counts = counter(async (batch) => {
      batches.push([...batch]);
    });
    counts.record('a', 1);
    counts.record('b', 1);
    counts.record('a', 2);
    await vi.advanceTimersByTimeAsync(999);
    expect(batches).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(batches).toEqual([
      [
        ['a', 3],
        ['b', 1],
      ],
    ]);
    // Nothing recorded since: no empty batch.
    await vi.advanceTimersByTimeAsync(5000);
    expect(batches).toHaveLength(1);
  });

  it('writes at once on flush, batches in order, and goes on after a batch that failed', async () => {
    const written: string[] = [];
    const onError = vi.fn();
    let release!: () => void;
    const slow = new Promise<void>((resolve) => {
      release = resolve;
    });
    const counts = counter(async (batch) => {
      const keys = [...batch.keys()].join();
      if (keys === 'first') await slow;
      if (keys === 'broken') throw new Error('database gone');
      written.push(keys);
    }, onError);
    counts.record('first', 1);
    const first = counts.flush();
    counts.record('broken', 1);
    const broken = counts.flush();
    counts.record('second', 1);
    const second = counts.flush();
    // The later batches wait for the slow first one: nothing lands out of order.
    await new Promise((resolve) => setImmediate(resolve));
    expect(written).toEqual([]);
    release();
    await Promise.all([first, broken, second]);
    expect(written).toEqual(['first', 'second']);
    expect(onError).toHaveBeenCalledOnce();
    expect(onError.mock.calls[0]![1]).toBe(1);
  });
});
