import type { Selectable } from 'kysely';
import type { RemoteSessionTable } from '../../db/schema.ts';
import {
  type Action,
  type Actor,
  authorize,
  readScope,
  requireUser,
  type ServicePrincipal,
  scopeCondition,
  type UserPrincipal,
} from '../../infra/access/index.ts';
import { appendAuditEvent } from '../../infra/audit/index.ts';
import type { Db } from '../../infra/db/index.ts';
import { AppError, notFound } from '../../infra/errors/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import { type Page, type PageRequest, type ServiceDeps, write } from '../../infra/service/index.ts';
import { instanceRuns } from '../cluster/index.ts';

/**
 * People's sessions to devices (DESIGN section 7, issue 5 item 1): every stream opened through the stream
 * router (features/remote-access: `fleetgate tunnel`, the SSH gateway, the CONNECT proxy) is a session, recorded from open to end with the
 * bytes each way, the client's address and how it ended, beside its `device.stream.open`/`close` audit events.
 * Live sessions are also held in memory on the instance that relays them, so an administrator can end one at
 * once (`terminateSession`) and lists show their bytes so far.
 */

/** The surfaces a session can come through. */
export const sessionSurfaces = [
  'tunnel',
  'connect',
  'ssh',
  'openssh',
  'terminal',
  'web',
  'diagnostics',
  'vnc',
  'files',
  'mender-cli',
] as const;
export type SessionSurface = (typeof sessionSurfaces)[number];

export interface SessionView {
  id: string;
  orgId: number;
  fleetId: number;
  device: { id: number; uuid: string; name: string };
  user: { id: number | null; label: string };
  surface: string;
  /** The device port, or null when the target is not a port (the agent's exec service). */
  port: number | null;
  /** What was reached, for people: `port 22`, `exec`… */
  target: string;
  clientAddress: string | null;
  startedAt: string;
  endedAt: string | null;
  /** True while the session is open. */
  live: boolean;
  bytesToDevice: number;
  bytesFromDevice: number;
  /** How it ended (`closed`, `reset: …`, `terminated by …`); null while live. */
  outcome: string | null;
  terminatedBy: { id: number | null; label: string } | null;
  /** The fleetgate instance that relays it (`/readyz` names each instance); null for sessions from before. */
  instance: string | null;
}

/** A live session on this instance: what `terminateSession` and lists need from the relay that holds it. */
export interface LiveSessionHandle {
  /** Who the session is for: their rights are checked again whenever people's access changes. */
  actor: Actor;
  /**
   * The service credential that opened the session on the person's behalf (the OpenSSH bastion's key), if any:
   * the session goes on only while it still holds.
   */
  vouchedBy?: ServicePrincipal;
  /**
   * What those rights must still allow for the session to go on: `action` on the device where it is now (its
   * organization and fleet are read again at each check, as it may have moved), and `port` (null for a command)
   * still on the device's port allow-list.
   */
  access: { action: Action; deviceId: number; port: number | null };
  /** Bytes relayed so far. */
  bytes(): { toDevice: number; fromDevice: number };
  /** Ends the session at once (resets the stream both ways), giving `reason` as its outcome. */
  terminate(reason: string): void;
  /** Resolves once the session's end is recorded. */
  readonly ended: Promise<void>;
}

/** The sessions this app relays now, by id: made in `buildApp`, carried in `ServiceDeps` as `liveSessions`. */
export type LiveSessions = Map<string, LiveSessionHandle>;

declare module '../../infra/service/index.ts' {
  interface ServiceDeps {
    /** The sessions this app relays now (features/sessions). */
    liveSessions: LiveSessions;
  }
}

/** Registers a live session; answers the function that forgets it (called once its end is recorded). */
export function trackLiveSession(live: LiveSessions, id: string, handle: LiveSessionHandle): () => void {
  live.set(id, handle);
  return () => {
    live.delete(id);
  };
}

/** Where a device is now, and the ports its port allow-list (its own, its fleet's or the default) opens. */
export interface DeviceReach {
  orgId: number;
  fleetId: number;
  ports: readonly number[];
}

/**
 * How `recheckLiveSessions` reads access as it is now; each lookup answers undefined when what it looks up no
 * longer holds.
 */
export interface AccessNow {
  /** The person behind `principal` as they are now; undefined when the credential they used no longer holds. */
  person(principal: UserPrincipal): Promise<UserPrincipal | undefined>;
  /** The service credential as it is now; undefined when revoked, expired or its creator lost their rights. */
  service(principal: ServicePrincipal): Promise<ServicePrincipal | undefined>;
  /** Where the device is now and what its allow-list opens; undefined when the device is gone. */
  device(deviceId: number): Promise<DeviceReach | undefined>;
}

