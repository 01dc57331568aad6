import { type SqlBool, sql } from 'kysely';
import type { Db } from '../../infra/db/index.ts';

/**
 * Names people type at the SSH gateway: who they are (the login) and which device they mean (the target).
 *
 * Login: the user's e-mail (`alice@example.com`), or its local part (`alice`) when exactly one user has that
 * local part. `ssh -p 2222 <login>+<device>@gw` names a device too: the part after the LAST `+`, unless the
 * whole name is itself a login (local parts may hold a `+`).
 *
 * Device: resolved by the stream router (features/remote-access/device-names.ts), as at the CONNECT proxy: its
 * uuid, a unique prefix of it of at least 7 characters, or its name when exactly one of the person's devices
 * has it, each optionally followed by `.<deviceSuffix>`. Only the person's own devices are searched, so a
 * device of another organization is "not found", never "not yours".
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
