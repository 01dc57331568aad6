/**
 * Reconnect delays: exponential backoff with FULL jitter (AWS's "Exponential Backoff and Jitter"):
 *
 *   delay = random(0, min(cap, base * 2^attempt))
 *
 * Full jitter rather than "base * 2^attempt ± a little": when a server restarts, every agent loses its
 * tunnel in the same millisecond; with a fixed or mostly-fixed delay they would all come back in the same
 * millisecond too (the thundering herd of meta-balena#2621). Drawing the whole delay at random spreads
 * even the FIRST retry over [0, base), and later retries over ever wider windows.
 */

export interface BackoffOptions {
  /** The first window, in milliseconds. Default 1000. */
  baseMs: number;
  /** The largest window, in milliseconds. Default 300 000 (5 minutes). */
  capMs: number;
  /** A uniform random number in [0, 1). Default `Math.random`; tests pass their own. */
  random?: () => number;
}

/** The window a delay is drawn from on `attempt` (0 = the first retry), in milliseconds. */
export function backoffWindow(attempt: number, options: Pick<BackoffOptions, 'baseMs' | 'capMs'>): number {
  // 2^attempt overflows to Infinity past ~1024; min() with the cap keeps it finite either way.
  return Math.min(options.capMs, options.baseMs * 2 ** Math.max(0, attempt));
}

/** A delay for `attempt`, uniformly distributed in [0, window), in whole milliseconds. */
export function fullJitterDelay(attempt: number, options: BackoffOptions): number {
  const random = options.random ?? Math.random;
  return Math.floor(random() * backoffWindow(attempt, options));
}

/** Counts failed attempts and answers the next delay; `reset()` after a connection that proved stable. */
export class Backoff {
  private attempt = 0;

  constructor(private readonly options: BackoffOptions) {}

  /** Failed attempts since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The delay before the next attempt; counts this attempt. */
  next(): number {
    const delay = fullJitterDelay(this.attempt, this.options);
    // Stop counting once the window is at the cap: the attempt number would only grow without meaning.
    if (backoffWindow(this.attempt, this.options) < this.options.capMs) this.attempt += 1;
    return delay;
  }

  /** Jumps to the widest window: for answers that say "not now" (403, 429 without a hint). */
  toCap(): void {
    while (backoffWindow(this.attempt, this.options) < this.options.capMs) this.attempt += 1;
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** Resolves after `ms` milliseconds, or at once (false) when `signal` aborts. Answers true when it slept. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
