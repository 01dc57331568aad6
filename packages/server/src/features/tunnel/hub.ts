import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  CloseCode,
  type ConnectionClose,
  HEADER_SIZE,
  type HelloMessage,
  type IncomingControl,
  MAX_FRAME_PAYLOAD,
  type Role,
} from '@fleetgate/protocol';
import client from 'prom-client';
import { WebSocketServer } from 'ws';
import type { DevicePrincipal } from '../../infra/access/index.ts';
import { AppError } from '../../infra/errors/index.ts';
import type { AppEvents } from '../../infra/events/index.ts';
import { refuseUpgrade, releaseUpgradeSocket } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { authenticateDevice, decommissionedCredential, deviceCredentialOf } from '../device-auth/index.ts';
import type { DecommissionedDevice } from '../devices/index.ts';
import type { PresenceConnection, PresenceRecorder } from '../presence/service.ts';
import { type PeerEvents, type PeerSettings, PeerSocket, TunnelPeer } from './peer.ts';

/**
 * The tunnel hub (DESIGN section 6): devices keep one WebSocket to `GET /api/v1/tunnel`, authenticated in the
 * upgrade request; over it the server opens streams to the device's ports and both sides exchange control
 * messages. One live connection per device: a newer one supersedes the older. Decommissioning the device or
 * revoking the credential it connected with closes it at once.
 *
 * The hub's one job is holding the live tunnel peers of this instance: devices' tunnels by device (where the
 * stream router finds a device's link), and the WebSocket peers other features open with `openPeer` (the
 * OpenSSH bastion's), all kept alive by one ping sweep and closed when their credential stops holding or the
 * server stops. Upgrade routing is infra/http's; what travels over a tunnel (streams, variables, state
 * reports) belongs to the features that send it.
 */

export interface TunnelHubOptions {
  presence: PresenceRecorder;
  /** How often each peer is pinged, in milliseconds (±10 % jitter). */
  pingIntervalMs: number;
  /** How long a ping may stay unanswered before the peer is closed, in milliseconds. */
  pingTimeoutMs: number;
  /** The server's software version, announced in hellos. */
  software: string;
}

/** What a device tunnel reports to the hub; the hub's own methods, kept off its public face. */
interface DeviceTunnelOwner {
  deviceHello(tunnel: DeviceTunnel, hello: HelloMessage): void;
  deviceControl(tunnel: DeviceTunnel, message: Exclude<IncomingControl<'server'>, HelloMessage>): void;
  deviceDisconnected(tunnel: DeviceTunnel, close: ConnectionClose): void;
}

/**
 * A device's live tunnel. It receives its peer's events itself (methods on the prototype, not closures made
 * for every connection: the hub holds thousands of idle tunnels).
 */
export class DeviceTunnel implements PresenceConnection, PeerEvents<'server'> {
  agentVersion: string | null;
  /** Set once the peer's hello arrived. */
  ready = false;

  constructor(
    private readonly owner: DeviceTunnelOwner,
    readonly peer: TunnelPeer<'server'>,
    readonly principal: DevicePrincipal,
    readonly remoteAddress: string | null,
    agentVersion: string | null,
    readonly connectedAt: number,
  ) {
    this.agentVersion = agentVersion;
  }

  get deviceId(): number {
    return this.principal.deviceId;
  }

  onHello(hello: HelloMessage): void {
    this.owner.deviceHello(this, hello);
  }

  onControl(message: Exclude<IncomingControl<'server'>, HelloMessage>): void {
    this.owner.deviceControl(this, message);
  }

  onClose(close: ConnectionClose): void {
    this.owner.deviceDisconnected(this, close);
  }
}

/** Revocations remembered this long, in milliseconds, for connections authenticated just before them. */
const REVOCATION_MEMORY_MS = 60_000;

/** The largest WebSocket message a peer may send: one frame of the largest payload. */
export const MAX_MESSAGE = HEADER_SIZE + MAX_FRAME_PAYLOAD;

/**
 * At shutdown, how long the CLOSE frames may take to leave, in milliseconds, before the sockets still open are
 * destroyed. The peers' answers are not waited for: the close code is all an agent needs, and every second the
 * server takes to stop widens the agents' backoff.
 */
const SHUTDOWN_FLUSH_MS = 1_000;

