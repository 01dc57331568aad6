import { describe, expect, it } from 'vitest';
import { Backoff, backoffWindow, fullJitterDelay, RESTART_WINDOW_MS } from './backoff.ts';

const defaults = { baseMs: 1000, capMs: 300_000 };

describe('full-jitter backoff', () => {
  it('draws each delay from [0, min(cap, base * 2^attempt))', () => {
    expect([0, 1, 2, 3, 8, 9, 50, 5000].map((a) => backoffWindow(a, defaults))).toEqual([
      1000, 2000, 4000, 8000, 256_000, 300_000, 300_000, 300_000,
    ]);
    for (const attempt of [0, 1, 5, 20]) {
      const window = backoffWindow(attempt, defaults);
      expect(fullJitterDelay(attempt, { ...defaults, random: () => 0 })).toBe(0);
      expect(fullJitterDelay(attempt, { ...defaults, random: () => 0.999_999 })).toBe(window - 1);
    }
  });

  it('is uniform over its window: mean near half of it, every decile used, nothing outside', () => {
    const samples = Array.from({ length: 20_000 }, () => fullJitterDelay(3, defaults));
    const window = 8000;
    for (const delay of samples) {
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(window);
    }
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    expect(Math.abs(mean - window / 2)).toBeLessThan(window * 0.03);
    const deciles = new Array(10).fill(0);
    for (const delay of samples) deciles[Math.floor((delay / window) * 10)] += 1;
    for (const count of deciles) expect(count).toBeGreaterThan((samples.length / 10) * 0.85);
  });

  it('spreads the FIRST retry of many agents restarted at once (no lock-step)', () => {
    const agents = 1000;
    const firstRetries = Array.from({ length: agents }, () => new Backoff(defaults).next()).sort(
      (a, b) => a - b,
    );
    // Over the whole base window, about as many in each 100 ms slice (100 expected; lock-step puts all in one).
    for (let slice = 0; slice < 10; slice += 1) {
      const inSlice = firstRetries.filter((d) => d >= slice * 100 && d < (slice + 1) * 100).length;
      expect(inSlice).toBeGreaterThan(60);
      expect(inSlice).toBeLessThan(140);
    }
  });

  it('counts attempts up to the cap, jumps to the cap on request, and resets', () => {
    const backoff = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0.5 });
    expect([1, 2, 3, 4, 5, 6].map(() => backoff.next())).toEqual([50, 100, 200, 400, 500, 500]);
    expect(backoff.attempts).toBe(4);
    backoff.reset();
    expect(backoff.next()).toBe(50);
    backoff.toCap();
    expect(backoff.next()).toBe(500);
  });

  it('keeps windows at the restart cap for a few minutes after the server said it was restarting', () => {
    let now = 0;
    const backoff = new Backoff({
      ...defaults,
      restartCapMs: 10_000,
      random: () => 0.999_999,
      now: () => now,
    });
    backoff.serverRestarting();
    // While the restarting server is down: 1, 2, 4, 8 s windows, then never wider than 10 s.
    const windows = Array.from({ length: 12 }, () => backoff.next() + 1);
    expect(windows).toEqual([
      1000, 2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000,
    ]);
    // A server still down after the restart window gets the normal, widening windows again.
    now += RESTART_WINDOW_MS;
    expect(backoff.next() + 1).toBe(300_000);
  });

  it('drops the restart cap when the tunnel ends another way, or when told to wait ("not now")', () => {
    const backoff = new Backoff({ baseMs: 100, capMs: 100_000, restartCapMs: 1000, random: () => 0.999_999 });
    const windowsAfter = (times: number) => Array.from({ length: times }, () => backoff.next() + 1).at(-1);
    backoff.serverRestarting();
    expect(windowsAfter(8)).toBe(1000);
    backoff.restartOver();
    expect(windowsAfter(1)).toBe(25_600);
    backoff.serverRestarting();
    backoff.toCap();
    expect(windowsAfter(1)).toBe(100_000);
  });

  it('without a restart cap, "going away" changes nothing', () => {
    const backoff = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0.999_999 });
    backoff.serverRestarting();
    expect(Array.from({ length: 6 }, () => backoff.next() + 1)).toEqual([100, 200, 400, 800, 1000, 1000]);
  });
});
