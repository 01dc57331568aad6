import type { Actor, UserPrincipal } from '../../infra/access/index.ts';
import { appendAuditEvent } from '../../infra/audit/index.ts';
import { randomToken, sha256Hex } from '../../infra/crypto/index.ts';
import type { Db } from '../../infra/db/index.ts';
import { AppError, conflict } from '../../infra/errors/index.ts';
import { type ServiceDeps, write } from '../../infra/service/index.ts';
import { currentUserPrincipal } from '../auth/index.ts';
import { type DeviceRef, deviceForAction } from '../devices/index.ts';
import { getPortAccess } from '../remote-access/index.ts';
import type { DeviceOrigin } from './origins.ts';

/** How long a grant may wait to be entered, in milliseconds (60 s): the UI enters it at once. */
export const GRANT_TTL_MS = 60_000;

/**
 * Longest life of a device web session, in milliseconds (12 h); it ends sooner with the sign-in it came from
 * (signed out, expired, revoked), checked on every request.
 */
export const WEB_SESSION_TTL_MS = 12 * 3600_000;

/** Grants and sessions this long past their end are deleted when the next grant is made (1 day). */
const KEEP_EXPIRED_MS = 24 * 3600_000;

export interface WebGrant {
  /** The grant itself (secret, single-use); only its SHA-256 is stored. */
  grant: string;
  device: { id: number; uuid: string; name: string };
  expiresAt: number;
}

/**
 * A single-use grant to enter the web page of `port` on the device (HTTPS on the device when `tls`): for people
 * who may open streams to the port (`device.connect`: operators and above of the device's organization or fleet;
 * viewers get `forbidden`, others `not_found`), with the port on the device's allow-list (`forbidden`
 * otherwise). Audited (`device.web.grant`), refusals too. The grant is bound to the credential the person used:
 * the page works while it holds.
 */
export async function createWebGrant(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
  input: { port: number; tls: boolean },
): Promise<WebGrant> {
  const { principal } = actor;
  if (principal.type !== 'user')
    throw new AppError('forbidden', "only people open devices' web pages: sign in with your own account");
  return write(deps, actor, { action: 'device.web.grant', resourceType: 'device' }, async (trx) => {
    const device = await deviceForAction(trx, actor, ref, 'device.connect');
    const access = await getPortAccess({ ...deps, db: trx }, actor, device.id, input.port);
    if (!access.allowed) {
      throw new AppError(
        'forbidden',
        `port ${input.port} is not on the device's port allow-list (${access.ports.join(', ') || 'empty'}): ` +
          'an administrator adds it in the Ports tab',
        { details: { orgId: device.org_id, allowedPorts: access.ports } },
      );
    }
    if (device.decommissioned_at !== null)
      throw conflict(`device ${device.name} is decommissioned: it takes no streams`, {
        reason: 'decommissioned',
      });
    const now = Date.now();
    const grant = randomToken('fgw_');
    await trx
      .deleteFrom('device_web_sessions')
      .where('created_at', '<', now - KEEP_EXPIRED_MS)
      .execute();
    await trx
      .insertInto('device_web_sessions')
      .values({
        grant_hash: sha256Hex(grant),
        cookie_hash: null,
        user_id: principal.userId,
        credential_type: principal.credential.type,
        credential_id: principal.credential.id,
        org_id: device.org_id,
        device_id: device.id,
        device_uuid: device.uuid,
        port: input.port,
        tls: input.tls ? 1 : 0,
        created_at: now,
        grant_expires_at: now + GRANT_TTL_MS,
        entered_at: null,
        expires_at: null,
      })
      .execute();
    return {
      value: {
        grant,
        device: { id: device.id, uuid: device.uuid, name: device.name },
        expiresAt: now + GRANT_TTL_MS,
      },
      orgId: device.org_id,
      resourceId: device.uuid,
      details: { port: input.port, https: input.tls },
    };
  });
}

/** A device web session, as a request on its origin finds it. */
export interface WebSession {
  id: number;
  /** The person, with their rights as they are now. */
  actor: Actor & { principal: UserPrincipal };
  expiresAt: number;
}

