import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import {
  bridge,
  type ExecRequest,
  type FileRequest,
  type OpenTarget,
  StreamError,
  StreamErrorCode,
  type StreamErrorCodeValue,
} from '@fleetgate/protocol';
import { type Action, type Actor, authorize, type ServicePrincipal } from '../../infra/access/index.ts';
import { appendAuditEvent } from '../../infra/audit/index.ts';
import { AppError, badRequest } from '../../infra/errors/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { currentUserPrincipal } from '../auth/index.ts';
import { type DeviceRef, type DeviceRow, deviceForAction } from '../devices/index.ts';
import { recordSessionEnd, recordSessionStart, trackLiveSession } from '../sessions/index.ts';
import { effectivePorts, fleetOfDevice } from './allowed-ports.ts';
import { resolveDevice } from './device-names.ts';
import type { DeviceLink, DeviceLinks } from './links.ts';
import { StreamMetrics } from './metrics.ts';
import { PersonClosed } from './stream-end.ts';

/**
 * The stream router (DESIGN section 7): every way a person reaches a device — `fleetgate tunnel`'s port streams,
 * the SSH gateway, OpenSSH mode, the CONNECT proxy — asks `open` for a stream, saying who asks and which device
 * they named. The router goes through four steps, each its own function below:
 *
 * 1. `authorizeStream`: the caller's rights as they are now, the device they named among their own devices,
 *    `device.connect` (a port) or `device.ssh` (a command), and the port allow-list;
 * 2. `findLink`: the device's live link (its tunnel or OpenVPN connection to this instance, else either one
 *    held by another instance, reached through it), and a stream opened over it;
 * 3. `recordSession`: the session recorded (features/sessions), live and terminable from then on;
 * 4. `relay` (on the answered session): the stream piped to the person's end, bytes counted, its end recorded.
 *
 * Every attempt is audited. The router knows nothing of the surface beyond the name it records with the session.
 */

/**
 * A command on the device instead of a TCP port: the SSH gateway's shells and commands (`exec`, the exec
 * sub-protocol of @fleetgate/protocol inside the stream), its SFTP subsystem (`service: 'sftp'`), the agent's
 * read-only diagnostics (`service: 'diagnostics'`, features/diagnostics), and file transfer (`file`: a read or a
 * write, authorized as scp/sftp are, `device.ssh`).
 */
export type DeviceCommand =
  | { exec: ExecRequest }
  | { service: 'sftp' }
  | { service: 'diagnostics' }
  | { file: FileRequest };

/**
 * Who asks for a stream, as their surface knows them.
 *
 * A surface that authenticated the credential for this very request (the CONNECT proxy, a port stream, the
 * OpenSSH bastion's connection) read the person's rights from the database just now: it says `current: true`
 * and the router takes them as they are. A connection signed in earlier (an SSH connection) leaves it unset:
 * the router reads the person's rights as they are now, so a revoked credential or a lost membership stops new
 * streams at once.
 */
export interface StreamCaller {
  actor: Actor;
  current?: boolean;
}

/** A device found for a caller by `StreamRouter.findDevice`, to open streams to without looking it up again. */
export interface FoundDevice {
  readonly found: DeviceRow;
}

/**
 * The device a person names: an id or uuid (`{ref}`, as the API's paths carry it), what they typed (`{typed}`:
 * a uuid, a unique uuid prefix or a name, optionally followed by `.<deviceSuffix>`; see device-names.ts), or a
 * device `findDevice` found already. Only devices the person may see are found: others are `not_found`.
 */
export type DeviceReference = { ref: DeviceRef } | { typed: string } | FoundDevice;