/** The answer of `lookup` for `key`, asked once per recheck however many sessions need it. */
function once<K, V>(answers: Map<K, Promise<V>>, key: K, lookup: () => Promise<V>): Promise<V> {
  let answer = answers.get(key);
  if (!answer) {
    answer = lookup();
    answers.set(key, answer);
  }
  return answer;
}

/**
 * Checks each live session relayed for `db` against access as it is now and terminates those the person may no
 * longer have: signed out, credential revoked or expired, membership removed, narrowed to other fleets or lowered
 * to a role that may not connect; the device moved to a fleet out of their reach, or its port taken off the
 * allow-list; the service credential that opened the session for them (OpenSSH mode) revoked or expired. Answers
 * how many it ended. Each person, service credential and device is looked up once; nothing when no session is
 * live.
 */
export async function recheckLiveSessions(live: LiveSessions, now: AccessNow): Promise<number> {
  const people = new Map<string, Promise<UserPrincipal | undefined>>();
  const services = new Map<number, Promise<ServicePrincipal | undefined>>();
  const devices = new Map<number, Promise<DeviceReach | undefined>>();
  const whyRevoked = async (handle: LiveSessionHandle): Promise<string | undefined> => {
    const { actor, vouchedBy, access } = handle;
    const principal = actor.principal;
    // Only people open sessions (devices and anonymous callers never reach the stream router).
    if (principal.type !== 'user') return undefined;
    if (vouchedBy) {
      const service = await once(services, vouchedBy.keyId, () => now.service(vouchedBy));
      if (!service)
        return "access revoked: the service key it was opened through was revoked, has expired or lost its creator's rights";
    }
    const { credential } = principal;
    const person = await once(people, `${principal.userId}:${credential.type}:${credential.id}`, () =>
      now.person(principal),
    );
    if (!person) return 'access revoked: the sign-in it was opened with was revoked or has expired';
    const device = await once(devices, access.deviceId, () => now.device(access.deviceId));
    if (!device) return 'access revoked: the device was deleted';
    try {
      authorize(person, access.action, { orgId: device.orgId, fleetId: device.fleetId }, 'device');
    } catch {
      return 'access revoked: the person may no longer reach this device';
    }
    if (access.port !== null && !device.ports.includes(access.port))
      return `access revoked: port ${access.port} is no longer on the device's port allow-list`;
    return undefined;
  };
  let ended = 0;
  for (const handle of [...live.values()]) {
    const reason = await whyRevoked(handle);
    if (reason) {
      handle.terminate(reason);
      ended += 1;
    }
  }
  return ended;
}

/**
 * Ends every live session this app relays (the server is stopping) and waits, up to `timeoutMs`, until their
 * ends are recorded: before the database closes, not after.
 */
export async function closeLiveSessions(live: LiveSessions, reason: string, timeoutMs = 3000): Promise<void> {
  const ending: Promise<void>[] = [];
  for (const handle of [...live.values()]) {
    handle.terminate(reason);
    ending.push(handle.ended);
  }
  if (ending.length) await untilOrTimeout(Promise.allSettled(ending), timeoutMs);
}

export interface SessionStart {
  id: string;
  device: { id: number; uuid: string; name: string; orgId: number; fleetId: number };
  surface: string;
  port: number | null;
  target: string;
  /** Details for the `device.stream.open` audit event. */
  details: Record<string, unknown>;
}

function userOf(actor: Actor): { id: number | null; label: string } {
  const p = actor.principal;
  if (p.type === 'user') return { id: p.userId, label: p.email };
  if (p.type === 'device') return { id: null, label: `device ${p.uuid}` };
  return { id: null, label: 'anonymous' };
}

/** Records a session's start and its `device.stream.open` audit event, in one transaction. */
export async function recordSessionStart(
  deps: Pick<ServiceDeps, 'db'> & Partial<Pick<ServiceDeps, 'instanceId'>>,
  actor: Actor,
  start: SessionStart,
): Promise<void> {
  const user = userOf(actor);
  await deps.db.transaction().execute(async (trx) => {
    await trx
      .insertInto('remote_sessions')
      .values({
        id: start.id,
        org_id: start.device.orgId,
        fleet_id: start.device.fleetId,
        device_id: start.device.id,
        device_uuid: start.device.uuid,
        device_name: start.device.name.slice(0, 128),
        user_id: user.id,
        actor_label: user.label.slice(0, 320),
        surface: start.surface.slice(0, 16),
        port: start.port,
        target: start.target.slice(0, 128),
        client_address: actor.sourceIp?.slice(0, 64) ?? null,
        started_at: Date.now(),
        ended_at: null,
        outcome: null,
        terminated_by: null,
        terminated_by_label: null,
        instance_id: deps.instanceId ?? null,
      })
      .execute();
    await appendAuditEvent(trx, actor, {
      action: 'device.stream.open',
      resourceType: 'device',
      orgId: start.device.orgId,
      resourceId: start.device.uuid,
      outcome: 'success',
      details: { ...start.details, session: start.id, surface: start.surface },
    });
  });
}

