import { type SqlBool, sql } from 'kysely';
import { type Principal, readScope, scopeCondition } from '../../infra/access/index.ts';
import type { Db } from '../../infra/db/index.ts';
import { AppError } from '../../infra/errors/index.ts';
import type { DeviceRow } from '../devices/service.ts';

/**
 * How people name a device when they reach it — at the SSH gateway, in OpenSSH integration mode and at the
 * CONNECT proxy (the stream router resolves `{typed}` device references here): its uuid, a unique prefix of it of at
 * least 7 characters, its id, or its name when exactly one of their devices has it, in that order; any of these may
 * be followed by `.<deviceSuffix>` (`kiosk-17.devices`). A full uuid may also be followed by `.balena`, openBalena's
 * name for a device behind its VPN (`<uuid>.balena`), so the scripts and habits of people moving from it still work.
 *
 * A name matches exactly first, then ignoring the case of A–Z: host names are case-insensitive and clients
 * lower-case them (OpenSSH does, URL parsers do), so `kiosk-17.devices` reaches a device named `Kiosk-17`.
 * Other letters are compared as written (DNS folds only ASCII, and so do we, the same on both databases).
 *
 * Only the person's own devices are searched (those they may read), so a device of another organization is
 * "not found" in the same words as one that does not exist, and "several" counts only their own.
 */

/** A device the person may see, found from what they typed: its whole row, so the router need not read it again. */
export type ResolvedDevice = DeviceRow;

/** The longest text looked up; longer is unknown without a query (names hold at most 128 characters). */
const MAX_TYPED = 255;
/** Rows read for a name matched ignoring case; reaching it means "several" anyway. */
const CASE_CANDIDATES = 16;

/** What a person typed does not name exactly one of their devices. */
export function unknownDevice(text: string): AppError {
  return new AppError('not_found', `no device "${text}" among your devices`);
}

/** `text` with A–Z lower-cased and every other character kept. */
function lowerAscii(text: string): string {
  return text.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
}

/**
 * Resolves a device as a person typed it, among the devices `principal` may read. Throws `not_found` when
 * none matches (`unknownDevice`) and `conflict` when several of the person's devices match (use the uuid).
 */
export async function resolveDevice(
  db: Db,
  principal: Principal,
  typed: string,
  deviceSuffix: string,
): Promise<ResolvedDevice> {
  let text = typed.trim();
  const ending = `.${deviceSuffix}`;
  if (lowerAscii(text).endsWith(lowerAscii(ending))) text = text.slice(0, -ending.length);
  else if (/^[0-9a-f]{32}\.balena$/.test(lowerAscii(text))) text = text.slice(0, -'.balena'.length);
  if (!text || text.length > MAX_TYPED) throw unknownDevice(typed);
  const scoped = () =>
    db
      .selectFrom('devices')
      .selectAll()
      .where(scopeCondition(readScope(principal, 'device.read'), 'devices.org_id', 'devices.fleet_id'));
  const pick = (rows: ResolvedDevice[], what: string) => {
    if (rows.length > 1) {
      throw new AppError('conflict', `"${typed}" names several of your devices (${what}): use the uuid`);
    }
    return rows[0];
  };
  const hex = lowerAscii(text);
  if (/^[0-9a-f]{32}$/.test(hex)) {
    const row = await scoped().where('uuid', '=', hex).executeTakeFirst();
    if (row) return row;
  } else if (/^[0-9a-f]{7,31}$/.test(hex)) {
    // uuids are lower-case hex, so the prefix needs no escaping.
    const row = pick(await scoped().where('uuid', 'like', `${hex}%`).limit(2).execute(), 'uuid prefix');
    if (row) return row;
  }
  if (/^[1-9]\d{0,9}$/.test(text)) {
    // A device id, as `fleetgate devices ls` shows it (after a uuid prefix: `45099294` is both).
    const row = await scoped().where('id', '=', Number(text)).executeTakeFirst();
    if (row) return row;
  }
  const exact = pick(await scoped().where('name', '=', text).limit(2).execute(), 'same name');
  if (exact) return exact;
  // SQL's lower() only narrows the rows: SQLite folds A–Z alone, PostgreSQL more letters depending on its
  // locale. The comparison here decides, so both databases give the same answer.
  const candidates = await scoped()
    .where(sql<SqlBool>`lower(name) = lower(${text})`)
    .limit(CASE_CANDIDATES)
    .execute();
  const folded = lowerAscii(text);
  const matching =
    candidates.length === CASE_CANDIDATES
      ? candidates
      : candidates.filter((row) => lowerAscii(row.name) === folded);
  const named = pick(matching, 'same name, ignoring case');
  if (named) return named;
  throw unknownDevice(typed);
}