export interface StreamRequest {
  caller: StreamCaller;
  device: DeviceReference;
  /** A TCP port on the device (its allow-list applies), or a command the agent runs. */
  target: number | DeviceCommand;
  /** Which surface asks, recorded with the session: `tunnel`, `connect`, `ssh`, `openssh`… */
  surface: string;
  /** Extra facts for the session's audit events (e.g. the service an OpenSSH host acted through); no secrets. */
  details?: Record<string, unknown>;
  /**
   * The service credential that opens the stream on the person's behalf (the OpenSSH bastion's key): the session
   * ends when it no longer holds (revoked, expired, its creator no longer a server administrator), as when the
   * person's own access goes.
   */
  vouchedBy?: ServicePrincipal;
}

/** One person's stream to one device port or command, open. */
export interface StreamSession {
  /** The session's id: `GET /api/v1/sessions/:id` shows it, `POST …/terminate` ends it. */
  readonly id: string;
  /** The stream to the device; destroy it to give up before `relay`. */
  readonly stream: Duplex;
  readonly device: { id: number; uuid: string; orgId: number; name: string };
  /** The device port; 0 for a command. */
  readonly port: number;
  /** For a command: what runs (`shell`, `sftp` or the command line); undefined for a port. */
  readonly command?: string;
  /** Adds facts to the audit event of the session's end (e.g. a transferred file's size and SHA-256); no secrets. */
  addEndDetails(details: Record<string, unknown>): void;
  /**
   * Pipes the device's stream and `peer` both ways with backpressure; a half-close (FIN) and errors
   * (resets) cross over. Counts the bytes each way and audits the end. Resolves when both ways ended.
   */
  relay(peer: Duplex): Promise<void>;
}

export interface StreamRouter {
  /** Streams asked for by outcome, bytes relayed, streams open: the server's /metrics shows them. */
  readonly metrics: StreamMetrics;
  /**
   * Finds the device a caller names, among the devices they may see (`not_found` otherwise; `conflict` when a
   * typed name matches several), without opening anything: for a surface that must answer before it opens
   * (the OpenSSH bastion's upgrade). Pass the answer as `device` to `open`.
   */
  findDevice(caller: StreamCaller, device: DeviceReference): Promise<FoundDevice>;
  /**
   * Opens a stream for a person: authorizes `device.connect` for a port (operators and above in the device's
   * organization, or in its fleet for a narrowed membership; others get `not_found`, viewers `forbidden`) or
   * `device.ssh` for a command (the same roles; no allow-list applies: the agent runs it, or refuses when its
   * exec service is off; `device.diagnose` for the diagnostics service, which needs no shell rights), refuses a
   * decommissioned device (`conflict`, `details.reason: 'decommissioned'`),
   * checks the device's port allow-list (`forbidden`), finds its live link (`unavailable` when offline) and
   * opens the stream (`unavailable` with `details.stream` when the device refuses). Every attempt is audited;
   * an opened stream is a session (features/sessions) from here on, live until `relay` ends it (or the stream
   * closes without one) and terminable by an administrator meanwhile.
   */
  open(request: StreamRequest): Promise<StreamSession>;
}

/** The router over `links`, asked in order for a device's live link. */
export function createStreamRouter(deps: ServiceDeps, links: readonly DeviceLinks[]): StreamRouter {
  const metrics = new StreamMetrics();
  return {
    metrics,
    async findDevice(caller, device) {
      const actor = await callerNow(deps, caller);
      return { found: await findDevice(deps, actor, device) };
    },
    async open(request) {
      const authorized = await authorizeStream(deps, metrics, request);
      const stream = await findLink(links, authorized);
      const recorded = await recordSession(deps, authorized, request, stream);
      metrics.streams.inc({ outcome: 'opened' });
      metrics.open += 1;
      return relayable(metrics, authorized, recorded, stream);
    },
  };
}

/** Why a stream could not be opened, as a stream error code the person's client understands. */
export function streamRefusalOf(error: unknown): { code: StreamErrorCodeValue; reason: string } {
  if (error instanceof StreamError) return { code: error.code, reason: error.reason };
  if (error instanceof AppError) {
    const stream = (error.details as { stream?: StreamErrorCodeValue } | undefined)?.stream;
    if (stream) return { code: stream, reason: error.message };
    switch (error.code) {
      case 'not_found':
      case 'forbidden':
      case 'unauthorized':
        return { code: StreamErrorCode.notAllowed, reason: error.message };
      case 'unavailable':
        return { code: StreamErrorCode.unreachable, reason: error.message };
      default:
        return { code: StreamErrorCode.internal, reason: error.message };
    }
  }
  return { code: StreamErrorCode.internal, reason: 'internal error' };
}

