import { type SqlBool, sql } from 'kysely';
import { type Principal, readScope, scopeCondition } from '../../infra/access/index.ts';
import { type Db, lowerAscii } from '../../infra/db/index.ts';
import { AppError } from '../../infra/errors/index.ts';
import { resourceRef } from '../../infra/http/schemas.ts';
import type { DeviceRow } from './service.ts';

/**
 * The one way a person's words become a device: the API's `:device` paths, `fleetgate devices …`, the SSH gateway,
 * OpenSSH integration mode and the CONNECT proxy all resolve here. A device is named by its uuid, a unique prefix of
 * it of at least 7 characters, its id, or its name when exactly one of the person's devices has it, in that order.
 *
 * A name matches exactly first, then ignoring the case of A–Z: host names are case-insensitive and clients
 * lower-case them (OpenSSH does, URL parsers do), so `kiosk-17.devices` reaches a device named `Kiosk-17`.
 * Other letters are compared as written (DNS folds only ASCII, and so do we, the same on both databases).
 *
 * Only the person's own devices are searched (those they may read), so a device of another organization is
 * "not found" in the same words as one that does not exist, and the candidates of an ambiguous name are their own.
 */

/**
 * A device named in a URL or a command: its numeric id, its 32-hex uuid (lower case), or other text — a unique uuid
 * prefix or a name — that `resolveDeviceRef` looks up among the person's devices.
 */
export type DeviceRef = number | string;

export function parseDeviceRef(ref: string): DeviceRef {
  const text = ref.trim();
  // A uuid may be all digits (serial numbers make such uuids): only short digit strings are ids.
  if (/^[1-9]\d{0,9}$/.test(text)) return Number(text);
  return /^[0-9a-fA-F]{32}$/.test(text) ? text.toLowerCase() : text;
}

/** `:device` in URLs: the device's id, uuid, a unique prefix of its uuid, or its name. */
export const deviceRefParam = resourceRef(255, /^[0-9a-fA-F]{7,32}$/)
  .describe(
    "the device's id, its 32-hex uuid, a unique prefix of its uuid (7 characters or more) or its name; a name or prefix several of your devices share answers 409 with details.candidates",
  )
  .transform((ref) => (typeof ref === 'number' ? ref : parseDeviceRef(ref)));

/** The longest text looked up; longer is unknown without a query (names hold at most 128 characters). */
const MAX_TYPED = 255;
/** Rows read for an ambiguous reference: enough to list as candidates; reaching it means "several" anyway. */
const CANDIDATES = 16;

/** One of several devices an ambiguous reference matched, as the 409's `details.candidates` lists it. */
export interface DeviceCandidate {
  id: number;
  uuid: string;
  name: string;
  fleetId: number;
}

/** What a person typed does not name exactly one of their devices. */
export function unknownDevice(text: string): AppError {
  return new AppError('not_found', `no device "${text}" among your devices`);
}

/**
 * Several devices match: a `conflict` naming each (name and uuid in the message, rows in `details.candidates`),
 * so the person can pick one by its uuid without another request.
 */
function ambiguousDevice(typed: string, how: string, rows: readonly DeviceRow[]): AppError {
  const candidates: DeviceCandidate[] = rows.map((row) => ({
    id: row.id,
    uuid: row.uuid,
    name: row.name,
    fleetId: row.fleet_id,
  }));
  const listed = candidates.map((c) => `${c.name} ${c.uuid}`).join(', ');
  const more = rows.length >= CANDIDATES ? ', …' : '';
  return new AppError(
    'conflict',
    `"${typed}" names several of your devices (${how}: ${listed}${more}): use the uuid`,
    { details: { candidates } },
  );
}

/**
 * Resolves a device as a person typed it, among the devices `principal` may read. Throws `not_found` when none
 * matches (`unknownDevice`) and `conflict` with the candidates when several of the person's devices match.
 */
export async function resolveDeviceRef(
  db: Db,
  principal: Principal,
  typed: string,
  /** How errors quote it: what the person typed when `typed` is part of it (a host name without its suffix). */
  shownAs: string = typed,
): Promise<DeviceRow> {
  const text = typed.trim();
  if (!text || text.length > MAX_TYPED) throw unknownDevice(shownAs);
  const scoped = () =>
    db
      .selectFrom('devices')
      .selectAll()
      .where(scopeCondition(readScope(principal, 'device.read'), 'devices.org_id', 'devices.fleet_id'));
  const pick = (rows: DeviceRow[], how: string) => {
    if (rows.length > 1) throw ambiguousDevice(shownAs, how, rows);
    return rows[0];
  };
  const hex = lowerAscii(text);
  if (/^[0-9a-f]{32}$/.test(hex)) {
    const row = await scoped().where('uuid', '=', hex).executeTakeFirst();
    if (row) return row;
  } else if (/^[0-9a-f]{7,31}$/.test(hex)) {
    // uuids are lower-case hex, so the prefix needs no escaping.
    const rows = await scoped().where('uuid', 'like', `${hex}%`).orderBy('uuid').limit(CANDIDATES).execute();
    const row = pick(rows, 'uuid prefix');
    if (row) return row;
  }
  if (/^[1-9]\d{0,9}$/.test(text)) {
    // A device id, as `fleetgate devices ls` shows it (after a uuid prefix: `45099294` is both).
    const row = await scoped().where('id', '=', Number(text)).executeTakeFirst();
    if (row) return row;
  }
  const exact = pick(
    await scoped().where('name', '=', text).orderBy('id').limit(CANDIDATES).execute(),
    'same name',
  );
  if (exact) return exact;
  // SQL's lower() only narrows the rows: SQLite folds A–Z alone, PostgreSQL more letters depending on its
  // locale. The comparison here decides, so both databases give the same answer.
  const candidates = await scoped()
    .where(sql<SqlBool>`lower(name) = lower(${text})`)
    .orderBy('id')
    .limit(CANDIDATES)
    .execute();
  const folded = lowerAscii(text);
  const matching =
    candidates.length === CANDIDATES
      ? candidates
      : candidates.filter((row) => lowerAscii(row.name) === folded);
  const named = pick(matching, 'same name, ignoring case');
  if (named) return named;
  throw unknownDevice(shownAs);
}
