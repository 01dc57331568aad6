import { createHash } from 'node:crypto';
import type { EventBus } from '../events/index.ts';

/**
 * Counts failures per key in a fixed window. In memory and per process: enough to slow down guessing
 * against one instance; it forgets on restart, which only ever helps the legitimate user.
 */
export class FailureLimiter {
  private readonly failures = new Map<string, { count: number; resetAt: number }>();

  constructor(
    private readonly maxFailures: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds until `key` may try again, or 0 when it may try now. */
  retryAfter(key: string): number {
    const entry = this.failures.get(key);
    if (!entry) return 0;
    const now = this.now();
    if (entry.resetAt <= now) {
      this.failures.delete(key);
      return 0;
    }
    return entry.count >= this.maxFailures ? entry.resetAt - now : 0;
  }

  fail(key: string): void {
    const now = this.now();
    const entry = this.failures.get(key);
    if (!entry || entry.resetAt <= now) {
      this.failures.set(key, { count: 1, resetAt: now + this.windowMs });
      this.sweep(now);
    } else {
      entry.count++;
    }
  }

  /** Failures of `key` in its current window. */
  count(key: string): number {
    const entry = this.failures.get(key);
    return entry && entry.resetAt > this.now() ? entry.count : 0;
  }

  reset(key: string): void {
    this.failures.delete(key);
  }

  /**
   * Keeps memory bounded under a flood of distinct keys: expired entries go first, then the oldest (a Map
   * keeps insertion order), which forgets some failures rather than let a flood of keys exhaust memory.
   */
  private sweep(now: number): void {
    if (this.failures.size < SWEEP_AT) return;
    for (const [key, entry] of this.failures) if (entry.resetAt <= now) this.failures.delete(key);
    for (const key of this.failures.keys()) {
      if (this.failures.size <= MAX_KEYS) break;
      this.failures.delete(key);
    }
  }
}

const SWEEP_AT = 10_000;
const MAX_KEYS = 100_000;

/**
 * Slows down guessing at one identity (an account, a login, a device) without letting anyone lock its owner
 * out. Failures count per (identity, source), per source, and per identity:
 *
 * - a source that failed `perPair` times on an identity may not try it again until the window ends;
 * - a source that failed `perSource` times in all may not try anything (a scanner, whatever it aims at);
 * - an identity that failed `perIdentity` times in all, from everywhere, is under a spread-out attack: each
 *   source then gets one wrong guess on it, not `perPair`.
 *
 * A source that has not been failing on an identity (its owner, elsewhere) always gets its attempt: an attacker
 * can spend their own guesses, never the owner's. The answer to a refused attempt is the same whether the
 * credential would have been right or not, so a throttled source learns nothing.
 */
export class GuessThrottle {
  private readonly pairs: FailureLimiter;
  private readonly sources: FailureLimiter;
  private readonly identities: FailureLimiter;

  constructor(
    limits: { perPair: number; perSource: number; perIdentity: number; windowMs: number },
    now: () => number = Date.now,
    /** Counts shared with the other instances on the database (see `sharedGuessThrottle`). */
    private readonly shared?: SharedCounts,
  ) {
    this.pairs = new FailureLimiter(limits.perPair, limits.windowMs, now);
    this.sources = new FailureLimiter(limits.perSource, limits.windowMs, now);
    this.identities = new FailureLimiter(limits.perIdentity, limits.windowMs, now);
    shared?.events.on('guess.counted', (event) => {
      if (event.instanceId === shared.instanceId || event.throttle !== shared.name) return;
      if (event.outcome === 'failed') this.count(event.identity, event.source);
      else this.pairs.reset(pairKey(event.identity, event.source));
    });
  }

  /** Milliseconds until `source` may try `identity` again, or 0 when it may try now. */
  retryAfter(identity: string, source: string): number {
    [identity, source] = this.keys(identity, source);
    const pair = pairKey(identity, source);
    const underAttack = this.pairs.count(pair) > 0 ? this.identities.retryAfter(identity) : 0;
    return Math.max(this.pairs.retryAfter(pair), this.sources.retryAfter(source), underAttack);
  }

  failed(identity: string, source: string): void {
    [identity, source] = this.keys(identity, source);
    this.count(identity, source);
    this.tell('failed', identity, source);
  }

  /** The right credential from `source`: its earlier slips on `identity` are forgotten. */
  succeeded(identity: string, source: string): void {
    [identity, source] = this.keys(identity, source);
    this.pairs.reset(pairKey(identity, source));
    this.tell('succeeded', identity, source);
  }

  private count(identity: string, source: string): void {
    this.pairs.fail(pairKey(identity, source));
    this.sources.fail(source);
    this.identities.fail(identity);
  }

  /** Shared counts travel as digests: no login or address leaves the instance. */
  private keys(identity: string, source: string): [string, string] {
    if (!this.shared) return [identity, source];
    return [digest(identity), digest(source)];
  }

  private tell(outcome: 'failed' | 'succeeded', identity: string, source: string): void {
    const shared = this.shared;
    shared?.events.emit('guess.counted', {
      throttle: shared.name,
      instanceId: shared.instanceId,
      outcome,
      identity,
      source,
    });
  }
}

/** Where a `GuessThrottle` shares its counts: the app's bus, which features/cluster carries to every instance. */
export interface SharedCounts {
  events: EventBus;
  instanceId: string;
  /** Which throttle (several count different guesses). */
  name: string;
}

function digest(value: string): string {
  return createHash('sha256').update(value).digest('base64url').slice(0, 22);
}

/**
 * A `GuessThrottle` for people's sign-ins (`name`: which surface), whose counts hold across the instances on
 * one PostgreSQL database: each failure and success is told to every instance (features/cluster), so a guesser
 * spreading attempts over instances gets no more than against one. On SQLite (one instance) it counts alone.
 */
export function sharedGuessThrottle(
  deps: { events: EventBus; instanceId: string; config: { databaseUrl?: string | undefined } },
  name: string,
  limits: { perPair: number; perSource: number; perIdentity: number; windowMs: number },
): GuessThrottle {
  return new GuessThrottle(
    limits,
    Date.now,
    deps.config.databaseUrl ? { events: deps.events, instanceId: deps.instanceId, name } : undefined,
  );
}

const pairKey = (identity: string, source: string) => `${source}\u0000${identity}`;

/** The limits of guessing people's credentials, from the `loginAttempts` setting (see `GuessThrottle`). */
export function personGuessLimits(loginAttempts: number, windowMs: number) {
  return {
    perPair: loginAttempts,
    // A whole office behind one NAT address may mistype ten times as often as one person before it waits.
    perSource: loginAttempts * 10,
    perIdentity: loginAttempts * 10,
    windowMs,
  };
}

/**
 * The key to count a source address's failures under: the IPv4 address, or the /64 network of an IPv6
 * address (one host usually holds a whole /64, so counting single IPv6 addresses limits nothing).
 */
export function sourceKeyOf(ip: string | null | undefined): string {
  if (!ip) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!ip.includes(':')) return ip;
  const [head = '', tail] = ip.toLowerCase().split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail === undefined ? [] : tail ? tail.split(':') : [];
  const missing = Math.max(0, 8 - headGroups.length - tailGroups.length);
  const groups = [...headGroups, ...Array<string>(missing).fill('0'), ...tailGroups];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