// --- 1. authorize ------------------------------------------------------------------------------------------

/** What `authorizeStream` established: who, which device, what on it, and how to audit the attempt. */
interface AuthorizedStream {
  actor: Actor;
  device: DeviceRow;
  /** The port; 0 for a command. */
  port: number;
  command: string | undefined;
  openTarget: OpenTarget;
  action: Action;
  /** The facts every audit event of this attempt and session carries. */
  what: Record<string, unknown>;
  /** Counts and audits a refusal after the device was found, and answers the error to throw. */
  refuse(error: AppError, outcome: 'denied' | 'failure'): Promise<AppError>;
}

/** How a command shows in sessions and the audit log: the command line (cut at 128 characters), `shell` or `sftp`. */
function commandLabel(command: DeviceCommand): string {
  if ('service' in command) return command.service;
  if ('file' in command)
    return `${command.file.op === 'read' ? 'download' : 'upload'} ${command.file.path}`.slice(0, 128);
  return command.exec.command === undefined ? 'shell' : command.exec.command.slice(0, 128);
}

/**
 * What a target needs: `device.connect` for a port, `device.diagnose` for the read-only diagnostics (no shell
 * rights needed), `device.ssh` for any other command.
 */
function actionFor(target: number | DeviceCommand): Action {
  if (typeof target === 'number') return 'device.connect';
  if ('service' in target && target.service === 'diagnostics') return 'device.diagnose';
  return 'device.ssh';
}

/** `caller` with their rights as they are now; `unauthorized` when the credential they used no longer holds. */
async function callerNow(deps: ServiceDeps, caller: StreamCaller): Promise<Actor> {
  const { actor } = caller;
  if (caller.current || actor.principal.type !== 'user') return actor;
  const principal = await currentUserPrincipal(deps.db, actor.principal);
  if (!principal)
    throw new AppError('unauthorized', 'your sign-in was revoked or has expired: sign in again');
  return { ...actor, principal };
}

/** The device `reference` names, among those `actor` may read (`not_found` otherwise). */
async function findDevice(deps: ServiceDeps, actor: Actor, reference: DeviceReference): Promise<DeviceRow> {
  if ('found' in reference) return reference.found;
  if ('typed' in reference)
    return resolveDevice(deps.db, actor.principal, reference.typed, deps.config.deviceSuffix);
  return deviceForAction(deps.db, actor, reference.ref, 'device.read');
}

