import { type SqlBool, sql } from 'kysely';
import { type Principal, readScope, scopeCondition } from '../../infra/access/index.ts';
import type { Db } from '../../infra/db/index.ts';
import { AppError } from '../../infra/errors/index.ts';

/**
 * Names people type at the SSH gateway: who they are (the login) and which device they mean (the target).
 *
 * Login: the user's e-mail (`alice@example.com`), or its local part (`alice`) when exactly one user has that
 * local part. `ssh -p 2222 <login>+<device>@gw` names a device too: the part after the LAST `+`, unless the
 * whole name is itself a login (local parts may hold a `+`).
 *
 * Device: its uuid, a unique prefix of it of at least 7 characters, `<uuid>.<deviceSuffix>`, or its name when
 * exactly one of the person's devices has it. Only the person's own devices are searched, so a device of
 * another organization is "not found", never "not yours".
 */

export interface SshUsername {
  login: string;
  /** The device named after `+`, if any. */
  device: string | null;
}

/** The longest username considered; longer ones are refused without a database look-up. */
const MAX_USERNAME = 320;

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** The id of the user a login names, or undefined. */
export async function userOfLogin(db: Db, login: string): Promise<number | undefined> {
  const name = login.trim().toLowerCase();
  if (!name || name.length > MAX_USERNAME) return undefined;
  if (name.includes('@')) {
    const user = await db.selectFrom('users').select('id').where('email', '=', name).executeTakeFirst();
    return user?.id;
  }
  const users = await db
    .selectFrom('users')
    .select(['id', 'email'])
    .where(sql<SqlBool>`email like ${`${escapeLike(name)}@%`} escape '\\'`)
    .limit(2)
    .execute();
  return users.length === 1 ? users[0]?.id : undefined;
}

/**
 * Splits `alice+pi-kitchen` into login and device. The whole name is tried as a login first, so a user whose
 * e-mail is `alice+test@example.com` can still sign in as such.
 */
export async function parseSshUsername(db: Db, username: string): Promise<SshUsername & { userId?: number }> {
  const whole = await userOfLogin(db, username);
  if (whole !== undefined) return { login: username, device: null, userId: whole };
  const plus = username.lastIndexOf('+');
  if (plus <= 0 || plus === username.length - 1) return { login: username, device: null };
  const login = username.slice(0, plus);
  const userId = await userOfLogin(db, login);
  return { login, device: username.slice(plus + 1), ...(userId === undefined ? {} : { userId }) };
}

/** A device the person may see, found from what they typed. */
export interface ResolvedDevice {
  uuid: string;
  name: string;
}

/** What a person typed does not name exactly one of their devices. */
export function unknownDevice(text: string): AppError {
  return new AppError('not_found', `no device "${text}" among your devices`);
}

/** Resolves a device name as typed at the gateway, among the devices `principal` may read. */
export async function resolveDevice(
  db: Db,
  principal: Principal,
  typed: string,
  deviceSuffix: string,
): Promise<ResolvedDevice> {
  let text = typed.trim().toLowerCase();
  if (text.endsWith(`.${deviceSuffix}`)) text = text.slice(0, -(deviceSuffix.length + 1));
  if (!text || text.length > 255) throw unknownDevice(typed);
  const scoped = () =>
    db
      .selectFrom('devices')
      .select(['uuid', 'name'])
      .where(scopeCondition(readScope(principal, 'device.read'), 'devices.org_id', 'devices.fleet_id'));
  const pick = (rows: ResolvedDevice[], what: string) => {
    if (rows.length > 1) {
      throw new AppError('conflict', `"${typed}" names several of your devices (${what}): use the uuid`);
    }
    return rows[0];
  };
  if (/^[0-9a-f]{32}$/.test(text)) {
    const row = await scoped().where('uuid', '=', text).executeTakeFirst();
    if (row) return row;
  } else if (/^[0-9a-f]{7,31}$/.test(text)) {
    // uuids are lower-case hex, so the prefix needs no escaping.
    const row = pick(await scoped().where('uuid', 'like', `${text}%`).limit(2).execute(), 'uuid prefix');
    if (row) return row;
  }
  const named = pick(await scoped().where('name', '=', typed.trim()).limit(2).execute(), 'same name');
  if (named) return named;
  throw unknownDevice(typed);
}
