import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import client from 'prom-client';
import { type WebSocket, WebSocketServer } from 'ws';
import type { DevicePrincipal } from '../../infra/access/index.ts';
import { AppError } from '../../infra/errors/index.ts';
import type { AppEvents } from '../../infra/events/index.ts';
import { refuseUpgrade, releaseUpgradeSocket } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { authenticateDevice, decommissionedCredential, deviceCredentialOf } from '../device-auth/index.ts';
import type { PresenceConnection, PresenceRecorder } from '../presence/service.ts';
import {
  acceptOf,
  CloseReason,
  ControlType,
  decodeMessage,
  encodeBody,
  encodeMessage,
  errorTextOf,
  MAX_MESSAGE_FROM_DEVICE,
  MenderProtocolError,
  PROTOCOL_VERSION,
  type PropValue,
  Proto,
  type ProtoMessage,
} from './protocol.ts';

/**
 * mender-connect devices' connections to this instance: `GET /api/devices/v1/deviceconnect/connect`, a
 * WebSocket authenticated by the device JWT the stock mender-client got from `auth_requests` (mender-connect asks
 * the client for it over D-Bus). One live connection per device, a newer one supersedes the older; decommissioning
 * the device or revoking its tokens closes it at once. Each connection carries sessions (one per stream the
 * router opens: a shell, a port forward) keyed by the session id fleetgate chose.
 */

export interface MenderConnectOptions {
  presence: PresenceRecorder;
  /** How often the server pings each device, in milliseconds (30 s, as Mender's deviceconnect does). */
  pingIntervalMs?: number;
  /**
   * How long a device may stay silent (no pong, no message) before its connection is closed, in milliseconds
   * (60 s: mender-connect pings every 54 s itself and answers the server's pings at once).
   */
  silenceTimeoutMs?: number;
}

/** What a session of a connection is told: the device's messages for it, and the connection's end. */
export interface SessionHandler {
  receive(message: ProtoMessage): void;
  /** The connection closed under the session (device gone, decommissioned, server stopping). */
  connectionClosed(reason: string): void;
}

/** How long the device has to answer a session's `open`, in milliseconds. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** After a CLOSE frame, how long the device has to answer it before its socket is destroyed, in milliseconds. */
const CLOSE_FLUSH_MS = 500;
/** Bytes queued to one device's socket above which senders are told to wait (`MenderConnection.send`). */
const SEND_HIGH_WATER = 256 * 1024;

/** One device's live mender-connect connection. */
export class MenderConnection implements PresenceConnection {
  readonly link = 'mender-connect' as const;
  readonly agentVersion = null;
  lastHeardAt: number;
  pingSentAt = 0;
  private readonly sessions = new Map<string, SessionHandler>();
  /** Sessions whose person-side buffers are full: the device's socket is not read meanwhile. */
  private readonly holding = new Set<string>();
  /** Sessions waiting for the device's `accept` (or `error`) to their `open`. */
  private readonly handshakes = new Map<
    string,
    { accept(protocols: number[]): void; refuse(reason: string): void }
  >();
  closed = false;

  constructor(
    readonly ws: WebSocket,
    readonly socket: Duplex,
    readonly principal: DevicePrincipal,
    readonly remoteAddress: string | null,
    readonly connectedAt: number,
  ) {
    this.lastHeardAt = connectedAt;
  }

  get deviceId(): number {
    return this.principal.deviceId;
  }

  /**
   * Sends one message to the device. Answers false once the socket's queue is above `SEND_HIGH_WATER` (the sender
   * should wait for the device's acknowledgements, which it does for port forwarding), and false without sending
   * when the connection closed.
   */
  send(message: {
    proto: number;
    typ?: string;
    sid?: string;
    props?: Record<string, PropValue>;
    body?: Uint8Array;
  }): boolean {
    if (this.closed) return false;
    this.ws.send(encodeMessage(message), { binary: true });
    return this.ws.bufferedAmount < SEND_HIGH_WATER;
  }

  /** A new session id: 32 hex characters, as unguessable as a UUID. */
  newSession(handler: SessionHandler): string {
    const sid = randomBytes(16).toString('hex');
    this.sessions.set(sid, handler);
    return sid;
  }

  endSession(sid: string): void {
    this.sessions.delete(sid);
    this.holding.delete(sid);
    this.releaseIfFree();
  }