export class TunnelHub implements DeviceTunnelOwner {
  private readonly wss = new WebSocketServer({
    WebSocket: PeerSocket,
    noServer: true,
    perMessageDeflate: false,
    maxPayload: MAX_MESSAGE,
    clientTracking: false,
  });
  private readonly devices = new Map<number, DeviceTunnel>();
  private readonly peers = new Set<TunnelPeer<Role>>();
  /** Device uuid → when its credentials were revoked or it was decommissioned. */
  private readonly revoked = new Map<string, number>();
  private readonly unsubscribe: (() => void)[] = [];
  private sweepTimer: NodeJS.Timeout | undefined;
  private closing = false;
  private closed: Promise<void> | undefined;
  constructor(
    private readonly deps: ServiceDeps,
    private readonly options: TunnelHubOptions,
  ) {}

  /**
   * Starts the liveness sweep, presence writes, and closing tunnels whose credentials stop holding or whose
   * device connected to another instance since. (What a previous run left online is closed before, by
   * features/cluster as the instance registers.)
   */
  async start(): Promise<void> {
    const { pingIntervalMs, pingTimeoutMs } = this.options;
    const period = Math.max(50, Math.min(1000, Math.floor(Math.min(pingIntervalMs, pingTimeoutMs) / 5)));
    this.sweepTimer = setInterval(() => this.sweep(), period).unref();
    this.unsubscribe.push(
      this.deps.events.on('device.decommissioned', (device) => this.decommissioned(device)),
      this.deps.events.on('device.credentials.revoked', (revoked) => this.credentialsRevoked(revoked)),
      this.deps.events.on('tunnel.connected', (connected) => this.connectedElsewhere(connected)),
      this.deps.events.on('write.committed', ({ resourceType }) => {
        if (resourceType === 'cluster') void this.recheckDecommissioned();
      }),
    );
    this.options.presence.start();
  }

  /** The presence recorder the hub writes through: other links of devices (OpenVPN) write through it too. */
  get presence(): PresenceRecorder {
    return this.options.presence;
  }

  /** The device's live tunnel on this instance, if any. */
  tunnelOf(deviceId: number): DeviceTunnel | undefined {
    return this.devices.get(deviceId);
  }

  get deviceCount(): number {
    return this.devices.size;
  }

  get peerCount(): number {
    return this.peers.size;
  }

  get stopping(): boolean {
    return this.closing;
  }

