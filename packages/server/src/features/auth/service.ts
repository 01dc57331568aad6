import {
  type Actor,
  type Membership,
  type Principal,
  type Role,
  type ServicePrincipal,
  serviceKinds,
  type UserPrincipal,
} from '../../infra/access/index.ts';
import { appendAuditEvent } from '../../infra/audit/index.ts';
import { hashPassword, randomToken, sha256Hex, verifyPassword } from '../../infra/crypto/index.ts';
import { type Db, json, readNow } from '../../infra/db/index.ts';
import { AppError, rateLimited } from '../../infra/errors/index.ts';
import {
  FailureLimiter,
  personGuessLimits,
  sharedGuessThrottle,
  sourceKeyOf,
} from '../../infra/rate-limit/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { authenticateDevice, deviceCredentialOf } from '../device-auth/index.ts';

/** Session tokens and API keys carry a prefix so the server knows where to look them up. */
export const SESSION_PREFIX = 'fgs_';
export const API_KEY_PREFIX = 'fgk_';

const LOGIN_WINDOW_MS = 15 * 60 * 1000;
/** API keys' last-used time is written at most this often, not on every request. */
const LAST_USED_PRECISION_MS = 60 * 1000;

const invalidCredentials = () => new AppError('unauthorized', 'invalid e-mail or password');
const invalidToken = () =>
  new AppError('unauthorized', 'invalid, expired or revoked token: sign in again (POST /api/v1/auth/login)');

export interface AuthService {
  login(
    input: { email: string; password: string },
    sourceIp: string,
  ): Promise<{ token: string; expiresAt: number; userId: number }>;
  logout(actor: Actor): Promise<void>;
  /**
   * Resolves `Authorization: Bearer <session token or API key>` to a principal (a service credential's key to a
   * `service` principal); throws `unauthorized`.
   */
  authenticate(header: string | undefined, sourceIp: string | null): Promise<Principal>;
  /** The principal of a user as it is now (memberships read from the database). */
  principalOf(userId: number, credential: UserPrincipal['credential']): Promise<UserPrincipal | undefined>;
}

/** The principal of a user as it is now: memberships read from the database; undefined when the user is gone. */
async function userPrincipalOf(
  db: Db,
  userId: number,
  credential: UserPrincipal['credential'],
): Promise<UserPrincipal | undefined> {
  // The user and their memberships in one query (it runs on every request): a row per membership, or
  // one with nulls for a user without any.
  const rows = await db
    .selectFrom('users')
    .leftJoin('memberships', 'memberships.user_id', 'users.id')
    .select(['users.id', 'users.email', 'users.is_server_admin'])
    .select(['memberships.org_id', 'memberships.role', 'memberships.fleet_ids'])
    .where('users.id', '=', userId)
    .execute();
  return principalOfRows(rows, credential);
}

/** A user and their memberships as `userPrincipalOf` reads them: a row per membership, or one with nulls. */
interface UserRow {
  id: number;
  email: string;
  is_server_admin: number;
  org_id: number | null;
  role: string | null;
  fleet_ids: string | null;
}

function principalOfRows(
  rows: UserRow[],
  credential: UserPrincipal['credential'],
): UserPrincipal | undefined {
  const user = rows[0];
  if (!user) return undefined;
  const memberships: Membership[] = rows.flatMap((r) =>
    r.org_id === null
      ? []
      : [{ orgId: r.org_id, role: r.role as Role, fleetIds: json.decode<number[]>(r.fleet_ids) }],
  );
  return {
    type: 'user' as const,
    userId: user.id,
    email: user.email,
    serverAdmin: user.is_server_admin === 1,
    memberships,
    credential,
  };
}

/**
 * A session token's session, its user and their memberships, by the token's hash: one statement, compiled once
 * per database and run by `readNow` (prepared; on SQLite on the read connection), where a request signed in by a
 * session used to take two queries through Kysely (the session, then `userPrincipalOf`). The same rows as
 * `userPrincipalOf`'s, with the session's columns on each.
 */
function sessionQueryOf(db: Db) {
  return db
    .selectFrom('users')
    .innerJoin('sessions', 'sessions.user_id', 'users.id')
    .leftJoin('memberships', 'memberships.user_id', 'users.id')
    .select(['sessions.id as session_id', 'sessions.expires_at', 'sessions.revoked_at'])
    .select(['users.id', 'users.email', 'users.is_server_admin'])
    .select(['memberships.org_id', 'memberships.role', 'memberships.fleet_ids'])
    .where('sessions.token_hash', '=', '')
    .compile();
}

/**
 * An API key, the user who holds it (for a service key: who created it) and their memberships, by the key's
 * hash: one statement run by `readNow`, as `sessionQueryOf` for sessions, where a request signed by an API key
 * took two or three queries through Kysely.
 */
