import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import {
  bridge,
  type ExecRequest,
  StreamError,
  StreamErrorCode,
  type StreamErrorCodeValue,
  type TunnelStream,
} from '@fleetgate/protocol';
import { type Actor, authorize, type ServicePrincipal } from '../../infra/access/index.ts';
import { appendAuditEvent } from '../../infra/audit/index.ts';
import { type Db, json } from '../../infra/db/index.ts';
import { AppError, badRequest } from '../../infra/errors/index.ts';
import { type ServiceDeps, write } from '../../infra/service/index.ts';
import { currentUserPrincipal } from '../auth/service.ts';
import { type DeviceRef, deviceForAction } from '../devices/service.ts';
import { fleetForAction } from '../fleets/service.ts';
import {
  type DeviceReach,
  recordSessionEnd,
  recordSessionStart,
  trackLiveSession,
} from '../sessions/service.ts';
import type { TunnelHub } from '../tunnel/hub.ts';

/**
 * People reaching TCP ports on devices (DESIGN section 7): every surface (`fleetgate tunnel`, the SSH gateway,
 * the CONNECT proxy) calls `openStream`, which authorizes, checks the port allow-list, finds the
 * device's live tunnel and opens a stream over it; `relay` pipes it to the person's end, counts the bytes and
 * audits the session's end.
 */

/** Ports people may reach when neither the device nor its fleet has a list of its own. */
export const DEFAULT_ALLOWED_PORTS: readonly number[] = [22];
/** Most ports on one allow-list. */
export const MAX_ALLOWED_PORTS = 64;

export interface AllowedPortsView {
  ports: number[];
  /** Where the list comes from: the device's own, its fleet's, or the default. */
  source: 'device' | 'fleet' | 'default';
}

function portsOf(text: string | null): number[] | null {
  return json.decode<number[]>(text);
}

function effectivePorts(
  device: { allowed_ports: string | null } | null,
  fleet: { allowed_ports: string | null },
) {
  const own = device ? portsOf(device.allowed_ports) : null;
  if (own) return { ports: own, source: 'device' as const };
  const fleetPorts = portsOf(fleet.allowed_ports);
  if (fleetPorts) return { ports: fleetPorts, source: 'fleet' as const };
  return { ports: [...DEFAULT_ALLOWED_PORTS], source: 'default' as const };
}

function normalizePorts(ports: number[]): number[] {
  if (ports.length > MAX_ALLOWED_PORTS) throw badRequest(`at most ${MAX_ALLOWED_PORTS} ports`);
  return [...new Set(ports)].sort((a, b) => a - b);
}

export async function getFleetAllowedPorts(
  deps: ServiceDeps,
  actor: Actor,
  fleetId: number,
): Promise<AllowedPortsView> {
  const fleet = await fleetForAction(deps.db, actor, fleetId, 'fleet.read');
  return effectivePorts(null, fleet);
}

/** Sets the fleet's allow-list; `null` goes back to the default. */
export async function setFleetAllowedPorts(
  deps: ServiceDeps,
  actor: Actor,
  fleetId: number,
  ports: number[] | null,
): Promise<AllowedPortsView> {
  return write(deps, actor, { action: 'fleet.ports.set', resourceType: 'fleet' }, async (trx) => {
    const fleet = await fleetForAction(trx, actor, fleetId, 'ports.manage');
    const list = ports === null ? null : normalizePorts(ports);
    const allowed_ports = list === null ? null : json.encode(list);
    await trx
      .updateTable('fleets')
      .set({ allowed_ports, updated_at: Date.now() })
      .where('id', '=', fleet.id)
      .execute();
    return {
      value: effectivePorts(null, { allowed_ports }),
      orgId: fleet.org_id,
      resourceId: fleet.id,
      details: { ports: list },
    };
  });
}

/**
 * Where the device is now (its organization and fleet) and the ports people may reach on it, or undefined when
 * it is gone: what live sessions to it are checked against when devices, fleets or allow-lists change.
 */
