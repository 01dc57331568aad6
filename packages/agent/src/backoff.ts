/**
 * Reconnect delays: exponential backoff with FULL jitter (AWS's "Exponential Backoff and Jitter"):
 *
 *   delay = random(0, min(cap, base * 2^attempt))
 *
 * Full jitter rather than "base * 2^attempt ± a little": when a server restarts, every agent loses its
 * tunnel in the same millisecond; with a fixed or mostly-fixed delay they would all come back in the same
 * millisecond too (the thundering herd of meta-balena#2621). Drawing the whole delay at random spreads
 * even the FIRST retry over [0, base), and later retries over ever wider windows.
 *
 * A server that closes the tunnel with "going away" (4001) is restarting on purpose and will be back in seconds:
 * for the next few minutes the window stops growing at `restartCapMs` (default 10 s) instead of `capMs`. Agents
 * that lost their tunnel together then come back within ~10 s of the new server listening — spread over those
 * 10 s (10,000 agents ≈ 1,000 handshakes/s) — rather than over windows that kept doubling while it was down.
 * After `RESTART_WINDOW_MS` the normal cap applies again, so a server that stays down is not polled every few
 * seconds for hours.
 */

/** How long after a "going away" close the restart cap applies. */
export const RESTART_WINDOW_MS = 5 * 60_000;

export interface BackoffOptions {
  /** The first window, in milliseconds. Default 1000. */
  baseMs: number;
  /** The largest window, in milliseconds. Default 300 000 (5 minutes). */
  capMs: number;
  /** The largest window for a few minutes after the server said it was restarting. Default: `capMs`. */
  restartCapMs?: number;
  /** A uniform random number in [0, 1). Default `Math.random`; tests pass their own. */
  random?: () => number;
  /** The clock, in milliseconds. Default `Date.now`; tests pass their own. */
  now?: () => number;
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
  /** Until when the restart cap applies (0: it does not). */
  private restartUntil = 0;

  constructor(private readonly options: BackoffOptions) {}

  /** Failed attempts since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The delay before the next attempt; counts this attempt. */
  next(): number {
    const delay = fullJitterDelay(this.attempt, { ...this.options, capMs: this.currentCap() });
    // Stop counting once the window is at the cap: the attempt number would only grow without meaning.
    if (backoffWindow(this.attempt, this.options) < this.options.capMs) this.attempt += 1;
    return delay;
  }

  /** Jumps to the widest window: for answers that say "not now" (403, 429 without a hint). */
  toCap(): void {
    this.restartUntil = 0;
    while (backoffWindow(this.attempt, this.options) < this.options.capMs) this.attempt += 1;
  }

  /** The server closed with "going away": keep the windows short while it restarts. */
  serverRestarting(): void {
    if (this.options.restartCapMs !== undefined) this.restartUntil = this.now() + RESTART_WINDOW_MS;
  }

  /** The tunnel ended for another reason: the normal cap applies again. */
  restartOver(): void {
    this.restartUntil = 0;
  }

  reset(): void {
    this.attempt = 0;
    this.restartUntil = 0;
  }

  private currentCap(): number {
    const { capMs, restartCapMs } = this.options;
    if (restartCapMs === undefined || this.restartUntil === 0) return capMs;
    if (this.now() >= this.restartUntil) {
      this.restartUntil = 0;
      return capMs;
    }
    return Math.min(capMs, restartCapMs);
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
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