function apiKeyQueryOf(db: Db) {
  return db
    .selectFrom('users')
    .innerJoin('api_keys', 'api_keys.user_id', 'users.id')
    .leftJoin('memberships', 'memberships.user_id', 'users.id')
    .select([
      'api_keys.id as key_id',
      'api_keys.name as key_name',
      'api_keys.service',
      'api_keys.expires_at',
      'api_keys.revoked_at',
      'api_keys.last_used_at',
    ])
    .select(['users.id', 'users.email', 'users.is_server_admin'])
    .select(['memberships.org_id', 'memberships.role', 'memberships.fleet_ids'])
    .where('api_keys.token_hash', '=', '')
    .compile();
}

/**
 * The person behind `principal` as they are now, or undefined when the credential they signed in with no longer
 * holds — a session logged out or expired, an API key revoked or expired, an SSH key removed — or the user is
 * gone. Streams and sessions held open on a person's behalf are checked against it: a person whose access is
 * taken away loses what they had open, not only what they open next.
 */
export async function currentUserPrincipal(
  db: Db,
  principal: UserPrincipal,
): Promise<UserPrincipal | undefined> {
  const { credential } = principal;
  const now = Date.now();
  let holds: boolean;
  if (credential.type === 'session') {
    const row = await db
      .selectFrom('sessions')
      .select(['expires_at', 'revoked_at'])
      .where('id', '=', credential.id)
      .where('user_id', '=', principal.userId)
      .executeTakeFirst();
    holds = row !== undefined && row.revoked_at === null && row.expires_at > now;
  } else if (credential.type === 'api_key') {
    const row = await db
      .selectFrom('api_keys')
      .select(['expires_at', 'revoked_at'])
      .where('id', '=', credential.id)
      .where('user_id', '=', principal.userId)
      .executeTakeFirst();
    holds = row !== undefined && row.revoked_at === null && (row.expires_at === null || row.expires_at > now);
  } else {
    const row = await db
      .selectFrom('ssh_keys')
      .select('id')
      .where('id', '=', credential.id)
      .where('user_id', '=', principal.userId)
      .executeTakeFirst();
    holds = row !== undefined;
  }
  return holds ? userPrincipalOf(db, principal.userId, credential) : undefined;
}

/**
 * The service credential behind `principal` as it is now, or undefined when it no longer holds: the key revoked
 * or expired, or its creator gone or no longer a server administrator (see `servicePrincipalOf`). Sessions a
 * service opened on a person's behalf (the OpenSSH bastion's) are checked against it, beside the person.
 */
export async function currentServicePrincipal(
  db: Db,
  principal: ServicePrincipal,
): Promise<ServicePrincipal | undefined> {
  const row = await db
    .selectFrom('api_keys')
    .innerJoin('users', 'users.id', 'api_keys.user_id')
    .select(['api_keys.expires_at', 'api_keys.revoked_at', 'users.is_server_admin'])
    .where('api_keys.id', '=', principal.keyId)
    .where('api_keys.user_id', '=', principal.createdBy.userId)
    .where('api_keys.service', '=', principal.service)
    .executeTakeFirst();
  const holds =
    row !== undefined &&
    row.revoked_at === null &&
    (row.expires_at === null || row.expires_at > Date.now()) &&
    row.is_server_admin === 1;
  return holds ? principal : undefined;
}

/** A scrypt hash of nothing in particular, checked when the e-mail is unknown so both paths take as long. */
let decoyHash: Promise<string> | undefined;

