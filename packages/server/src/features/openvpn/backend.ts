import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { type OpenTarget, StreamError, StreamErrorCode } from '@fleetgate/protocol';
import client from 'prom-client';
import { AppError } from '../../infra/errors/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { authenticateDevice } from '../device-auth/index.ts';
import type { PresenceConnection, PresenceRecorder } from '../presence/service.ts';
import { deviceAwaitingOwnKey, PROVISIONING_KEY_PREFIX } from '../provisioning-keys/service.ts';
import type { DeviceLinks } from '../remote-access/index.ts';
import { ensureVpnCertificates } from './certificates.ts';
import { VpnFrontDoor } from './front-door.ts';
import type { VpnInstance as Instance, InstanceOwner } from './instance.ts';
import { VpnInstance } from './instance.ts';
import type { ClientRequest } from './management.ts';
import { planVpn } from './plan.ts';

/**
 * The OpenVPN backend (DESIGN sections 8 and 13): N supervised OpenVPN server processes (instance.ts) behind one
 * public port (front-door.ts), each asking fleetgate through its management interface whether a client may connect.
 *
 * - **Authentication**: the OpenVPN user name is the device uuid and the password its device API key, checked by
 *   the same function as every other device path (`authenticateDevice`: hashed keys, cache, decommissioned and
 *   revoked refused, limits per source network and uuid). The fleet's provisioning key is accepted for a device
 *   that has no key of its own yet (balenaOS connects with it until its supervisor exchanged keys). A refusal is
 *   answered after `FAILURE_DELAY_MS` on a timer, so one client's wait holds up nobody else.
 * - **Presence without races**: this instance's map of devices to their current VPN connection is the truth. A
 *   new connection of a device supersedes its older one (which is cut); a disconnect counts only when it is the
 *   device's current connection, so the late disconnect of a replaced session never takes a reconnected device
 *   offline (open-balena-vpn#290). Presence is written in batches with the tunnel's (link `vpn`).
 * - **Revocation**: decommissioning a device or revoking its keys cuts its VPN connection at once (`client-kill`).
 * - **Routing**: the stream router reaches a VPN device's ports at its VPN address (`links`).
 */

/** How long a refused client waits for its answer, in milliseconds (open-balena-vpn waits 10 s). */
export const FAILURE_DELAY_MS = 2000;
/** How often connected devices are marked seen, so presence's stale sweep never takes them offline. */
const SEEN_INTERVAL_MS = 20_000;
/** How long opening a TCP connection to a device's port over the VPN may take. */
const CONNECT_TIMEOUT_MS = 10_000;

const UUID = /^[0-9a-fA-F]{32}$/;

/** A device's connection through one OpenVPN instance. */
export class VpnConnection implements PresenceConnection {
  readonly link = 'vpn' as const;
  readonly agentVersion = null;
  vpnAddress = '';

  constructor(
    readonly instance: Instance,
    readonly cid: number,
    readonly deviceId: number,
    readonly uuid: string,
    /** The device key it authenticated with; null for the fleet's provisioning key. */
    readonly keyId: number | null,
    readonly remoteAddress: string | null,
    readonly connectedAt: number,
    /** The device's VPN connections counted from this server's start: a newer one always wins. */
    readonly generation: number,
  ) {}
}

interface Admitted {
  deviceId: number;
  uuid: string;
  keyId: number | null;
  source: string | null;
}

export interface VpnInstanceStatus {
  id: number;
  subnet: string;
  port: number;
  pid: number | null;
  ready: boolean;
  clients: number;
  restarts: number;
}

export interface VpnBackendOptions {
  presence: PresenceRecorder;
}