export async function currentDeviceReach(db: Db, deviceId: number): Promise<DeviceReach | undefined> {
  const row = await db
    .selectFrom('devices')
    .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
    .select(['devices.org_id', 'devices.fleet_id', 'devices.allowed_ports'])
    .select('fleets.allowed_ports as fleet_allowed_ports')
    .where('devices.id', '=', deviceId)
    .executeTakeFirst();
  if (!row) return undefined;
  const { ports } = effectivePorts(row, { allowed_ports: row.fleet_allowed_ports });
  return { orgId: row.org_id, fleetId: row.fleet_id, ports };
}

async function fleetOfDevice(deps: ServiceDeps, fleetId: number) {
  return deps.db
    .selectFrom('fleets')
    .select('allowed_ports')
    .where('id', '=', fleetId)
    .executeTakeFirstOrThrow();
}

export async function getDeviceAllowedPorts(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
): Promise<AllowedPortsView> {
  const device = await deviceForAction(deps.db, actor, ref, 'device.read');
  return effectivePorts(device, await fleetOfDevice(deps, device.fleet_id));
}

/**
 * Whether the caller may open streams to `port` on the device now: people who may connect to it (operators and
 * above; viewers get `forbidden`, others `not_found`) learn the device's allow-list and whether `port` is on it.
 */
export async function getPortAccess(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
  port: number,
): Promise<AllowedPortsView & { port: number; allowed: boolean }> {
  const device = await deviceForAction(deps.db, actor, ref, 'device.connect');
  const list = effectivePorts(device, await fleetOfDevice(deps, device.fleet_id));
  return { ...list, port, allowed: list.ports.includes(port) };
}

/** Sets the device's own allow-list; `null` goes back to its fleet's. */
export async function setDeviceAllowedPorts(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
  ports: number[] | null,
): Promise<AllowedPortsView> {
  return write(deps, actor, { action: 'device.ports.set', resourceType: 'device' }, async (trx) => {
    const device = await deviceForAction(trx, actor, ref, 'ports.manage');
    const list = ports === null ? null : normalizePorts(ports);
    const allowed_ports = list === null ? null : json.encode(list);
    await trx
      .updateTable('devices')
      .set({ allowed_ports, updated_at: Date.now() })
      .where('id', '=', device.id)
      .execute();
    const fleet = await trx
      .selectFrom('fleets')
      .select('allowed_ports')
      .where('id', '=', device.fleet_id)
      .executeTakeFirstOrThrow();
    return {
      value: effectivePorts({ allowed_ports }, fleet),
      orgId: device.org_id,
      resourceId: device.uuid,
      details: { ports: list },
    };
  });
}

/** One person's stream to one device port, open. */
/**
 * A command on the device instead of a TCP port: the SSH gateway's shells and commands (`exec`, the exec
 * sub-protocol of @fleetgate/protocol inside the stream) and its SFTP subsystem (`service: 'sftp'`).
 */
export type DeviceCommand = { exec: ExecRequest } | { service: 'sftp' };

/** How a command shows in sessions and the audit log: the command line (cut at 128 characters), `shell` or `sftp`. */
function commandLabel(command: DeviceCommand): string {
  if ('service' in command) return command.service;
  return command.exec.command === undefined ? 'shell' : command.exec.command.slice(0, 128);
}

export interface StreamSession {
  /** The session's id: `GET /api/v1/sessions/:id` shows it, `POST …/terminate` ends it. */
  readonly id: string;
  readonly stream: TunnelStream;
  readonly device: { id: number; uuid: string; orgId: number; name: string };
  /** The device port; 0 for a command. */
  readonly port: number;
  /** For a command: what runs (`shell`, `sftp` or the command line); undefined for a port. */
  readonly command?: string;
  /**
   * Pipes the device's stream and `peer` both ways with backpressure; a half-close (FIN) and errors
   * (resets) cross over. Counts the bytes each way and audits the end. Resolves when both ways ended.
   */
  relay(peer: Duplex): Promise<void>;
}

