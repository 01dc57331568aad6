import net, { type AddressInfo, type Socket } from 'node:net';
import ssh2, {
  type Accept,
  type ClientInfo,
  type Connection,
  type PtyInfo,
  type Reject,
  type ServerChannel,
  type Session,
  type TcpipInfo,
} from 'ssh2';
import { AppError } from '../../infra/errors/index.ts';
import { sourceKeyOf } from '../../infra/rate-limit/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { AuthService } from '../auth/index.ts';
import type { DeviceCommand, StreamCaller, StreamRouter, StreamSession } from '../remote-access/index.ts';
import { recordsSessions, SessionRecorder } from '../sessions/index.ts';
import { ExecChannel } from './exec-channel.ts';
import { loadHostKeys } from './host-keys.ts';
import { type SignInState, SshSignIn } from './sign-in.ts';
import { WaitingConnections } from './waiting.ts';
import { WIDE_WINDOWS_PER_USER, widenReceiveWindow } from './window.ts';

/**
 * The SSH gateway (DESIGN section 7): people reach their devices with plain OpenSSH.
 *
 * - `ssh -J <login>@gw:2222 root@<device>`: a `direct-tcpip` channel → the stream router (person, device, port) →
 *   the device's own sshd (or another allowed port), end to end.
 * - `ssh -p 2222 <login>+<device>@gw [command]`: session channels run a shell (with a pty) or the command on the
 *   device through the agent's exec service; the `sftp` subsystem runs the device's sftp-server, so `scp` and
 *   `sftp` work. Exit status and signals come back; shells are recorded when the organization asks.
 *
 * People sign in with their registered SSH public keys, or with one of their API keys as the password (for
 * scripts): see sign-in.ts. Both build the same user principal as the HTTP API, so the router's authorization
 * applies unchanged. See targets.ts for how logins and devices are named.
 */

export interface SshGatewayOptions {
  /** Most channels (sessions and forwardings) open at once on one connection. Default 16. */
  maxChannelsPerConnection?: number;
  /** Most channels open at once for one person, over all their connections. Default 64. */
  maxChannelsPerUser?: number;
  /** Time a connection has to sign in, from the moment it is accepted, in milliseconds. Default 30 000. */
  authTimeoutMs?: number;
  /** Most connections not yet authenticated, from one source address (or IPv6 /64). Default 16. */
  maxUnauthenticatedPerSource?: number;
  /** Most connections not yet authenticated, in all. Default 256. */
  maxUnauthenticated?: number;
}

/** SSH_MSG_CHANNEL_OPEN_FAILURE reason codes (RFC 4254 section 5.1). */
const OpenFailure = { prohibited: 1, connectFailed: 2, resourceShortage: 4 } as const;

/** Environment variables a client may pass to a command (`SendEnv`), as sshd's usual `AcceptEnv`. */
const ACCEPTED_ENV = /^(LANG|LC_[A-Z]+|TZ|COLORTERM)$/;
const MAX_ENV = 16;

/** The part of the process's connection budget (infra/net) the gateway may hold. */
const BUDGET_SHARE = 0.25;

/** One SSH connection's state. */
interface GatewayConnection extends SignInState {
  client: Connection;
  channels: number;
}

export class SshGateway {
  /** The TCP listener: it counts connections from accept, then hands them to ssh2's server. */
  private listener: net.Server | undefined;
  private boundPort: number | undefined;
  private readonly connections = new Set<GatewayConnection>();
  private readonly waiting: WaitingConnections;
  /** Accepted sockets still waiting to sign in, by `address|port`, until ssh2 makes them a connection. */
  private readonly signedInBy = new Map<string, () => void>();
  /** Sockets accepted and not closed yet, signed in or not (closed with the gateway). */
  private readonly accepted = new Set<Socket>();
  private lastShedLog = 0;
  private readonly userChannels = new Map<number, number>();
  /** User id → their forwarding channels open with a wide window (window.ts). */
  private readonly userWideWindows = new Map<number, number>();
  private readonly signIn: SshSignIn;
  private readonly limits: Required<SshGatewayOptions>;

  constructor(
    private readonly deps: ServiceDeps,
    private readonly router: StreamRouter,
    auth: AuthService,
    options: SshGatewayOptions = {},
  ) {
    this.limits = {
      maxChannelsPerConnection: options.maxChannelsPerConnection ?? 16,
      maxChannelsPerUser: options.maxChannelsPerUser ?? 64,
      authTimeoutMs: options.authTimeoutMs ?? 30_000,
      maxUnauthenticatedPerSource: options.maxUnauthenticatedPerSource ?? 16,
      maxUnauthenticated: options.maxUnauthenticated ?? 256,
    };
    this.signIn = new SshSignIn(deps, auth);
    this.waiting = new WaitingConnections(
      {
        perSource: this.limits.maxUnauthenticatedPerSource,
        // Half the gateway's connections at most, so that people who signed in always keep the other half.
        total: Math.max(
          1,
          Math.min(this.limits.maxUnauthenticated, Math.floor(deps.sockets.capOf(BUDGET_SHARE) / 2)),
        ),
        graceMs: this.limits.authTimeoutMs,
      },
      (reason, source) => this.logShed(reason, source),
    );
  }

