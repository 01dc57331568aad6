/**
 * Remote diagnostics over the tunnel (issue 16): the server opens a stream with the named service
 * `{service: 'diagnostics'}`; the agent runs its fixed, versioned set of read-only checks, writes one JSON
 * `DiagnosticsReport` (UTF-8, at most `MAX_DIAGNOSTICS_REPORT` bytes) and ends the stream. It reads nothing
 * from the stream.
 *
 * Why a named service and not a target kind of its own: agents before this one validated every OPEN target against
 * `openTargetSchema` and closed the whole connection on one they did not know (a protocol error), so such an agent
 * would lose its tunnel, and every session on it, the first time someone asked it for diagnostics. An unknown named
 * service is refused with OPEN_ERR (`not-allowed`) and nothing else happens: the server can tell the person the
 * agent is too old. (Peers now refuse an unknown target kind on its stream alone, as they do an unknown service.)
 *
 * The report's shape is generic (an id, a title, a status, a summary and bounded data per check), so a server
 * stores and shows the checks of a newer `version` without knowing them.
 */
import { z } from 'zod';

/** The named service of the diagnostics stream. */
export const DIAGNOSTICS_SERVICE = 'diagnostics';

/** The version of the set of checks this code runs (see the agent's diagnostics.ts for the list). */
export const DIAGNOSTICS_VERSION = 1;

/** Largest report a receiver accepts, in bytes (256 KiB); agents aim at a quarter of it. */
export const MAX_DIAGNOSTICS_REPORT = 256 * 1024;

/** Most checks in one report. */
export const MAX_DIAGNOSTICS_CHECKS = 64;

/** Deepest nesting of objects and arrays in a check's `data`. */
export const MAX_DIAGNOSTICS_DATA_DEPTH = 6;

/**
 * How a check came out: `ok`; `warning` (works, but a person should look: a disk 90 % full); `failed` (what
 * it checks is broken: the server's name does not resolve); `unavailable` (it cannot be checked here: no
 * systemd); `timed_out` (no answer within the check's own timeout).
 */
export const diagnosticsStatuses = ['ok', 'warning', 'failed', 'unavailable', 'timed_out'] as const;
export type DiagnosticsStatus = (typeof diagnosticsStatuses)[number];

function depthOf(value: unknown, depth = 0): number {
  if (value === null || typeof value !== 'object') return depth;
  let deepest = depth + 1;
  for (const inner of Object.values(value)) {
    deepest = Math.max(deepest, depthOf(inner, depth + 1));
    if (deepest > MAX_DIAGNOSTICS_DATA_DEPTH) return deepest;
  }
  return deepest;
}

/** One check's result. */
export const diagnosticsCheckSchema = z.strictObject({
  /** Stable identifier, e.g. `disk`, `dns`. */
  id: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[a-z0-9][a-z0-9._-]*$/, 'a check id is lower-case letters, digits, dot, dash or underscore'),
  /** For people: `Disk usage`. */
  title: z.string().min(1).max(128),
  status: z.enum(diagnosticsStatuses),
  /** One line for people: `/ 41 % used (12.1 of 29.4 GiB)`. */
  summary: z.string().max(1024),
  durationMs: z.number().nonnegative().max(3_600_000),
  /** The measurements, as JSON (bounded by the report's size and `MAX_DIAGNOSTICS_DATA_DEPTH`). */
  data: z
    .record(z.string().max(128), z.unknown())
    .refine(
      (data) => depthOf(data) <= MAX_DIAGNOSTICS_DATA_DEPTH,
      `nested deeper than ${MAX_DIAGNOSTICS_DATA_DEPTH} levels`,
    ),
});
export type DiagnosticsCheck = z.infer<typeof diagnosticsCheckSchema>;

/** What the agent writes on the diagnostics stream. */
export const diagnosticsReportSchema = z.strictObject({
  version: z.number().int().min(1).max(1_000_000),
  agentVersion: z.string().max(64),
  checks: z
    .array(diagnosticsCheckSchema)
    .min(1)
    .max(MAX_DIAGNOSTICS_CHECKS)
    .refine(
      (checks) => new Set(checks.map((check) => check.id)).size === checks.length,
      'check ids must be unique',
    ),
});
export type DiagnosticsReport = z.infer<typeof diagnosticsReportSchema>;