export interface SessionEnd {
  bytesToDevice: number;
  bytesFromDevice: number;
  outcome: string;
  /** Details for the `device.stream.close` audit event. */
  details: Record<string, unknown>;
}

/** Records a session's end and its `device.stream.close` audit event, in one transaction. */
export async function recordSessionEnd(
  deps: Pick<ServiceDeps, 'db'>,
  actor: Actor,
  session: { id: string; orgId: number; deviceUuid: string },
  end: SessionEnd,
): Promise<void> {
  await deps.db.transaction().execute(async (trx) => {
    await trx
      .updateTable('remote_sessions')
      .set({
        ended_at: Date.now(),
        bytes_to_device: end.bytesToDevice,
        bytes_from_device: end.bytesFromDevice,
        outcome: end.outcome.slice(0, 256),
      })
      .where('id', '=', session.id)
      .execute();
    await appendAuditEvent(trx, actor, {
      action: 'device.stream.close',
      resourceType: 'device',
      orgId: session.orgId,
      resourceId: session.deviceUuid,
      outcome: 'success',
      details: { ...end.details, session: session.id },
    });
  });
}

type SessionRow = Selectable<RemoteSessionTable>;

function viewOf(relayed: LiveSessions, row: SessionRow): SessionView {
  const live = row.ended_at === null;
  const bytes = live ? relayed.get(row.id)?.bytes() : undefined;
  return {
    id: row.id,
    orgId: row.org_id,
    fleetId: row.fleet_id,
    device: { id: row.device_id, uuid: row.device_uuid, name: row.device_name },
    user: { id: row.user_id, label: row.actor_label },
    surface: row.surface,
    port: row.port,
    target: row.target,
    clientAddress: row.client_address,
    startedAt: iso(row.started_at),
    endedAt: iso(row.ended_at),
    live,
    bytesToDevice: bytes?.toDevice ?? Number(row.bytes_to_device),
    bytesFromDevice: bytes?.fromDevice ?? Number(row.bytes_from_device),
    outcome: row.outcome,
    terminatedBy:
      row.terminated_by_label === null ? null : { id: row.terminated_by, label: row.terminated_by_label },
    instance: row.instance_id,
  };
}

export interface SessionQuery extends PageRequest {
  orgId?: number | undefined;
  /** Device uuid. */
  device?: string | undefined;
  /** true: only live sessions; false: only ended ones. */
  live?: boolean | undefined;
  surface?: string | undefined;
  /** E-mail of who opened the sessions. */
  user?: string | undefined;
}

/**
 * Sessions in the organizations (or fleets) where the caller may read devices: viewers and above. Newest
 * first. Filtering on an organization the caller is not a member of answers `not_found`, as everywhere.
 */
export async function listSessions(
  deps: ServiceDeps,
  actor: Actor,
  q: SessionQuery,
): Promise<Page<SessionView>> {
  const p = requireUser(actor.principal);
  const scope = readScope(p, 'device.read');
  if (q.orgId !== undefined && !scope.some((s) => s.orgId === q.orgId)) throw notFound('organization');
  let query = deps.db
    .selectFrom('remote_sessions')
    .where(scopeCondition(scope, 'remote_sessions.org_id', 'remote_sessions.fleet_id'));
  if (q.orgId !== undefined) query = query.where('org_id', '=', q.orgId);
  if (q.device) query = query.where('device_uuid', '=', q.device.toLowerCase());
  if (q.live !== undefined) query = query.where('ended_at', q.live ? 'is' : 'is not', null);
  if (q.surface) query = query.where('surface', '=', q.surface);
  if (q.user) query = query.where('actor_label', '=', q.user.toLowerCase());
  const { total } = await query
    .select((eb) => eb.fn.countAll<number>().as('total'))
    .executeTakeFirstOrThrow();
  const rows = await query
    .selectAll()
    .orderBy('started_at', 'desc')
    .orderBy('id')
    .limit(q.limit)
    .offset((q.page - 1) * q.limit)
    .execute();
  return {
    items: rows.map((row) => viewOf(deps.liveSessions, row)),
    total: Number(total),
    page: q.page,
    limit: q.limit,
  };
}