  /** The port the gateway listens on, once `listen` resolved. */
  get port(): number | undefined {
    return this.boundPort;
  }

  /** Loads (or creates) the host keys and listens; resolves with the bound port. */
  async listen(host: string, port: number): Promise<number> {
    const { privateKeys } = loadHostKeys(this.deps.config.dataDir);
    const ssh = new ssh2.Server({ hostKeys: privateKeys, ident: 'fleetgate' }, (client, info) =>
      this.onConnection(client, info),
    );
    const listener = net.createServer((socket) => this.onSocket(ssh, socket));
    this.deps.sockets.guard('SSH gateway', listener, BUDGET_SHARE);
    this.listener = listener;
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(port, host, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    listener.on('error', (err: Error) => this.deps.log.error({ err }, 'SSH gateway listener error'));
    this.boundPort = (listener.address() as AddressInfo).port;
    return this.boundPort;
  }

  /** Stops listening and closes every connection (their streams reset; the agents hang up on shells). */
  async close(): Promise<void> {
    const listener = this.listener;
    if (!listener) return;
    this.listener = undefined;
    const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
    for (const connection of this.connections) connection.client.end();
    for (const socket of this.accepted) socket.destroy();
    await closed;
  }

  /**
   * A TCP connection, before it has sent a byte: it counts as waiting to sign in from now on, with the sign-in
   * deadline running, and only then does ssh2 read its identification line.
   */
  private onSocket(ssh: InstanceType<typeof ssh2.Server>, socket: Socket): void {
    socket.on('error', (err: Error) => this.deps.log.debug({ err }, 'SSH socket error'));
    // A keystroke's echo goes out at once, not after the ACK of the previous packet (Nagle's algorithm held
    // every other echo for the peer's delayed ACK, ~40 ms: bench/terminal). sshd does the same for sessions.
    socket.setNoDelay(true);
    const signedIn = this.waiting.admit(socket, sourceKeyOf(socket.remoteAddress));
    if (!signedIn) return;
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    this.accepted.add(socket);
    this.signedInBy.set(key, signedIn);
    socket.once('close', () => {
      this.accepted.delete(socket);
      if (this.signedInBy.get(key) === signedIn) this.signedInBy.delete(key);
    });
    ssh.injectSocket(socket);
  }

  /** Says why connections are shed, once a minute at most (a flood would otherwise fill the log). */
  private logShed(reason: 'source full' | 'all full' | 'pushed out', source: string): void {
    const now = Date.now();
    if (now - this.lastShedLog < 60_000) return;
    this.lastShedLog = now;
    this.deps.log.warn(
      { reason, source, waiting: this.waiting.size },
      reason === 'source full'
        ? `SSH gateway: closing connections from ${source}: it holds ${this.limits.maxUnauthenticatedPerSource} that have not signed in`
        : `SSH gateway: ${this.limits.maxUnauthenticated} connections are waiting to sign in: ${reason === 'all full' ? 'refusing new ones' : "closing the oldest of the busiest source's"}`,
    );
  }

  /** ssh2 read the client's identification line: the connection was counted when its socket was accepted. */
  private onConnection(client: Connection, info: ClientInfo): void {
    const sourceIp = info.ip ?? null;
    const source = sourceKeyOf(sourceIp);
    const connection: GatewayConnection = {
      client,
      end: () => client.end(),
      sourceIp,
      source,
      user: undefined,
      attemptedLogin: undefined,
      failureCounted: false,
      channels: 0,
    };
    // Registered first: a client that breaks the protocol must never become an unhandled error.
    client.on('error', (err: Error) => this.deps.log.debug({ err, source }, 'SSH connection error'));
    const key = `${info.ip}|${info.port}`;
    const signedIn = this.signedInBy.get(key);
    this.signedInBy.delete(key);
    if (!signedIn) {
      client.end();
      return;
    }
    this.connections.add(connection);

    client.on('authentication', (context) => {
      this.signIn.authenticate(connection, context).catch((err: unknown) => {
        this.deps.log.error({ err }, 'SSH authentication failed with an error');
        context.reject();
      });
    });
    client.on('ready', signedIn);
    client.on('session', (accept, reject) => this.onSession(connection, accept, reject));
    client.on('tcpip', (accept, reject, target) => {
      this.onForward(connection, accept, reject, target).catch((err: unknown) => {
        this.deps.log.error({ err }, 'SSH forwarding failed with an error');
      });
    });
    client.on('close', () => {
      this.connections.delete(connection);
      this.signIn.closed(connection);
    });
  }

  /**
   * The person on a connection, for the stream router: as they signed in; the router reads their rights again
   * for every channel, so a removed membership or SSH key stops new channels on a connection that stays open.
   */
  private callerOf(connection: GatewayConnection): StreamCaller {
    const user = connection.user;
    if (!user) throw new AppError('unauthorized', 'sign in first');
    return { actor: { principal: user.principal, sourceIp: connection.sourceIp } };
  }

  // --- Channels --------------------------------------------------------------------------------------

  /** Counts a channel against the limits; answers a release function, or a reason to refuse. */
  private takeChannel(connection: GatewayConnection): (() => void) | string {
    const userId = connection.user?.principal.userId;
    if (userId === undefined) return 'sign in first';
    if (connection.channels >= this.limits.maxChannelsPerConnection) {
      return `too many channels on this connection (at most ${this.limits.maxChannelsPerConnection})`;
    }
    const mine = this.userChannels.get(userId) ?? 0;
    if (mine >= this.limits.maxChannelsPerUser) {
      return `too many open channels for your account (at most ${this.limits.maxChannelsPerUser})`;
    }
    connection.channels += 1;
    this.userChannels.set(userId, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      connection.channels -= 1;
      const left = (this.userChannels.get(userId) ?? 1) - 1;
      if (left <= 0) this.userChannels.delete(userId);
      else this.userChannels.set(userId, left);
    };
  }

  /** A wide receive window on a forwarding channel, while the person holds fewer than `WIDE_WINDOWS_PER_USER`. */
  private widenWindow(connection: GatewayConnection, channel: ServerChannel): void {
    const userId = connection.user?.principal.userId;
    if (userId === undefined) return;
    const wide = this.userWideWindows.get(userId) ?? 0;
    if (wide >= WIDE_WINDOWS_PER_USER) return;
    this.userWideWindows.set(userId, wide + 1);
    widenReceiveWindow(channel);
    channel.once('close', () => {
      const left = (this.userWideWindows.get(userId) ?? 1) - 1;
      if (left <= 0) this.userWideWindows.delete(userId);
      else this.userWideWindows.set(userId, left);
    });
  }

  /** `ssh -J`: a TCP port on a device. */
  private async onForward(
    connection: GatewayConnection,
    accept: Accept<ServerChannel>,
    reject: Reject,
    target: TcpipInfo,
  ): Promise<void> {
    const release = this.takeChannel(connection);
    if (typeof release === 'string') {
      rejectChannel(connection.client, reject, OpenFailure.resourceShortage, release);
      return;
    }
    let session: StreamSession;
    try {
      session = await this.router.open({
        caller: this.callerOf(connection),
        device: { typed: target.destIP },
        target: target.destPort,
        surface: 'ssh',
      });
    } catch (err) {
      release();
      const { message, code } = this.refusalOf(err);
      rejectChannel(connection.client, reject, code, message);
      return;
    }
    const channel = accept();
    channel.on('close', release);
    // The reader (the relay's pipe) is attached in this same tick, before the data flows.
    this.widenWindow(connection, channel);
    await session.relay(channel).catch((err: unknown) => {
      this.deps.log.debug({ err }, 'an SSH forwarding ended with an error');
    });
  }

  /** `ssh login+device@gw [command]`, `scp`, `sftp`: a session channel. */
  private onSession(connection: GatewayConnection, accept: Accept<Session>, reject: Reject): void {
    const release = this.takeChannel(connection);
    if (typeof release === 'string') {
      rejectChannel(connection.client, reject, OpenFailure.resourceShortage, release);
      return;
    }
    const session = accept();
    session.on('close', release);
    let pty: PtyInfo | undefined;
    const env: Record<string, string> = {};
    let running: ExecChannel | undefined;
    session.on('pty', (acceptRequest, _reject, info) => {
      pty = info;
      acceptRequest?.();
    });
    session.on('window-change', (acceptRequest, _reject, info) => {
      if (pty) pty = { ...pty, cols: info.cols, rows: info.rows };
      if (info.cols > 0 && info.rows > 0) running?.send({ type: 'resize', cols: info.cols, rows: info.rows });
      acceptRequest?.();
    });
    session.on('env', (acceptRequest, rejectRequest, { key, val }) => {
      if (ACCEPTED_ENV.test(key) && Object.keys(env).length < MAX_ENV && val.length <= 1024) {
        env[key] = val;
        acceptRequest?.();
      } else rejectRequest?.();
    });
    session.on('signal', (acceptRequest, rejectRequest, { name }) => {
      if (!running || !/^[A-Z][A-Z0-9]{0,15}$/.test(name)) {
        rejectRequest?.();
        return;
      }
      running.send({ type: 'signal', name });
      acceptRequest?.();
    });
    const start = (acceptChannel: Accept<ServerChannel>, command: string | undefined, sftp = false) => {
      if (running) return;
      const channel = acceptChannel();
      const size = pty && { term: pty.term || 'xterm', cols: pty.cols || 80, rows: pty.rows || 24 };
      const target: DeviceCommand = sftp
        ? { service: 'sftp' }
        : {
            exec: {
              ...(command === undefined ? {} : { command }),
              ...(size ? { pty: size } : {}),
              ...(Object.keys(env).length ? { env } : {}),
            },
          };
      running = new ExecChannel(channel);
      this.runCommand(connection, channel, running, target, size && command === undefined ? size : undefined);
    };
    session.on('shell', (acceptChannel) => start(acceptChannel, undefined));
    session.on('exec', (acceptChannel, _reject, { command }) => start(acceptChannel, command));
    session.on('subsystem', (acceptChannel, rejectChannelRequest, { name }) => {
      if (name === 'sftp') start(acceptChannel, undefined, true);
      else rejectChannelRequest();
    });
  }

  private async runCommand(
    connection: GatewayConnection,
    channel: ServerChannel,
    execChannel: ExecChannel,
    target: DeviceCommand,
    shell: { term: string; cols: number; rows: number } | undefined,
  ): Promise<void> {
    const user = connection.user;
    const fail = (message: string) => {
      channel.stderr.write(`fleetgate: ${message}\r\n`);
      channel.exit(255);
      channel.end();
      execChannel.destroy();
    };
    if (!user?.device) {
      fail(
        `name a device to run commands on: ssh -p ${this.boundPort ?? 2222} ${user?.login ?? '<login>'}+<device>@<this server> [command]` +
          ` (or reach its sshd: ssh -J ${user?.login ?? '<login>'}@<this server>:${this.boundPort ?? 2222} root@<device>)`,
      );
      return;
    }
    try {
      const caller = this.callerOf(connection);
      const session = await this.router.open({
        caller,
        device: { typed: user.device },
        target,
        surface: 'ssh',
      });
      if (shell && (await recordsSessions(this.deps, session.device.orgId))) {
        execChannel.record(
          SessionRecorder.begin(this.deps, caller.actor, {
            sessionId: session.id,
            orgId: session.device.orgId,
            deviceUuid: session.device.uuid,
            cols: shell.cols,
            rows: shell.rows,
            term: shell.term,
            title: `${user.login} on ${session.device.name}`,
          }),
        );
      }
      await session.relay(execChannel).catch((err: unknown) => {
        this.deps.log.debug({ err }, 'an SSH session ended with an error');
      });
    } catch (err) {
      fail(this.refusalOf(err).message);
    }
  }

  /** What a person is told when a channel cannot be opened; internal errors are logged, never shown. */
  private refusalOf(err: unknown): { message: string; code: number } {
    if (err instanceof AppError) {
      switch (err.code) {
        case 'unavailable':
          return { message: err.message, code: OpenFailure.connectFailed };
        case 'not_found':
        case 'forbidden':
        case 'conflict':
        case 'unauthorized':
        case 'bad_request':
          return { message: err.message, code: OpenFailure.prohibited };
        default:
          break;
      }
    }
    this.deps.log.error({ err }, 'opening an SSH channel failed');
    return { message: 'internal error: try again later', code: OpenFailure.connectFailed };
  }
}

/**
 * Refuses a channel open with a description the person sees (OpenSSH prints "channel 0: open failed:
 * administratively prohibited: <description>"). ssh2's `reject()` always sends an empty description and its own
 * reason code, so its protocol's `channelOpenFail` is swapped for this one synchronous call.
 */
function rejectChannel(client: Connection, reject: Reject, code: number, description: string): void {
  type Protocol = { channelOpenFail?: (recipient: number, reason: number, description: string) => void };
  const protocol = (client as unknown as { _protocol?: Protocol })._protocol;
  const original = protocol?.channelOpenFail;
  if (!protocol || typeof original !== 'function') {
    reject();
    return;
  }
  protocol.channelOpenFail = (recipient: number) =>
    original.call(protocol, recipient, code, description.slice(0, 512));
  try {
    reject();
  } finally {
    delete protocol.channelOpenFail;
    if (protocol.channelOpenFail !== original) protocol.channelOpenFail = original;
  }
}