/** The person behind a grant or session row, as they are now; undefined when their sign-in no longer holds. */
async function personOf(
  db: Db,
  row: { user_id: number; credential_type: UserPrincipal['credential']['type']; credential_id: number },
): Promise<UserPrincipal | undefined> {
  return currentUserPrincipal(db, {
    type: 'user',
    userId: row.user_id,
    email: '',
    serverAdmin: false,
    memberships: [],
    credential: { type: row.credential_type, id: row.credential_id },
  });
}

/**
 * Enters a grant on the device origin it was made for: once, within `GRANT_TTL_MS`, while the person's sign-in
 * holds. One conditional UPDATE marks it entered and stores the new cookie's hash, so two requests with the same
 * grant (on one instance or several) cannot both succeed. Answers the cookie (secret), or undefined when the
 * grant is unknown, used, expired, for another origin or its person signed out. Audited (`device.web.enter`).
 */
export async function enterWebGrant(
  deps: ServiceDeps,
  grant: string,
  origin: DeviceOrigin,
  sourceIp: string | null,
): Promise<{ cookie: string; expiresAt: number } | undefined> {
  const now = Date.now();
  const cookie = randomToken();
  const expiresAt = now + WEB_SESSION_TTL_MS;
  const grantHash = sha256Hex(grant);
  // Entered, and audited, in one transaction: an entry is never without its audit event.
  const entered = await deps.db.transaction().execute(async (trx) => {
    const updated = await trx
      .updateTable('device_web_sessions')
      .set({ cookie_hash: sha256Hex(cookie), entered_at: now, expires_at: expiresAt })
      .where('grant_hash', '=', grantHash)
      .where('entered_at', 'is', null)
      .where('grant_expires_at', '>', now)
      .where('device_uuid', '=', origin.uuid)
      .where('port', '=', origin.port)
      .where('tls', '=', origin.tls ? 1 : 0)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) !== 1) return false;
    const row = await trx
      .selectFrom('device_web_sessions')
      .selectAll()
      .where('grant_hash', '=', grantHash)
      .executeTakeFirstOrThrow();
    // Signed out since the grant was made: the grant is spent, and no page opens.
    const principal = await personOf(trx, row);
    if (!principal) return false;
    await appendAuditEvent(
      trx,
      { principal, sourceIp },
      {
        action: 'device.web.enter',
        resourceType: 'device',
        orgId: row.org_id,
        resourceId: row.device_uuid,
        outcome: 'success',
        details: { port: row.port, https: row.tls === 1, webSession: row.id },
      },
    );
    return true;
  });
  if (!entered) return undefined;
  return { cookie, expiresAt };
}

/**
 * The session a device origin's cookie holds: undefined when unknown, for another origin, expired, or when the
 * person's sign-in no longer holds (signed out, expired, revoked) or the person is gone.
 */
export async function webSessionOf(
  deps: ServiceDeps,
  cookie: string,
  origin: DeviceOrigin,
  sourceIp: string | null,
): Promise<WebSession | undefined> {
  const row = await deps.db
    .selectFrom('device_web_sessions')
    .select(['id', 'user_id', 'credential_type', 'credential_id', 'device_uuid', 'port', 'tls', 'expires_at'])
    .where('cookie_hash', '=', sha256Hex(cookie))
    .executeTakeFirst();
  if (!row || row.expires_at === null || row.expires_at <= Date.now()) return undefined;
  if (row.device_uuid !== origin.uuid || row.port !== origin.port || (row.tls === 1) !== origin.tls)
    return undefined;
  const principal = await personOf(deps.db, row);
  if (!principal) return undefined;
  return { id: row.id, actor: { principal, sourceIp }, expiresAt: row.expires_at };
}

/**
 * Ends a device web session now (an administrator terminated one of its connections): its cookie stops working,
 * so the browser cannot simply open a new connection. The termination itself is audited by features/sessions.
 */
export async function endWebSession(deps: ServiceDeps, id: number): Promise<void> {
  const now = Date.now();
  await deps.db
    .updateTable('device_web_sessions')
    .set({ expires_at: now })
    .where('id', '=', id)
    .where('expires_at', '>', now)
    .execute();
}