  /**
   * Closes every tunnel with `goingAway` (agents reconnect with backoff) and ends each socket after its CLOSE
   * frames, without waiting for the peers' closing handshakes; destroys what has not flushed within
   * `SHUTDOWN_FLUSH_MS`, and writes the presence that is left. New upgrades get 503 from the first moment.
   */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.closing = true;
      clearInterval(this.sweepTimer);
      for (const stop of this.unsubscribe) stop();
      const peers = [...this.peers];
      // One time for every connection the stop closes: their presence is then written in a few statements.
      this.options.presence.stopping(Date.now());
      for (const peer of peers) peer.close(CloseCode.goingAway, 'the server is shutting down');
      // The CLOSE frames sit in the sockets' write buffers; `end()` queues the FIN behind them, so a socket
      // has finished once the peer's close code is on its way. Its answer is not waited for.
      const flushed = peers.map((peer) => peer.ws.endAfterWrites());
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(flushed),
        new Promise((resolve) => {
          timer = setTimeout(resolve, SHUTDOWN_FLUSH_MS);
        }),
      ]);
      clearTimeout(timer);
      for (const peer of peers) peer.ws.terminate();
      await this.options.presence.stop();
    })();
    return this.closed;
  }

  /**
   * Completes the WebSocket handshake and starts a multiplexer over it (hello sent at once), tracked by the
   * liveness sweep until it closes.
   */
  async openPeer<R extends Role>(
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    options: Omit<PeerSettings<R>, 'software'> & PeerEvents<R>,
  ): Promise<TunnelPeer<R>> {
    const ws = await this.upgrade(request, socket, head);
    return this.admit(new TunnelPeer<R>(ws, this.settings(options), options, this.peers));
  }

  /**
   * Completes the WebSocket handshake. Its own function, so that no closure of the long-lived connection
   * keeps the upgrade request (headers and all) alive.
   */
  private upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<PeerSocket> {
    return new Promise((resolve) =>
      this.wss.handleUpgrade(request, socket, head, (ws) => {
        // ws listens for socket errors from now on.
        releaseUpgradeSocket(socket);
        ws.transport = socket;
        resolve(ws);
      }),
    );
  }

  private settings<R extends Role>(options: Omit<PeerSettings<R>, 'software'>): PeerSettings<R> {
    return { ...options, software: this.options.software };
  }

  /** Starts a new peer's multiplexer (hello sent at once) and its liveness schedule. */
  private admit<R extends Role>(peer: TunnelPeer<R>): TunnelPeer<R> {
    peer.nextPingAt = Date.now() + this.jitteredInterval();
    peer.mux.start();
    if (this.closing) peer.close(CloseCode.goingAway, 'the server is shutting down');
    return peer;
  }

  /**
   * `GET /api/v1/tunnel`: authenticates the device from the upgrade request, completes the WebSocket handshake
   * and holds the tunnel; a newer connection of the same device supersedes the older one.
   */
  async deviceUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    if (this.closing) return refuseUpgrade(socket, 'unavailable', 'the server is stopping: reconnect later');
    const sourceIp = request.socket.remoteAddress ?? null;
    const credential = deviceCredentialOf(request.headers.authorization);
    if (!credential) {
      return refuseUpgrade(
        socket,
        'unauthorized',
        'a device credential is needed: Authorization: Bearer <device token>, or Basic <uuid:device key>',
      );
    }
    const startedAt = Date.now();
    let principal: DevicePrincipal;
    try {
      principal = await authenticateDevice(this.deps, credential, sourceIp);
    } catch (err) {
      if (err instanceof AppError && err.code === 'unauthorized') {
        if (await decommissionedCredential(this.deps, credential)) {
          return refuseUpgrade(
            socket,
            'forbidden',
            'the device was decommissioned: it may not connect again',
            {
              reason: 'decommissioned',
            },
          );
        }
      }
      throw err;
    }
    if (socket.destroyed) return;
    if (this.closing) return refuseUpgrade(socket, 'unavailable', 'the server is stopping: reconnect later');
    const header = request.headers['x-fleetgate-agent'];
    const agentVersion = typeof header === 'string' && header ? header.slice(0, 128) : null;
    const ws = await this.upgrade(request, socket, head);
    // No event can arrive before `listen`: it runs in the same tick as the hello is sent.
    const peer = this.admit(new TunnelPeer<'server'>(ws, this.settings({ role: 'server' }), {}, this.peers));
    if (peer.mux.closed) return; // the server began stopping meanwhile
    peer.deviceId = principal.deviceId;
    const tunnel = new DeviceTunnel(this, peer, principal, sourceIp, agentVersion, Date.now());
    peer.listen(tunnel);
    const previous = this.devices.get(principal.deviceId);
    this.devices.set(principal.deviceId, tunnel);
    this.options.presence.connected(tunnel);
    previous?.peer.close(CloseCode.superseded, 'a newer connection of this device replaced this one');
    this.deps.events.emit('tunnel.connected', {
      deviceId: principal.deviceId,
      instanceId: this.deps.instanceId,
      connectedAt: tunnel.connectedAt,
    });
    // Revoked or decommissioned while this connection was being authenticated.
    const revokedAt = this.revoked.get(principal.uuid);
    if (revokedAt !== undefined && revokedAt >= startedAt) {
      peer.close(CloseCode.unauthorized, 'the device credential was revoked');
    }
  }

  /** @internal A device's hello arrived. */
  deviceHello(tunnel: DeviceTunnel, hello: HelloMessage): void {
    tunnel.ready = true;
    if (tunnel.agentVersion === null && hello.software) tunnel.agentVersion = hello.software.slice(0, 128);
    this.deps.events.emit('tunnel.ready', { deviceId: tunnel.deviceId });
  }

  /** @internal A device sent a control message. */
  deviceControl(tunnel: DeviceTunnel, message: Exclude<IncomingControl<'server'>, HelloMessage>): void {
    const presence = this.options.presence;
    switch (message.type) {
      case 'state-report': {
        const { type: _type, ...report } = message;
        presence.stateReported(tunnel.deviceId, report);
        return;
      }
      case 'variables-applied':
        presence.variablesApplied(tunnel.deviceId, message.revision, message.error);
        return;
      default:
        assertNever(message);
    }
  }

  /** @internal A device's tunnel closed. */
  deviceDisconnected(tunnel: DeviceTunnel, close: ConnectionClose): void {
    const current = this.devices.get(tunnel.deviceId) === tunnel;
    if (current) this.devices.delete(tunnel.deviceId);
    this.options.presence.disconnected(tunnel, close, current);
  }

  private decommissioned(device: DecommissionedDevice): void {
    this.revoked.set(device.uuid, Date.now());
    const tunnel = this.devices.get(device.deviceId);
    if (tunnel && tunnel.principal.uuid === device.uuid) {
      tunnel.peer.close(CloseCode.decommissioned, 'the device was decommissioned');
    }
  }

  /** The device connected to another instance: its tunnel here, older, is gone (its agent moved without a word). */
  private connectedElsewhere(connected: AppEvents['tunnel.connected']): void {
    if (connected.instanceId === this.deps.instanceId) return;
    const tunnel = this.devices.get(connected.deviceId);
    if (tunnel && tunnel.connectedAt <= connected.connectedAt) {
      tunnel.peer.close(
        CloseCode.superseded,
        'a newer connection of this device, to another instance, replaced this one',
      );
    }
  }

  /**
   * Closes the tunnels of devices decommissioned meanwhile: told when this instance may have missed other
   * instances' events (features/cluster, `cluster.resync`).
   */
  private async recheckDecommissioned(): Promise<void> {
    const ids = [...this.devices.keys()];
    for (let i = 0; i < ids.length; i += 500) {
      const gone = await this.deps.db
        .selectFrom('devices')
        .select(['id', 'uuid', 'org_id', 'fleet_id'])
        .where('id', 'in', ids.slice(i, i + 500))
        .where('decommissioned_at', 'is not', null)
        .execute()
        .catch(() => []);
      for (const device of gone)
        this.decommissioned({
          deviceId: device.id,
          uuid: device.uuid,
          orgId: device.org_id,
          fleetId: device.fleet_id,
        });
    }
  }

  /**
   * Closes every device tunnel with `goingAway` (their agents reconnect): this instance was found dead by another
   * one, which closed its devices' presence, so what it holds must be made again.
   */
  dropDeviceTunnels(): void {
    for (const tunnel of [...this.devices.values()]) {
      tunnel.peer.close(CloseCode.goingAway, 'this server instance lost its registration: reconnect');
    }
  }

  private credentialsRevoked(revoked: AppEvents['device.credentials.revoked']): void {
    const tunnel = this.devices.get(revoked.deviceId);
    if (revoked.uuid) this.revoked.set(revoked.uuid, Date.now());
    if (!tunnel) return;
    const credential = tunnel.principal.credential;
    const affected =
      credential.type === 'device_token' ||
      (!revoked.tokensOnly && (revoked.keyId === undefined || revoked.keyId === credential.id));
    if (affected) tunnel.peer.close(CloseCode.unauthorized, 'the device credential was revoked');
  }

  /** One timer for every peer: pings those due, closes those whose ping went unanswered too long. */
  private sweep(): void {
    const now = Date.now();
    const timeout = this.options.pingTimeoutMs;
    for (const peer of this.peers) {
      if (peer.pingSentAt !== 0) {
        if (now - peer.pingSentAt > timeout) {
          peer.close(CloseCode.livenessTimeout, `no answer to a ping within ${timeout} ms`);
        }
        continue;
      }
      if (now < peer.nextPingAt) continue;
      peer.pingSentAt = now;
      peer.mux.ping().then(
        () => this.answered(peer),
        () => {},
      );
    }
    for (const [uuid, at] of this.revoked) if (now - at > REVOCATION_MEMORY_MS) this.revoked.delete(uuid);
  }

  private answered(peer: TunnelPeer<Role>): void {
    peer.pingSentAt = 0;
    peer.nextPingAt = Date.now() + this.jitteredInterval();
    if (peer.deviceId) this.options.presence.sawDevice(peer.deviceId);
  }

  private jitteredInterval(): number {
    return Math.round(this.options.pingIntervalMs * (0.9 + Math.random() * 0.2));
  }

  /** Tunnel gauges on the server's /metrics. */
  registerMetrics(registry: client.Registry): void {
    const hub = this;
    new client.Gauge({
      name: 'fleetgate_tunnels_connected',
      help: 'Device tunnels connected to this instance',
      registers: [registry],
      collect() {
        this.set(hub.deviceCount);
      },
    });
    new client.Gauge({
      name: 'fleetgate_tunnel_peers',
      help: "WebSocket peers speaking the tunnel protocol (devices, and the OpenSSH bastion's connections)",
      registers: [registry],
      collect() {
        this.set(hub.peerCount);
      },
    });
  }
}

function assertNever(value: never): never {
  throw new Error(`unexpected control message: ${JSON.stringify(value)}`);
}
