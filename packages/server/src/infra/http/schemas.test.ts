import { describe, expect, it } from 'vitest';
import { iso } from './schemas.ts';

describe('iso', () => {
  it('writes every time as Date.prototype.toISOString does', () => {
    const day = 86_400_000;
    const times = [0, 1, 999, day - 1, day, 951_782_400_000, 1_796_618_889_024, 253_402_300_799_999];
    // One time in every day from 1970 to 9999 (each with another time of day), and times outside the fast path.
    for (let d = 0; d < 2_932_897; d += 7) times.push(d * day + ((d * 7_919_993) % day));
    times.push(253_402_300_800_000, 8.64e15, -1, -62_198_755_200_000, 1.5, Number.MAX_SAFE_INTEGER);
    for (const ms of times) {
      let expected: string;
      try {
        expected = new Date(ms).toISOString();
      } catch {
        expect(() => iso(ms)).toThrow(RangeError);
        continue;
      }
      if (iso(ms) !== expected) expect(iso(ms)).toBe(expected);
    }
    expect(iso(null)).toBeNull();
  });
});