export class VpnBackend implements InstanceOwner {
  private instances: VpnInstance[] = [];
  private frontDoor: VpnFrontDoor | undefined;
  private runDir: string | undefined;
  /** Per instance: clients let in whose connection is not established yet, and established ones, by cid. */
  private readonly admitted = new Map<Instance, Map<number, Admitted>>();
  private readonly clients = new Map<Instance, Map<number, VpnConnection>>();
  /** Each device's current VPN connection. */
  private readonly devices = new Map<number, VpnConnection>();
  private readonly generations = new Map<number, number>();
  private readonly unsubscribe: (() => void)[] = [];
  private seenTimer: NodeJS.Timeout | undefined;
  private publicPort = 0;
  private readonly decisions: client.Counter<'outcome'>;
  private readonly decisionSeconds: client.Histogram<'outcome'>;
  private readonly metrics: client.Metric[] = [];

  constructor(
    private readonly deps: ServiceDeps,
    private readonly options: VpnBackendOptions,
  ) {
    this.decisions = new client.Counter({
      name: 'fleetgate_vpn_auth_total',
      help: 'OpenVPN clients asking in, by outcome (allowed, refused, limited)',
      labelNames: ['outcome'] as const,
      registers: [],
    });
    this.decisionSeconds = new client.Histogram({
      name: 'fleetgate_vpn_auth_seconds',
      help: 'Time to decide whether an OpenVPN client may connect (refusals without their deliberate delay)',
      labelNames: ['outcome'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [],
    });
    const devices = this.devices;
    const instances = () => this.instances;
    const clients = new client.Gauge({
      name: 'fleetgate_vpn_clients',
      help: 'Devices connected through OpenVPN to this server',
      registers: [],
      collect() {
        this.set(devices.size);
      },
    });
    const ready = new client.Gauge({
      name: 'fleetgate_vpn_instances_ready',
      help: 'OpenVPN instances running and taking clients',
      registers: [],
      collect() {
        this.set(instances().filter((i) => i.ready).length);
      },
    });
    this.metrics.push(this.decisions, this.decisionSeconds, clients, ready);
  }

  /** The public VPN port, once started (the configured one, or the one picked for port 0). */
  get port(): number {
    return this.publicPort;
  }

  /** Plans the instances, makes the certificates, starts every instance, then opens the public port. */
  async start(): Promise<void> {
    const { config, log } = this.deps;
    checkOpenvpn(config.vpnOpenvpn);
    const plans = planVpn({
      baseSubnet: config.vpnBaseSubnet,
      instanceBitmask: config.vpnInstanceSubnetBitmask,
      instances: config.vpnInstances ?? os.availableParallelism(),
      gateway: config.vpnGateway,
      basePort: config.vpnBasePort,
    });
    const certificates = await ensureVpnCertificates(config.dataDir);
    // Unix socket paths are short (108 bytes): a private folder under the system's temporary directory.
    this.runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-vpn-'));
    this.instances = plans.map(
      (plan) =>
        new VpnInstance(
          plan,
          {
            openvpn: config.vpnOpenvpn,
            runDir: this.runDir!,
            caFile: certificates.caFile,
            certFile: certificates.certFile,
            keyFile: certificates.keyFile,
            log,
          },
          this,
        ),
    );
    for (const instance of this.instances) {
      this.admitted.set(instance, new Map());
      this.clients.set(instance, new Map());
    }
    try {
      await Promise.all(this.instances.map((instance) => instance.start()));
    } catch (err) {
      // One instance that cannot start fails the start: none is left running behind it.
      await Promise.all(this.instances.map((instance) => instance.stop()));
      fs.rmSync(this.runDir, { recursive: true, force: true });
      throw err;
    }
    this.unsubscribe.push(
      this.deps.events.on('device.decommissioned', ({ deviceId }) =>
        this.cut(deviceId, 'HALT', 'decommissioned'),
      ),
      this.deps.events.on('device.credentials.revoked', ({ deviceId, keyId, tokensOnly }) => {
        const connection = this.devices.get(deviceId);
        if (!connection || tokensOnly) return;
        if (keyId === undefined || connection.keyId === null || connection.keyId === keyId) {
          this.cut(deviceId, 'RESTART', 'its credentials were revoked');
        }
      }),
    );
    this.seenTimer = setInterval(() => {
      for (const deviceId of this.devices.keys()) this.options.presence.sawDevice(deviceId);
    }, SEEN_INTERVAL_MS).unref();
    this.frontDoor = new VpnFrontDoor(
      () => this.instances.map((i) => ({ id: i.id, port: i.plan.port, ready: i.ready })),
      log,
    );
    // Shared with the HTTP port: `fleetgate serve` opens it (`shareHttpPort`) once the HTTP listener runs.
    if (sharesHttpPort(config)) return;
    try {
      this.publicPort = await this.frontDoor.listen(config.vpnPort, config.listen);
    } catch (err) {
      // Named for `fleetgate serve`'s ListenError: which port, which setting moves it.
      await Promise.all(this.instances.map((instance) => instance.stop()));
      throw Object.assign(err as Error, { listener: 'vpnPort' });
    }
    log.info(
      { port: this.publicPort, instances: plans.length, subnet: config.vpnBaseSubnet },
      `OpenVPN: ${plans.length} instance(s) ready for devices on port ${this.publicPort}`,
    );
  }

  /** Closes the public port, stops every instance; their devices go offline through the VPN. */
  async stop(): Promise<void> {
    clearInterval(this.seenTimer);
    for (const stop of this.unsubscribe.splice(0)) stop();
    await this.frontDoor?.close();
    for (const connection of [...this.devices.values()]) this.end(connection, 'the server stopped');
    await Promise.all(this.instances.map((instance) => instance.stop()));
    if (this.runDir) fs.rmSync(this.runDir, { recursive: true, force: true });
    // The tunnel hub, which stops first, wrote its last batch already: these disconnects need one of their own.
    await this.options.presence.flush();
  }

  /**
   * Opens the shared port (`FLEETGATE_VPN_PORT` = `FLEETGATE_HTTP_PORT`): TLS and HTTP connections go on to
   * `server`, which listens on 127.0.0.1:`internalPort`, and get the person's address back on their socket (the
   * `secureConnection` one for HTTPS), so that `request.ip` and everything that counts by it see it.
   */
  async shareHttpPort(server: net.Server, internalPort: number, tls: boolean): Promise<number> {
    const frontDoor = this.frontDoor;
    if (!frontDoor) throw new Error('the OpenVPN backend has not started');
    frontDoor.shareWithHttp(internalPort);
    server.prependListener(tls ? 'secureConnection' : 'connection', (socket: net.Socket) => {
      if (socket.remoteAddress !== '127.0.0.1' || socket.remotePort === undefined) return;
      const port = socket.remotePort;
      // Read when asked (a plain connection may be accepted before the pipe's own connect callback ran), then kept.
      let source: string | undefined;
      Object.defineProperty(socket, 'remoteAddress', {
        configurable: true,
        get: () => {
          source ??= frontDoor.sourceOf(port);
          return source ?? '127.0.0.1';
        },
      });
    });
    try {
      this.publicPort = await frontDoor.listen(this.deps.config.httpPort, this.deps.config.listen);
    } catch (err) {
      throw Object.assign(err as Error, { listener: 'httpPort' });
    }
    this.deps.log.info(
      { port: this.publicPort },
      `OpenVPN and HTTP${tls ? 'S' : ''} share port ${this.publicPort}, told apart by their first byte`,
    );
    return this.publicPort;
  }

  /** The device's current VPN connection on this server, if any. */
  connectionOf(deviceId: number): VpnConnection | undefined {
    return this.devices.get(deviceId);
  }

  status(): VpnInstanceStatus[] {
    return this.instances.map((instance) => ({
      id: instance.id,
      subnet: instance.plan.subnet,
      port: instance.plan.port,
      pid: instance.pid ?? null,
      ready: instance.ready,
      clients: this.clients.get(instance)?.size ?? 0,
      restarts: instance.restarts,
    }));
  }

  registerMetrics(registry: client.Registry): void {
    for (const metric of this.metrics) registry.registerMetric(metric);
  }

  /** Devices' VPN connections as links for the stream router: a TCP connection to the device's VPN address. */
  links(): DeviceLinks {
    return {
      linkOf: (device) => {
        const connection = this.devices.get(device.id);
        if (!connection || connection.uuid !== device.uuid || !connection.vpnAddress) return undefined;
        return { open: (target) => openOverVpn(connection.vpnAddress, target) };
      },
    };
  }

  // ── What the instances tell ────────────────────────────────────────────────────────────────────────────

  request(instance: Instance, request: ClientRequest): void {
    void this.decide(instance, request);
  }

  established(instance: Instance, cid: number, env: Map<string, string>): void {
    const admitted = this.admitted.get(instance)?.get(cid);
    this.admitted.get(instance)?.delete(cid);
    if (!admitted) {
      // Not a client this server let in (it cannot happen while fleetgate answers every request): out.
      instance.kill(cid, 'RESTART');
      return;
    }
    const generation = (this.generations.get(admitted.deviceId) ?? 0) + 1;
    this.generations.set(admitted.deviceId, generation);
    const connection = new VpnConnection(
      instance,
      cid,
      admitted.deviceId,
      admitted.uuid,
      admitted.keyId,
      admitted.source,
      Date.now(),
      generation,
    );
    connection.vpnAddress = env.get('ifconfig_pool_remote_ip') ?? '';
    const previous = this.devices.get(admitted.deviceId);
    if (previous) {
      // The device connected again before its old session ended (a reconnect, another instance): the newer wins.
      this.forget(previous);
      previous.instance.kill(previous.cid, 'RESTART');
      this.options.presence.disconnected(
        previous,
        { code: 0, reason: 'superseded by a newer VPN connection' },
        false,
      );
    }
    this.clients.get(instance)?.set(cid, connection);
    this.devices.set(admitted.deviceId, connection);
    this.options.presence.connected(connection);
  }

  disconnected(instance: Instance, cid: number, env: Map<string, string>): void {
    this.admitted.get(instance)?.delete(cid);
    const connection = this.clients.get(instance)?.get(cid);
    // A connection superseded or cut already was told to presence then: its late disconnect changes nothing.
    if (!connection) return;
    const sent = Number(env.get('bytes_sent') ?? 0);
    const received = Number(env.get('bytes_received') ?? 0);
    this.end(connection, `the VPN client disconnected (${received} bytes in, ${sent} out)`);
  }

  lost(instance: Instance, why: string): void {
    this.admitted.get(instance)?.clear();
    for (const connection of [...(this.clients.get(instance)?.values() ?? [])]) {
      this.end(connection, `its OpenVPN instance ${why}`);
    }
  }

  private async decide(instance: Instance, request: ClientRequest): Promise<void> {
    const started = process.hrtime.bigint();
    const username = request.env.get('username') ?? '';
    const password = request.env.get('password') ?? '';
    const untrustedPort = Number(request.env.get('untrusted_port'));
    const untrustedIp = request.env.get('untrusted_ip') ?? null;
    const source = this.frontDoor?.sourceOf(untrustedPort) ?? untrustedIp;
    const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
    let outcome: 'allowed' | 'refused' | 'limited' = 'refused';
    let reason = 'unknown device or key';
    try {
      if (!UUID.test(username) || password.length < 16 || password.length > 512) throw new Error('malformed');
      const uuid = username.toLowerCase();
      let admitted: Admitted | undefined;
      if (password.startsWith(PROVISIONING_KEY_PREFIX)) {
        const device = await deviceAwaitingOwnKey(this.deps, uuid, password);
        if (device) admitted = { deviceId: device.id, uuid: device.uuid, keyId: null, source };
      } else {
        const principal = await authenticateDevice(this.deps, { type: 'key', uuid, key: password }, source);
        const keyId = principal.credential.type === 'device_key' ? principal.credential.id : null;
        admitted = { deviceId: principal.deviceId, uuid: principal.uuid, keyId, source };
      }
      if (admitted) {
        this.admitted.get(instance)?.set(request.cid, admitted);
        outcome = 'allowed';
        instance.allow(request.cid, request.kid);
        return;
      }
    } catch (err) {
      if (err instanceof AppError && err.code === 'rate_limited') {
        outcome = 'limited';
        reason = 'too many refused attempts from your network: try again later';
      } else if (!(err instanceof AppError) && !(err instanceof Error && err.message === 'malformed')) {
        this.deps.log.error({ err }, 'OpenVPN authentication failed');
        reason = 'the server could not check the credentials';
      }
    } finally {
      this.decisions.inc({ outcome });
      this.decisionSeconds.observe({ outcome }, elapsed());
    }
    this.deps.log.info(
      { uuid: UUID.test(username) ? username.toLowerCase() : undefined, source, outcome },
      'OpenVPN client refused',
    );
    setTimeout(() => instance.deny(request.cid, request.kid, reason), FAILURE_DELAY_MS).unref();
  }

  /** Cuts a device's VPN connection at once (decommissioned, credentials revoked). */
  private cut(deviceId: number, message: 'HALT' | 'RESTART', why: string): void {
    const connection = this.devices.get(deviceId);
    if (!connection) return;
    connection.instance.kill(connection.cid, message);
    this.end(connection, `cut by the server: the device was ${why}`);
  }

  private end(connection: VpnConnection, reason: string): void {
    const current = this.devices.get(connection.deviceId) === connection;
    this.forget(connection);
    this.options.presence.disconnected(connection, { code: 0, reason }, current);
  }

  private forget(connection: VpnConnection): void {
    this.clients.get(connection.instance)?.delete(connection.cid);
    if (this.devices.get(connection.deviceId) === connection) this.devices.delete(connection.deviceId);
  }
}

/** `FLEETGATE_VPN_PORT` = `FLEETGATE_HTTP_PORT` (not 0): devices' OpenVPN and people's HTTPS on one port. */
export function sharesHttpPort(config: { vpn: boolean; vpnPort: number; httpPort: number }): boolean {
  return config.vpn && config.vpnPort === config.httpPort && config.httpPort !== 0;
}

/** Says what to install when the OpenVPN program is missing, before anything starts. */
function checkOpenvpn(program: string): void {
  try {
    execFileSync(program, ['--version'], { stdio: 'ignore', timeout: 10_000 });
  } catch (err) {
    // `openvpn --version` exits with 1 after printing its version: only a missing program is a problem.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(
        `FLEETGATE_VPN is on but ${program} was not found: install OpenVPN 2.6 (apt-get install openvpn) ` +
          'or set FLEETGATE_VPN_OPENVPN to its path',
      );
    }
  }
}

/** A TCP connection to `address`:`port` over the VPN, as a stream the router relays. */
function openOverVpn(address: string, target: OpenTarget): Promise<Duplex> {
  if (!('port' in target) || target.host !== undefined) {
    return Promise.reject(
      new StreamError(
        StreamErrorCode.notAllowed,
        'the device is reached over OpenVPN, without fleetgate-agent: only its TCP ports can be opened',
      ),
    );
  }
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: address, port: target.port, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new StreamError(StreamErrorCode.timeout, `port ${target.port} did not answer over the VPN`));
    }, CONNECT_TIMEOUT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new StreamError(
          err.code === 'ECONNREFUSED' ? StreamErrorCode.refused : StreamErrorCode.unreachable,
          err.code === 'ECONNREFUSED'
            ? `the device refused port ${target.port}`
            : `the device is unreachable: ${err.message}`,
        ),
      );
    });
  });
}
