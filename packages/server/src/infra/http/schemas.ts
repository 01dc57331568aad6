import { z } from 'zod';

/** Shapes shared by every route: ids, pages, the error body. */

/**
 * An id in a path or query string: text in canonical decimal (`1`…`2147483647`) turned into a number. Any other
 * way of writing a number (`00001`, `+1`, ` 1`, `1e0`, `0x1`, `1.0`) is refused rather than read as the same id, so
 * one resource has one URL. The document still says `integer`: that is what clients send.
 */
export const idParam = z.preprocess(
  (value, ctx) => {
    if (typeof value !== 'string') return value;
    if (/^[1-9][0-9]{0,9}$/.test(value)) return Number(value);
    ctx.addIssue({
      code: 'custom',
      message: 'an id is a whole number from 1, in decimal without leading zeros, signs or spaces',
    });
    return z.NEVER;
  },
  z
    .number()
    .int()
    .positive()
    .max(2 ** 31 - 1),
);
/**
 * A resource named in a path by id or by name (a device, a fleet, an organization), before the feature's resolver
 * reads it: an id in canonical decimal becomes a number (as `idParam`), other text stays text. Text that writes a
 * number another way (`01`, `+1`, `1.0`, `1e0`) or has spaces around it is refused as `idParam` refuses it, so it
 * can never name the resource with that id; `alsoValid` lets through such text that means something else to the
 * resolver (a device's uuid prefix `0123abc`). The document says `integer | string`, what clients may send.
 */
export function resourceRef(maxLength: number, alsoValid?: RegExp) {
  const name = z
    .string()
    .min(1)
    .max(maxLength)
    .refine((text) => text === text.trim(), 'no spaces before or after the id or name')
    .refine(
      (text) => !/^[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$/i.test(text) || (alsoValid?.test(text) ?? false),
      'an id is a whole number from 1, in decimal without leading zeros, signs or spaces',
    );
  return z.union([idParam, name]);
}

/** An id in a JSON body: a number, never a string. */
export const idField = z
  .number()
  .int()
  .positive()
  .max(2 ** 31 - 1);

export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(500).default(50).describe('items per page (1-500, default 50)'),
  page: z.coerce.number().int().min(1).max(1_000_000).default(1).describe('page number, from 1'),
};

export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({
    items: z.array(item),
    total: z.number().int().describe('items matching the filters, over all pages'),
    page: z.number().int(),
    limit: z.number().int(),
  });
}

export const errorBody = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    details: z.unknown().optional(),
  }),
});

/** A human-given name: trimmed, 1-128 printable characters, no control characters. */
export const nameString = z
  .string()
  .trim()
  .min(1)
  .max(128)
  .regex(/^[^\p{Cc}\p{Cs}]+$/u, 'must not contain control characters');

export const isoTime = z.string().describe('ISO 8601 time (UTC)');

/**
 * Epoch milliseconds as `Date.prototype.toISOString` writes them (`2026-12-07T04:52:38.123Z`). Done by hand
 * for whole milliseconds in years 1970-9999, at a third of the cost: a page of 50 devices writes 250 times
 * (~130 µs of `toISOString`, 3 % of bench/api's list CPU). Anything else goes to `Date`, as before.
 */
export function iso(ms: number): string;
export function iso(ms: number | null): string | null;
export function iso(ms: number | null): string | null {
  if (ms === null) return null;
  if (!(ms >= 0 && ms < LAST_FOUR_DIGIT_YEAR_MS) || !Number.isInteger(ms)) return new Date(ms).toISOString();
  const days = Math.floor(ms / DAY_MS);
  let rest = ms - days * DAY_MS;
  // The proleptic Gregorian date of a day number (Howard Hinnant's civil_from_days), from 0000-03-01 eras.
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor(
    (dayOfEra -
      Math.floor(dayOfEra / 1460) +
      Math.floor(dayOfEra / 36_524) -
      Math.floor(dayOfEra / 146_096)) /
      365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const shiftedMonth = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * shiftedMonth + 2) / 5) + 1;
  const month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9;
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
  const hours = Math.floor(rest / 3_600_000);
  rest -= hours * 3_600_000;
  const minutes = Math.floor(rest / 60_000);
  rest -= minutes * 60_000;
  const seconds = Math.floor(rest / 1000);
  const millis = rest - seconds * 1000;
  return `${String(year).padStart(4, '0')}-${two(month)}-${two(day)}T${two(hours)}:${two(minutes)}:${two(seconds)}.${String(millis).padStart(3, '0')}Z`;
}

const DAY_MS = 86_400_000;
/** 10000-01-01T00:00:00Z: from there on `toISOString` writes six-digit years. */
const LAST_FOUR_DIGIT_YEAR_MS = 253_402_300_800_000;
const two = (n: number) => (n < 10 ? `0${n}` : String(n));

/**
 * Names that people and devices choose and that become keys of JSON objects: tag keys, variable names, identity
 * and inventory attribute names. `__proto__` is the one name such an object cannot hold as a plain key: written
 * with `object[key] = value` it sets the object's prototype instead, and JSON parsers (Fastify's, zod's records)
 * refuse or drop it, so a tag or variable stored under it would never be shown or delivered. `constructor`,
 * `prototype`, `toString` and the like are ordinary keys and are allowed.
 */
export const reservedKeyNames: ReadonlySet<string> = new Set(['__proto__']);

/** The message for a reserved key name, the same wherever one is refused. */
export function reservedKeyMessage(name: string): string {
  return `${JSON.stringify(name)} is a reserved name: choose another`;
}

/** `schema` (a key name) refusing the reserved names with `reservedKeyMessage`. */
export function userKeyName<S extends z.ZodType<string, string>>(schema: S) {
  return schema.superRefine((name, ctx) => {
    if (reservedKeyNames.has(name)) ctx.addIssue({ code: 'custom', message: reservedKeyMessage(name) });
  });
}

/** Tag keys: 1-128 characters, no `=` (lists filter with `tag=key=value`), no control characters, not reserved. */
export const tagKey = userKeyName(
  z
    .string()
    .min(1)
    .max(128)
    .regex(/^[^=\p{Cc}]+$/u, 'no "=" or control characters'),
);
export const tagValue = z
  .string()
  .max(1024)
  .regex(/^[^\p{Cc}]*$/u, 'no control characters');

/** Variable names are environment variable names; the FLEETGATE_ prefix is reserved for the system, `__proto__` too. */
export const variableName = userKeyName(
  z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'letters, digits and _, not starting with a digit, at most 128')
    .refine((n) => !n.toUpperCase().startsWith('FLEETGATE_'), 'the FLEETGATE_ prefix is reserved'),
);