async function authorizeStream(
  deps: ServiceDeps,
  metrics: StreamMetrics,
  request: StreamRequest,
): Promise<AuthorizedStream> {
  const { target } = request;
  const port = typeof target === 'number' ? target : 0;
  const command = typeof target === 'number' ? undefined : commandLabel(target);
  const what = { ...(command === undefined ? { port } : { command }), ...request.details };
  const actor = await callerNow(deps, request.caller);
  const device = await findDevice(deps, actor, request.device);
  const refuse = async (error: AppError, outcome: 'denied' | 'failure') => {
    metrics.streams.inc({ outcome: outcome === 'denied' ? 'denied' : 'failed' });
    await appendAuditEvent(deps.db, actor, {
      action: 'device.stream.open',
      resourceType: 'device',
      orgId: device.org_id,
      resourceId: device.uuid,
      outcome,
      details: { ...what, reason: error.message },
    }).catch((err) => deps.log.error({ err }, 'could not audit a device stream'));
    return error;
  };
  const action = actionFor(target);
  try {
    authorize(actor.principal, action, { orgId: device.org_id, fleetId: device.fleet_id }, 'device');
  } catch (err) {
    throw err instanceof AppError && err.code === 'forbidden' ? await refuse(err, 'denied') : err;
  }
  // Said as such, not as "offline": it will never be back, and its tunnel (if any) is being closed.
  if (device.decommissioned_at !== null) {
    throw await refuse(
      new AppError(
        'conflict',
        `device ${device.name} (${device.uuid}) is decommissioned: it takes no streams`,
        {
          details: { stream: StreamErrorCode.unreachable, reason: 'decommissioned' },
        },
      ),
      'failure',
    );
  }
  if (command === undefined) {
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw badRequest('a port is a number from 1 to 65535');
    const { ports } = effectivePorts(device, await fleetOfDevice(deps.db, device.fleet_id));
    if (!ports.includes(port)) {
      throw await refuse(
        new AppError(
          'forbidden',
          `port ${port} is not on the device's port allow-list (${ports.join(', ') || 'empty'})`,
          { details: { stream: StreamErrorCode.notAllowed, allowedPorts: ports } },
        ),
        'denied',
      );
    }
  }
  const openTarget: OpenTarget = typeof target === 'number' ? { port } : target;
  return { actor, device, port, command, openTarget, action, what, refuse };
}

// --- 2. find the device's link, open the stream ---------------------------------------------------------------

/** The id a link may tell the device the stream is for: the user's id, or the kind of principal. */
function openerId(actor: Actor): string {
  return actor.principal.type === 'user' ? String(actor.principal.userId) : actor.principal.type;
}

/** Opens the stream over the device's live link: the first of `links` that has one. */
async function findLink(links: readonly DeviceLinks[], authorized: AuthorizedStream): Promise<Duplex> {
  const { device, command, port } = authorized;
  let link: DeviceLink | undefined;
  // A decommissioned device was refused in `authorizeStream`: its link, if any, is being closed.
  for (const kind of links) {
    link = await kind.linkOf(device);
    if (link) break;
  }
  if (!link) {
    throw await authorized.refuse(
      new AppError(
        'unavailable',
        `device ${device.name} (${device.uuid}) is offline: it has no tunnel or VPN connection to any instance of this server`,
        { details: { stream: StreamErrorCode.unreachable } },
      ),
      'failure',
    );
  }
  let stream: Duplex;
  try {
    stream = await link.open(authorized.openTarget, { userId: openerId(authorized.actor) });
  } catch (err) {
    if (!(err instanceof StreamError)) throw err;
    throw await authorized.refuse(
      new AppError(
        'unavailable',
        `${command ?? `port ${port}`} on device ${device.name} could not be opened (${err.code})${err.reason ? `: ${err.reason}` : ''}`,
        { details: { stream: err.code }, cause: err },
      ),
      'failure',
    );
  }
  // Errors reach the relay through `bridge`; before it is attached (or if it never is) a reset or a termination
  // must not become an uncaught exception.
  stream.on('error', () => {});
  return stream;
}

// --- 3. record the session ------------------------------------------------------------------------------------

/** A recorded, live session: its id, its byte counts, and how its end is recorded. */
interface RecordedSession {
  id: string;
  bytes: { toDevice: number; fromDevice: number };
  /** Facts the surface adds for the end's audit event. */
  endDetails: Record<string, unknown>;
  /** Records the end (once), with `terminated`'s reason if an administrator or a lost access ended it. */
  finish(outcome: string): Promise<void>;
}