async function sessionForAction(
  db: Db,
  actor: Actor,
  id: string,
  action: 'device.read' | 'session.terminate',
): Promise<SessionRow> {
  const row = await db.selectFrom('remote_sessions').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw notFound('session');
  authorize(actor.principal, action, { orgId: row.org_id, fleetId: row.fleet_id }, 'session');
  return row;
}

/** One session; viewers and above of its organization (or fleet) may read it, others get `not_found`. */
export async function getSession(deps: ServiceDeps, actor: Actor, id: string): Promise<SessionView> {
  requireUser(actor.principal);
  return viewOf(deps.liveSessions, await sessionForAction(deps.db, actor, id, 'device.read'));
}

/** How long `terminateSession` waits for the relay to record the session's end, in milliseconds. */
const TERMINATE_WAIT_MS = 3000;

/**
 * Ends a live session at once (admins and owners of its organization): the device's stream and the person's
 * connection are reset, and the session records who ended it. A session that is recorded as live but is not
 * relayed by this process (its server stopped without recording the end) is closed in the record only.
 * An ended session answers `conflict`.
 */
export async function terminateSession(deps: ServiceDeps, actor: Actor, id: string): Promise<SessionView> {
  const p = requireUser(actor.principal);
  const entry = deps.liveSessions.get(id);
  const reason = `terminated by ${p.email}`;
  const elsewhere = await write(
    deps,
    actor,
    { action: 'session.terminate', resourceType: 'session' },
    async (trx) => {
      const row = await sessionForAction(trx, actor, id, 'session.terminate');
      if (row.ended_at !== null) {
        throw new AppError('conflict', `session ${id} already ended (${row.outcome ?? 'closed'})`);
      }
      // Relayed by another instance that still runs: that instance ends it (told through the event bus).
      const relayedElsewhere =
        !entry &&
        row.instance_id !== null &&
        row.instance_id !== deps.instanceId &&
        (await instanceRuns(trx, row.instance_id));
      await trx
        .updateTable('remote_sessions')
        .set({
          terminated_by: p.userId,
          terminated_by_label: p.email,
          ...(entry || relayedElsewhere
            ? {}
            : { ended_at: Date.now(), outcome: `${reason} (not relayed here)` }),
        })
        .where('id', '=', id)
        .execute();
      return {
        value: relayedElsewhere,
        orgId: row.org_id,
        resourceId: id,
        details: {
          device: row.device_uuid,
          surface: row.surface,
          live: !!entry || relayedElsewhere,
          ...(relayedElsewhere ? { instance: row.instance_id } : {}),
        },
      };
    },
  );
  if (entry) {
    entry.terminate(reason);
    await untilOrTimeout(
      entry.ended.catch(() => {}),
      TERMINATE_WAIT_MS,
    );
  } else if (elsewhere) {
    deps.events.emit('session.terminate', { sessionId: id, reason });
    await untilOrTimeout(endRecorded(deps.db, id), TERMINATE_WAIT_MS);
  }
  return viewOf(deps.liveSessions, await sessionForAction(deps.db, actor, id, 'device.read'));
}

/** Ends the live session `sessionId` if this app relays it (told by `terminateSession` on any instance). */
export function terminateIfRelayedHere(live: LiveSessions, sessionId: string, reason: string): void {
  live.get(sessionId)?.terminate(reason);
}

/**
 * Closes, in the record, the sessions the given instances relayed (they stopped without recording their ends:
 * killed, crashed). Answers how many.
 */
export async function endSessionsOfInstances(
  db: Db,
  instanceIds: readonly string[],
  now: number,
): Promise<number> {
  if (!instanceIds.length) return 0;
  const ended = await db
    .updateTable('remote_sessions')
    .set({ ended_at: now, outcome: 'lost: the instance relaying it stopped' })
    .where('instance_id', 'in', [...instanceIds])
    .where('ended_at', 'is', null)
    .executeTakeFirst();
  return Number(ended.numUpdatedRows);
}

/** Resolves once the session's end is recorded (polled: another instance records it). */
async function endRecorded(db: Db, id: string): Promise<void> {
  const deadline = Date.now() + TERMINATE_WAIT_MS;
  while (Date.now() < deadline) {
    const row = await db
      .selectFrom('remote_sessions')
      .select('ended_at')
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row || row.ended_at !== null) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function untilOrTimeout(work: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