  /**
   * The control handshake of a session (protos 2–4): `open{versions}` answered by `accept{version, protocols}`.
   * Rejects with the device's error text, or after `HANDSHAKE_TIMEOUT_MS`.
   */
  handshake(sid: string): Promise<number[]> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error('the device disconnected'));
        return;
      }
      const timer = setTimeout(() => {
        this.handshakes.delete(sid);
        reject(
          new Error(
            `the device did not answer the session handshake within ${HANDSHAKE_TIMEOUT_MS / 1000} s`,
          ),
        );
      }, HANDSHAKE_TIMEOUT_MS);
      this.handshakes.set(sid, {
        accept: (protocols) => {
          clearTimeout(timer);
          resolve(protocols);
        },
        refuse: (reason) => {
          clearTimeout(timer);
          reject(new Error(reason));
        },
      });
      this.send({
        proto: Proto.control,
        typ: ControlType.open,
        sid,
        body: encodeBody({ versions: [PROTOCOL_VERSION] }),
      });
    });
  }

  /** Stops reading the device while `holder`'s person-side buffer is full (a slow person's terminal). */
  hold(holder: string): void {
    this.holding.add(holder);
    if (this.holding.size === 1) this.socket.pause();
  }

  release(holder: string): void {
    if (this.holding.delete(holder)) this.releaseIfFree();
  }

  private releaseIfFree(): void {
    if (this.holding.size === 0 && !this.closed) this.socket.resume();
  }

  /** @internal A message from the device: checked, then given to its session. */
  received(data: Buffer): void {
    this.lastHeardAt = Date.now();
    const message = decodeMessage(data);
    const { proto, typ, sid } = message.hdr;
    if (proto === Proto.control) {
      switch (typ) {
        case ControlType.ping:
          // Sessions on the device ping when idle (session/session.go): the answer keeps them open.
          this.send({ proto: Proto.control, typ: ControlType.pong, sid });
          return;
        case ControlType.pong:
          return;
        case ControlType.accept: {
          const waiting = this.handshakes.get(sid);
          if (!waiting) return;
          this.handshakes.delete(sid);
          const accept = acceptOf(message.body);
          if (accept.version !== PROTOCOL_VERSION)
            waiting.refuse(`the device speaks version ${accept.version}`);
          else waiting.accept(accept.protocols);
          return;
        }
        case ControlType.error: {
          const waiting = this.handshakes.get(sid);
          if (waiting) {
            this.handshakes.delete(sid);
            waiting.refuse(errorTextOf(message.body));
            return;
          }
          break;
        }
        default:
          break;
      }
    }
    this.sessions.get(sid)?.receive(message);
  }

  /** @internal The connection ended: every session is told. */
  ended(reason: string): void {
    this.closed = true;
    for (const waiting of this.handshakes.values()) waiting.refuse(reason);
    this.handshakes.clear();
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    for (const session of sessions) session.connectionClosed(reason);
  }

  /**
   * Why fleetgate closed the connection, when it did: recorded as its end rather than what the device (or the
   * mender client's local proxy in front of it) answers in its closing frame.
   */
  closedWith: { code: number; reason: string } | undefined;

  /** Closes the connection with `close`, destroying the socket if the device does not answer soon. */
  close(close: { code: number; reason: string }): void {
    if (this.ws.readyState === this.ws.CLOSED) return;
    this.closedWith ??= close;
    this.ws.close(close.code, close.reason);
    setTimeout(() => this.ws.terminate(), CLOSE_FLUSH_MS).unref();
  }
}