async function recordSession(
  deps: ServiceDeps,
  authorized: AuthorizedStream,
  request: StreamRequest,
  stream: Duplex,
): Promise<RecordedSession> {
  const { actor, device, command, port, what } = authorized;
  const id = randomBytes(8).toString('hex');
  try {
    await recordSessionStart(deps, actor, {
      id,
      device: {
        id: device.id,
        uuid: device.uuid,
        orgId: device.org_id,
        fleetId: device.fleet_id,
        name: device.name,
      },
      surface: request.surface,
      port: command === undefined ? port : null,
      target: command ?? `port ${port}`,
      details: what,
    });
  } catch (err) {
    // A session that cannot be recorded is not opened.
    stream.destroy(new Error('the session could not be recorded'));
    throw err;
  }
  const startedAt = Date.now();
  const bytes = { toDevice: 0, fromDevice: 0 };
  let terminated: string | undefined;
  let markEnded!: () => void;
  const ended = new Promise<void>((resolve) => {
    markEnded = resolve;
  });
  const forget = trackLiveSession(deps.liveSessions, id, {
    actor,
    ...(request.vouchedBy ? { vouchedBy: request.vouchedBy } : {}),
    access: { action: authorized.action, deviceId: device.id, port: command === undefined ? port : null },
    bytes: () => ({ ...bytes }),
    terminate(reason) {
      terminated ??= reason;
      // A reset with the reason for the device; the relay then resets the person's end (see `bridge`).
      stream.destroy(new Error(reason));
    },
    ended,
  });
  let finished = false;
  const endDetails: Record<string, unknown> = {};
  return {
    id,
    bytes,
    endDetails,
    async finish(outcome) {
      if (finished) return;
      finished = true;
      const final = terminated ?? outcome;
      try {
        await recordSessionEnd(
          deps,
          actor,
          { id, orgId: device.org_id, deviceUuid: device.uuid },
          {
            bytesToDevice: bytes.toDevice,
            bytesFromDevice: bytes.fromDevice,
            outcome: final,
            details: {
              ...what,
              ...endDetails,
              surface: request.surface,
              bytesToDevice: bytes.toDevice,
              bytesFromDevice: bytes.fromDevice,
              durationMs: Date.now() - startedAt,
              outcome: final,
            },
          },
        );
      } catch (err) {
        deps.log.error({ err, session: id }, 'could not record the end of a session');
      } finally {
        forget();
        markEnded();
      }
    },
  };
}

// --- 4. relay -------------------------------------------------------------------------------------------------

function relayable(
  metrics: StreamMetrics,
  authorized: AuthorizedStream,
  recorded: RecordedSession,
  stream: Duplex,
): StreamSession {
  const { device, port, command } = authorized;
  const { bytes } = recorded;
  let relayed = false;
  let counted = true;
  const finish = async (outcome: string) => {
    if (counted) {
      counted = false;
      metrics.open -= 1;
      metrics.bytes.inc({ direction: 'to_device' }, bytes.toDevice);
      metrics.bytes.inc({ direction: 'from_device' }, bytes.fromDevice);
    }
    await recorded.finish(outcome);
  };
  // A stream that closes before anyone relays it (the person went away meanwhile) still ends its session.
  stream.once('close', () => {
    if (!relayed) void finish('closed before it was relayed');
  });
  return {
    id: recorded.id,
    stream,
    device: { id: device.id, uuid: device.uuid, orgId: device.org_id, name: device.name },
    port,
    ...(command === undefined ? {} : { command }),
    addEndDetails(details) {
      Object.assign(recorded.endDetails, details);
    },
    async relay(peer: Duplex): Promise<void> {
      if (relayed) throw new Error('a stream is relayed once');
      relayed = true;
      if (stream.destroyed) {
        peer.destroy();
        await finish('closed before it was relayed');
        return;
      }
      const done = bridge(peer, stream);
      // Counted after the pipes are attached (same tick): a 'data' listener added earlier would start the
      // flow before anyone consumed it.
      peer.on('data', (chunk: Buffer) => {
        bytes.toDevice += chunk.length;
      });
      stream.on('data', (chunk: Buffer) => {
        bytes.fromDevice += chunk.length;
      });
      let outcome = 'closed';
      try {
        await done;
      } catch (err) {
        outcome =
          err instanceof PersonClosed
            ? 'closed'
            : err instanceof StreamError
              ? `reset: ${err.code}`
              : `error: ${(err as Error).message ?? err}`;
      } finally {
        await finish(outcome);
      }
    },
  };
}