export interface OpenStreamOptions {
  /** Which surface opens the stream, recorded with the session: `tunnel` (default), `connect`, `ssh`… */
  surface?: string;
  /** Extra facts for the session's audit events (e.g. the service an OpenSSH host acted through); no secrets. */
  details?: Record<string, unknown>;
  /**
   * The service credential that opens the stream on the person's behalf (the OpenSSH bastion's key): the session
   * ends when it no longer holds (revoked, expired, its creator no longer a server administrator), as when the
   * person's own access goes.
   */
  vouchedBy?: ServicePrincipal;
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

/** `caller` with their rights as they are now; `unauthorized` when the credential they used no longer holds. */
async function currentActor(deps: ServiceDeps, caller: Actor): Promise<Actor> {
  if (caller.principal.type !== 'user') return caller;
  const principal = await currentUserPrincipal(deps.db, caller.principal);
  if (!principal)
    throw new AppError('unauthorized', 'your sign-in was revoked or has expired: sign in again');
  return { ...caller, principal };
}

/**
 * Opens a stream to TCP `port` on the device, for a person: authorizes `device.connect` (operators and above in
 * the device's organization, or in its fleet for a narrowed membership; others get `not_found`, viewers
 * `forbidden`), checks the device's port allow-list (`forbidden`), finds its live tunnel (`unavailable` when
 * offline) and opens the stream (`unavailable` with `details.stream` when the device refuses). Every attempt is
 * audited; an opened stream is a session (features/sessions) from here on, live until `relay` ends it (or the
 * stream closes without one) and terminable by an administrator meanwhile.
 */
export async function openStream(
  deps: ServiceDeps,
  hub: TunnelHub,
  caller: Actor,
  ref: DeviceRef,
  target: number | DeviceCommand,
  options: OpenStreamOptions = {},
): Promise<StreamSession> {
  // A command (`DeviceCommand`) needs `device.ssh` (the same roles as `device.connect`) and no port allow-list
  // applies to it: the agent runs it, or refuses when its exec service is off.
  const port = typeof target === 'number' ? target : 0;
  const command = typeof target === 'number' ? undefined : commandLabel(target);
  const what = { ...(command === undefined ? { port } : { command }), ...options.details };
  const surface = options.surface ?? 'tunnel';
  // A person's rights as they are now, not as they were when their connection (an SSH connection, a
  // `fleetgate tunnel`) signed in: a revoked credential or a lost membership stops new streams at once.
  const actor = await currentActor(deps, caller);
  const audit = (
    outcome: 'success' | 'denied' | 'failure',
    orgId: number | null,
    resourceId: string | null,
    details: Record<string, unknown>,
    action = 'device.stream.open',
  ) =>
    appendAuditEvent(deps.db, actor, {
      action,
      resourceType: 'device',
      orgId,
      resourceId,
      outcome,
      details,
    }).catch((err) => deps.log.error({ err }, 'could not audit a device stream'));
  const device = await deviceForAction(deps.db, actor, ref, 'device.read');
  const where = { uuid: device.uuid, orgId: device.org_id };
  const refuse = async (error: AppError, outcome: 'denied' | 'failure') => {
    hub.metrics.streams.inc({ outcome: outcome === 'denied' ? 'denied' : 'failed' });
    await audit(outcome, where.orgId, where.uuid, { ...what, reason: error.message });
    return error;
  };
  try {
    authorize(
      actor.principal,
      command === undefined ? 'device.connect' : 'device.ssh',
      { orgId: device.org_id, fleetId: device.fleet_id },
      'device',
    );
  } catch (err) {
    throw err instanceof AppError && err.code === 'forbidden' ? await refuse(err, 'denied') : err;
  }
  if (command === undefined && (!Number.isInteger(port) || port < 1 || port > 65535))
    throw badRequest('a port is a number from 1 to 65535');
  const { ports } =
    command === undefined
      ? effectivePorts(device, await fleetOfDevice(deps, device.fleet_id))
      : { ports: [port] };
  if (!ports.includes(port)) {
    throw await refuse(
      new AppError(
        'forbidden',
        `port ${port} is not on the device's port allow-list (${ports.join(', ') || 'empty'})`,
        {
          details: { stream: StreamErrorCode.notAllowed, allowedPorts: ports },
        },
      ),
      'denied',
    );
  }
  const tunnel = device.decommissioned_at === null ? hub.tunnelOf(device.id) : undefined;
  if (!tunnel || tunnel.principal.uuid !== device.uuid) {
    throw await refuse(
      new AppError(
        'unavailable',
        `device ${device.name} (${device.uuid}) is offline: it has no tunnel to this server`,
        {
          details: { stream: StreamErrorCode.unreachable },
        },
      ),
      'failure',
    );
  }
  let stream: TunnelStream;
  try {
    stream = await tunnel.peer.mux.open(typeof target === 'number' ? { port } : target);
  } catch (err) {
    if (!(err instanceof StreamError)) throw err;
    throw await refuse(
      new AppError(
        'unavailable',
        `device ${device.name} refused ${command ?? `port ${port}`}: ${err.code}${err.reason ? `: ${err.reason}` : ''}`,
        {
          details: { stream: err.code },
          cause: err,
        },
      ),
      'failure',
    );
  }
  // Errors reach the relay through `bridge`; before it is attached (or if it never is) a reset or a termination
  // must not become an uncaught exception.
  stream.on('error', () => {});
  const id = randomBytes(8).toString('hex');
  const sessionDevice = {
    id: device.id,
    uuid: device.uuid,
    orgId: device.org_id,
    fleetId: device.fleet_id,
    name: device.name,
  };
  try {
    await recordSessionStart(deps, actor, {
      id,
      device: sessionDevice,
      surface,
      port: command === undefined ? port : null,
      target: command ?? `port ${port}`,
      details: what,
    });
  } catch (err) {
    // A session that cannot be recorded is not opened.
    stream.destroy(new Error('the session could not be recorded'));
    throw err;
  }
  hub.metrics.streams.inc({ outcome: 'opened' });
  hub.metrics.open += 1;
  const startedAt = Date.now();
  let toDevice = 0;
  let fromDevice = 0;
  let terminated: string | undefined;
  let relayed = false;
  let markEnded!: () => void;
  const ended = new Promise<void>((resolve) => {
    markEnded = resolve;
  });
  const forget = trackLiveSession(deps.db, id, {
    actor,
    ...(options.vouchedBy ? { vouchedBy: options.vouchedBy } : {}),
    access: {
      action: command === undefined ? 'device.connect' : 'device.ssh',
      deviceId: device.id,
      port: command === undefined ? port : null,
    },
    bytes: () => ({ toDevice, fromDevice }),
    terminate(reason) {
      terminated ??= reason;
      // A reset with the reason for the device; the relay then resets the person's end (see `bridge`).
      stream.destroy(new Error(reason));
    },
    ended,
  });
  let finished = false;
  const finish = async (outcome: string) => {
    if (finished) return;
    finished = true;
    hub.metrics.open -= 1;
    hub.metrics.bytes.inc({ direction: 'to_device' }, toDevice);
    hub.metrics.bytes.inc({ direction: 'from_device' }, fromDevice);
    const final = terminated ?? outcome;
    try {
      await recordSessionEnd(
        deps,
        actor,
        { id, orgId: device.org_id, deviceUuid: device.uuid },
        {
          bytesToDevice: toDevice,
          bytesFromDevice: fromDevice,
          outcome: final,
          details: {
            ...what,
            surface,
            bytesToDevice: toDevice,
            bytesFromDevice: fromDevice,
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
  };
  // A stream that closes before anyone relays it (the person went away meanwhile) still ends its session.
  stream.once('close', () => {
    if (!relayed) void finish('closed before it was relayed');
  });
  return {
    id,
    stream,
    device: { id: device.id, uuid: device.uuid, orgId: device.org_id, name: device.name },
    port,
    ...(command === undefined ? {} : { command }),
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
        toDevice += chunk.length;
      });
      stream.on('data', (chunk: Buffer) => {
        fromDevice += chunk.length;
      });
      let outcome = 'closed';
      try {
        await done;
      } catch (err) {
        outcome =
          err instanceof StreamError ? `reset: ${err.code}` : `error: ${(err as Error).message ?? err}`;
      } finally {
        await finish(outcome);
      }
    },
  };
}