export class MenderConnectHub {
  private readonly wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: MAX_MESSAGE_FROM_DEVICE,
    clientTracking: false,
  });
  private readonly devices = new Map<number, MenderConnection>();
  private readonly all = new Set<MenderConnection>();
  /** Device uuid → when it was decommissioned or its tokens revoked, for connections authenticated just before. */
  private readonly revoked = new Map<string, number>();
  private readonly unsubscribe: (() => void)[] = [];
  private sweepTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private readonly pingIntervalMs: number;
  private readonly silenceTimeoutMs: number;

  constructor(
    private readonly deps: ServiceDeps,
    private readonly options: MenderConnectOptions,
  ) {
    this.pingIntervalMs = options.pingIntervalMs ?? 30_000;
    this.silenceTimeoutMs = options.silenceTimeoutMs ?? 60_000;
  }

  start(): void {
    const period = Math.max(50, Math.min(1000, Math.floor(this.pingIntervalMs / 5)));
    this.sweepTimer = setInterval(() => this.sweep(), period).unref();
    this.unsubscribe.push(
      this.deps.events.on('device.decommissioned', (device) => this.decommissioned(device)),
      this.deps.events.on('device.credentials.revoked', (revoked) => this.credentialsRevoked(revoked)),
    );
  }

  /** Closes every connection (`going away`: mender-connect reconnects with backoff). */
  close(): void {
    this.stopping = true;
    clearInterval(this.sweepTimer);
    for (const stop of this.unsubscribe) stop();
    for (const connection of this.all) connection.close(CloseReason.shutdown);
  }

  /** The device's live connection on this instance, if any. */
  connectionOf(deviceId: number): MenderConnection | undefined {
    return this.devices.get(deviceId);
  }

  get count(): number {
    return this.devices.size;
  }

  /**
   * `GET /api/devices/v1/deviceconnect/connect`: the device JWT checked as the API checks it, then the WebSocket;
   * refused with 401 (unknown or expired token), 403 `decommissioned`, 503 while the server stops.
   */
  async deviceUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    if (this.stopping) return refuseUpgrade(socket, 'unavailable', 'the server is stopping: reconnect later');
    const sourceIp = request.socket.remoteAddress ?? null;
    const credential = deviceCredentialOf(request.headers.authorization);
    if (!credential)
      return refuseUpgrade(
        socket,
        'unauthorized',
        'a device token is needed: Authorization: Bearer <device JWT>',
      );
    const startedAt = Date.now();
    let principal: DevicePrincipal;
    try {
      principal = await authenticateDevice(this.deps, credential, sourceIp);
    } catch (err) {
      if (
        err instanceof AppError &&
        err.code === 'unauthorized' &&
        (await decommissionedCredential(this.deps, credential))
      )
        return refuseUpgrade(socket, 'forbidden', 'the device was decommissioned: it may not connect again', {
          reason: 'decommissioned',
        });
      throw err;
    }
    if (socket.destroyed) return;
    if (this.stopping) return refuseUpgrade(socket, 'unavailable', 'the server is stopping: reconnect later');
    const ws = await new Promise<WebSocket>((resolve) =>
      this.wss.handleUpgrade(request, socket, head, (ws) => {
        releaseUpgradeSocket(socket);
        resolve(ws);
      }),
    );
    const connection = new MenderConnection(ws, socket, principal, sourceIp, Date.now());
    this.admit(connection);
    const revokedAt = this.revoked.get(principal.uuid);
    if (revokedAt !== undefined && revokedAt >= startedAt) connection.close(CloseReason.revoked);
  }

  private admit(connection: MenderConnection): void {
    const { ws } = connection;
    this.all.add(connection);
    const previous = this.devices.get(connection.deviceId);
    this.devices.set(connection.deviceId, connection);
    this.options.presence.connected(connection);
    previous?.close(CloseReason.superseded);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        connection.close({ ...CloseReason.protocol, reason: 'protocol error: messages are binary msgpack' });
        return;
      }
      try {
        connection.received(data);
      } catch (err) {
        // A device that breaks the protocol is closed with the reason; nothing it sent is used.
        const reason = err instanceof MenderProtocolError ? err.message : 'internal error';
        if (!(err instanceof MenderProtocolError))
          this.deps.log.error({ err }, 'a mender-connect message failed');
        connection.close({ code: CloseReason.protocol.code, reason: reason.slice(0, 120) });
      }
    });
    ws.on('pong', () => {
      connection.lastHeardAt = Date.now();
      connection.pingSentAt = 0;
      this.options.presence.sawDevice(connection.deviceId);
    });
    ws.on('ping', () => {
      connection.lastHeardAt = Date.now();
    });
    // `ws` closes with 1009 itself on an oversized message, and reports it here first.
    ws.on('error', () => {});
    ws.once('close', (code: number, reason: Buffer) => {
      this.all.delete(connection);
      const current = this.devices.get(connection.deviceId) === connection;
      if (current) this.devices.delete(connection.deviceId);
      const end = connection.closedWith ?? { code, reason: reason.toString() || `closed (${code})` };
      connection.ended(end.reason);
      this.options.presence.disconnected(connection, end, current);
    });
  }

  private decommissioned(device: AppEvents['device.decommissioned']): void {
    this.revoked.set(device.uuid, Date.now());
    const connection = this.devices.get(device.deviceId);
    if (!connection || connection.principal.uuid !== device.uuid) return;
    // Gone from the router at once, whatever the device answers to the close.
    this.devices.delete(device.deviceId);
    connection.close(CloseReason.decommissioned);
  }

  private credentialsRevoked(revoked: AppEvents['device.credentials.revoked']): void {
    if (revoked.uuid) this.revoked.set(revoked.uuid, Date.now());
    const connection = this.devices.get(revoked.deviceId);
    if (!connection) return;
    const credential = connection.principal.credential;
    const affected =
      credential.type === 'device_token' ||
      (!revoked.tokensOnly && (revoked.keyId === undefined || revoked.keyId === credential.id));
    if (affected) connection.close(CloseReason.revoked);
  }

  /** The gauge on the server's /metrics: mender-connect devices connected to this instance. */
  registerMetrics(registry: client.Registry): void {
    const hub = this;
    new client.Gauge({
      name: 'fleetgate_mender_connect_links',
      help: 'mender-connect devices connected to this instance (GET /api/devices/v1/deviceconnect/connect)',
      registers: [registry],
      collect() {
        this.set(hub.count);
      },
    });
  }

  /** One timer for every connection: pings those due, closes those silent too long. */
  private sweep(): void {
    const now = Date.now();
    for (const connection of this.all) {
      if (now - connection.lastHeardAt > this.silenceTimeoutMs) {
        connection.close(CloseReason.noAnswer);
        continue;
      }
      if (connection.pingSentAt === 0 && now - connection.lastHeardAt >= this.pingIntervalMs) {
        connection.pingSentAt = now;
        connection.ws.ping();
      } else if (connection.pingSentAt !== 0 && now - connection.pingSentAt >= this.pingIntervalMs) {
        connection.pingSentAt = now;
        connection.ws.ping();
      }
    }
    for (const [uuid, at] of this.revoked) if (now - at > 60_000) this.revoked.delete(uuid);
  }
}