export function createAuthService(deps: ServiceDeps): AuthService {
  const { db, config } = deps;
  // Guessing passwords is slowed per (account, source) and per source; the owner elsewhere still gets in.
  const guesses = sharedGuessThrottle(
    deps,
    'sign-in',
    personGuessLimits(config.loginAttempts, LOGIN_WINDOW_MS),
  );
  // Refusals for too many failures are audited once a minute per source: a flood cannot fill the audit log.
  const refusalsAudited = new FailureLimiter(1, 60_000);

  // The two statements a request's credential is checked with, compiled once for this service's database.
  const sessionQuery = sessionQueryOf(db);
  const apiKeyQuery = apiKeyQueryOf(db);

  const principalOf = (userId: number, credential: UserPrincipal['credential']) =>
    userPrincipalOf(db, userId, credential);

  /**
   * A service credential's principal: it acts as no one, and only while the server administrator who created
   * it still is one (a key never has more rights than its creator).
   */
  function servicePrincipalOf(
    key: { id: number; name: string; service: string },
    creator: Pick<UserRow, 'id' | 'email' | 'is_server_admin'>,
  ): ServicePrincipal | undefined {
    const service = serviceKinds.find((kind) => kind === key.service);
    if (!service) return undefined;
    if (creator.is_server_admin !== 1)
      throw new AppError(
        'unauthorized',
        `service key "${key.name}" stopped working: ${creator.email}, who created it, is no longer a server administrator`,
      );
    return {
      type: 'service',
      service,
      keyId: key.id,
      name: key.name,
      createdBy: { userId: creator.id, email: creator.email },
    };
  }

  return {
    principalOf,

    async login({ email, password }, sourceIp) {
      const account = email.trim().toLowerCase();
      const source = sourceKeyOf(sourceIp);
      const user = await db
        .selectFrom('users')
        .select(['id', 'email', 'password_hash'])
        .where('email', '=', account)
        .executeTakeFirst();
      const actor: Actor = {
        principal: user
          ? {
              type: 'user',
              userId: user.id,
              email: user.email,
              serverAdmin: false,
              memberships: [],
              credential: { type: 'session', id: 0 },
            }
          : { type: 'anonymous' },
        sourceIp,
      };
      const refusal = (reason: 'wrong_credentials' | 'rate_limited') =>
        appendAuditEvent(db, actor, {
          orgId: null,
          action: 'auth.login',
          resourceType: 'user',
          resourceId: user?.id ?? null,
          outcome: 'failure',
          details: { reason },
        });
      const wait = guesses.retryAfter(account, source);
      if (wait > 0) {
        // Refused before the password is checked: a throttled source learns nothing about it.
        if (refusalsAudited.retryAfter(source) === 0) {
          refusalsAudited.fail(source);
          await refusal('rate_limited');
        }
        throw rateLimited(
          `too many failed sign-ins from your address: try again in ${Math.ceil(wait / 1000)} s`,
          wait,
        );
      }
      decoyHash ??= hashPassword(randomToken());
      const ok = await verifyPassword(password, user?.password_hash ?? (await decoyHash));
      if (!user || !ok) {
        guesses.failed(account, source);
        await refusal('wrong_credentials');
        throw invalidCredentials();
      }
      guesses.succeeded(account, source);
      const token = randomToken(SESSION_PREFIX);
      const now = Date.now();
      const expiresAt = now + config.sessionTtlHours * 3600 * 1000;
      await db.transaction().execute(async (trx) => {
        await trx
          .insertInto('sessions')
          .values({
            user_id: user.id,
            token_hash: sha256Hex(token),
            source_ip: sourceIp,
            created_at: now,
            expires_at: expiresAt,
            revoked_at: null,
          })
          .execute();
        await appendAuditEvent(trx, actor, {
          orgId: null,
          action: 'auth.login',
          resourceType: 'user',
          resourceId: user.id,
          outcome: 'success',
        });
      });
      return { token, expiresAt, userId: user.id };
    },

    async logout(actor) {
      const p = actor.principal;
      if (p.type !== 'user' || p.credential.type !== 'session') {
        throw new AppError(
          'bad_request',
          'only a session token can be logged out; revoke an API key with DELETE /api/v1/api-keys/:id',
        );
      }
      await db.transaction().execute(async (trx) => {
        await trx
          .updateTable('sessions')
          .set({ revoked_at: Date.now() })
          .where('id', '=', p.credential.id)
          .execute();
        await appendAuditEvent(trx, actor, {
          orgId: null,
          action: 'auth.logout',
          resourceType: 'user',
          resourceId: p.userId,
          outcome: 'success',
        });
      });
      // What the session held open (streams, tunnels) ends with it.
      deps.events.emit('write.committed', { action: 'auth.logout', resourceType: 'session', orgId: null });
    },

    async authenticate(header, sourceIp) {
      if (!header)
        throw new AppError('unauthorized', 'sign in first: send Authorization: Bearer <token or API key>');
      const device = deviceCredentialOf(header);
      if (device) return authenticateDevice(deps, device, sourceIp);
      const match = /^Bearer\s+(\S{1,512})\s*$/i.exec(header);
      if (!match)
        throw new AppError('unauthorized', 'the Authorization header must be "Bearer <token or API key>"');
      const token = match[1]!;
      const hash = sha256Hex(token);
      const now = Date.now();
      if (token.startsWith(SESSION_PREFIX)) {
        // No row: no such session, or its user is gone.
        const rows = await readNow(db, sessionQuery, [hash]);
        const session = rows[0];
        if (!session || session.revoked_at !== null || session.expires_at <= now) throw invalidToken();
        const principal = principalOfRows(rows, { type: 'session', id: session.session_id });
        if (!principal) throw invalidToken();
        return principal;
      }
      if (token.startsWith(API_KEY_PREFIX)) {
        // No row: no such key, or its user is gone.
        const rows = await readNow(db, apiKeyQuery, [hash]);
        const key = rows[0];
        if (!key || key.revoked_at !== null || (key.expires_at !== null && key.expires_at <= now))
          throw invalidToken();
        const principal =
          key.service === null
            ? principalOfRows(rows, { type: 'api_key', id: key.key_id })
            : servicePrincipalOf({ id: key.key_id, name: key.key_name, service: key.service }, key);
        if (!principal) throw invalidToken();
        if (key.last_used_at === null || now - key.last_used_at > LAST_USED_PRECISION_MS) {
          await db.updateTable('api_keys').set({ last_used_at: now }).where('id', '=', key.key_id).execute();
        }
        return principal;
      }
      throw invalidToken();
    },
  };
}
