import { describe, expect, it } from 'vitest';
import { FailureLimiter, GuessThrottle, sourceKeyOf } from './index.ts';

/** A limiter of 3 failures per 1000 ms on a clock the test moves by hand. */
function limiterWithClock() {
  const clock = { now: 1_000_000 };
  const limiter = new FailureLimiter(3, 1000, () => clock.now);
  return { limiter, clock };
}

describe('FailureLimiter', () => {
  it('lets a key try until it has failed the allowed number of times', () => {
    const { limiter } = limiterWithClock();
    expect(limiter.retryAfter('k')).toBe(0);
    limiter.fail('k');
    limiter.fail('k');
    expect(limiter.retryAfter('k')).toBe(0);
    limiter.fail('k');
    expect(limiter.retryAfter('k')).toBe(1000);
  });

  it('counts the wait from the first failure of the window', () => {
    const { limiter, clock } = limiterWithClock();
    limiter.fail('k');
    clock.now += 400;
    limiter.fail('k');
    clock.now += 100;
    limiter.fail('k');
    expect(limiter.retryAfter('k')).toBe(500);
    clock.now += 499;
    expect(limiter.retryAfter('k')).toBe(1);
  });

  it('forgets the failures once the window is over, and starts a fresh window', () => {
    const { limiter, clock } = limiterWithClock();
    for (let i = 0; i < 3; i++) limiter.fail('k');
    clock.now += 1000;
    expect(limiter.retryAfter('k')).toBe(0);
    // A failure after the window counts as the first of a new one.
    limiter.fail('k');
    limiter.fail('k');
    expect(limiter.retryAfter('k')).toBe(0);
    limiter.fail('k');
    expect(limiter.retryAfter('k')).toBe(1000);
  });

  it('starts a fresh window when failing after the old one expired without a check in between', () => {
    const { limiter, clock } = limiterWithClock();
    limiter.fail('k');
    limiter.fail('k');
    clock.now += 5000;
    limiter.fail('k');
    expect(limiter.retryAfter('k')).toBe(0);
  });

  it('keeps keys apart', () => {
    const { limiter } = limiterWithClock();
    for (let i = 0; i < 3; i++) limiter.fail('attacked');
    expect(limiter.retryAfter('attacked')).toBeGreaterThan(0);
    expect(limiter.retryAfter('innocent')).toBe(0);
  });

  it('reset clears one key', () => {
    const { limiter } = limiterWithClock();
    for (let i = 0; i < 3; i++) {
      limiter.fail('a');
      limiter.fail('b');
    }
    limiter.reset('a');
    expect(limiter.retryAfter('a')).toBe(0);
    expect(limiter.retryAfter('b')).toBe(1000);
  });

  it('keeps limiting keys in their window while many other keys come and go', () => {
    const { limiter, clock } = limiterWithClock();
    for (let i = 0; i < 3; i++) limiter.fail('attacker');
    clock.now += 10;
    for (let i = 0; i < 12_000; i++) limiter.fail(`noise-${i}`);
    expect(limiter.retryAfter('attacker')).toBe(990);
  });
});

describe('sourceKeyOf', () => {
  it('counts an IPv4 address as itself, also when written as an IPv4-mapped IPv6 address', () => {
    expect(sourceKeyOf('1.2.3.4')).toBe('1.2.3.4');
    expect(sourceKeyOf('::ffff:1.2.3.4')).toBe('1.2.3.4');
    expect(sourceKeyOf('::FFFF:1.2.3.4')).toBe('1.2.3.4');
  });

  it('counts IPv6 addresses by their /64 network, written out or shortened', () => {
    expect(sourceKeyOf('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(sourceKeyOf('2001:db8:1:2::9')).toBe('2001:db8:1:2::/64');
    expect(sourceKeyOf('2001:0DB8:0001:0002:ffff:0:0:1')).toBe('2001:db8:1:2::/64');
    expect(sourceKeyOf('2001:db8:1:3::9')).not.toBe(sourceKeyOf('2001:db8:1:2::9'));
    expect(sourceKeyOf('::1')).toBe('0:0:0:0::/64');
  });

  it('counts a missing address as unknown', () => {
    expect(sourceKeyOf(null)).toBe('unknown');
    expect(sourceKeyOf(undefined)).toBe('unknown');
    expect(sourceKeyOf('')).toBe('unknown');
  });
});

describe('GuessThrottle', () => {
  /** 3 per (identity, source), 5 per source, 6 per identity, in 1000 ms, on a clock the test moves. */
  function throttleWithClock() {
    const clock = { now: 1_000_000 };
    const throttle = new GuessThrottle(
      { perPair: 3, perSource: 5, perIdentity: 6, windowMs: 1000 },
      () => clock.now,
    );
    return { throttle, clock };
  }

  it('stops a source guessing at one identity, while the owner from elsewhere still gets in', () => {
    const { throttle } = throttleWithClock();
    for (let i = 0; i < 3; i++) throttle.failed('alice', 'attacker');
    expect(throttle.retryAfter('alice', 'attacker')).toBe(1000);
    expect(throttle.retryAfter('alice', 'home')).toBe(0);
    // The attacker's address may still try other identities, until it has failed too often in all.
    expect(throttle.retryAfter('bob', 'attacker')).toBe(0);
    for (let i = 0; i < 2; i++) throttle.failed('bob', 'attacker');
    expect(throttle.retryAfter('carol', 'attacker')).toBe(1000);
    expect(throttle.retryAfter('carol', 'home')).toBe(0);
  });

  it('gives each source one wrong guess on an identity under a spread-out attack, and clean sources their try', () => {
    const { throttle, clock } = throttleWithClock();
    for (let i = 0; i < 6; i++) throttle.failed('alice', `bot-${i}`);
    // Each bot failed once, under its own limits, but the identity is under attack: no second guess.
    expect(throttle.retryAfter('alice', 'bot-0')).toBe(1000);
    expect(throttle.retryAfter('alice', 'bot-new')).toBe(0);
    expect(throttle.retryAfter('alice', 'home')).toBe(0);
    clock.now += 1000;
    expect(throttle.retryAfter('alice', 'bot-0')).toBe(0);
  });

  it("forgets a source's slips on an identity once it gets the credential right", () => {
    const { throttle } = throttleWithClock();
    for (let i = 0; i < 2; i++) throttle.failed('alice', 'home');
    throttle.succeeded('alice', 'home');
    throttle.failed('alice', 'home');
    throttle.failed('alice', 'home');
    expect(throttle.retryAfter('alice', 'home')).toBe(0);
  });
});
