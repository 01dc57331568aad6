import http, {
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type Duplex, duplexPair } from 'node:stream';
import { StreamErrorCode } from '@fleetgate/protocol';
import type { Actor, UserPrincipal } from '../../infra/access/index.ts';
import { AppError } from '../../infra/errors/index.ts';
import {
  type GuessThrottle,
  personGuessLimits,
  sharedGuessThrottle,
  sourceKeyOf,
} from '../../infra/rate-limit/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { AuthService } from '../auth/index.ts';
import type { FoundDevice, StreamRouter, StreamSession } from '../remote-access/index.ts';
import {
  type ProxyTarget,
  parseAbsoluteUrl,
  parseConnectAuthority,
  proxyCredentialsOf,
  TargetError,
} from './target.ts';

/**
 * The HTTP CONNECT proxy to devices (DESIGN section 7, issue 5 item 4), a plain `node:http` server beside the
 * API: `CONNECT <device>.<suffix>:<port>` with `Proxy-Authorization: Basic base64(<e-mail>:<API key>)` goes
 * through the stream router (the same as `fleetgate tunnel` and the SSH gateway) and becomes a raw stream;
 * absolute-form requests (`GET http://<device>.devices:8080/path`) are forwarded to the device port (80 by
 * default) with `Connection: close`, so `curl -x` and browsers reach device web pages. `<device>` is a name, a
 * uuid or a uuid prefix (target.ts), resolved among the person's devices as the SSH gateway resolves it.
 *
 * Answers: 407 (with `Proxy-Authenticate`) for missing or wrong credentials and for devices the person cannot
 * see (another organization's answer the same as unknown ones, names included); 409 when a name or prefix
 * matches several of the person's devices; 403 when the person sees the device but may not reach that port
 * (port allow-list) or their role may not connect (viewers); 503 when the device is offline;
 * 502 when the device refuses or cannot reach the port; 400 for malformed requests; 431 for headers over 16 KiB;
 * 408 when the headers do not arrive within the header timeout (slowloris); 429 past the per-source
 * connection limit, the per-person session limit or the failed-authentication limit.
 */

export interface ConnectProxyOptions {
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Host name suffix naming devices: `<name or uuid>.<suffix>`. */
  deviceSuffix: string;
  /** How long a request's headers may take to arrive, in milliseconds. */
  headerTimeoutMs: number;
  /** Largest request head, in bytes. Default 16 KiB. */
  maxHeaderBytes?: number;
  /** Connections one source address (IPv6: its /64) may hold at once. */
  maxConnectionsPerSource: number;
  /** Sessions one person may hold open through the proxy at once. */
  maxSessionsPerUser: number;
  /** Failed authentications allowed per (login, source) in `authWindowMs` (ten times as many per source: `personGuessLimits`). */
  authAttempts: number;
  /** Default 15 minutes. */
  authWindowMs?: number;
}

const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
/** Connections the proxy holds at most, over all sources, and its part of the process's budget (infra/net). */
const MAX_CONNECTIONS = 10_000;
const BUDGET_SHARE = 0.25;

/** Hop-by-hop headers (RFC 9110 section 7.6.1) and the proxy's own: never forwarded either way. */
const hopByHop = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** A refusal: the status and a one-line reason for people (sent as text/plain). */
class ProxyRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const authenticateHeader = { 'Proxy-Authenticate': 'Basic realm="fleetgate"' };

export class ConnectProxy {
  private readonly server: http.Server;
  private readonly perSourceConnections = new Map<string, number>();
  private readonly perUserSessions = new Map<number, number>();
  /** Guessing is slowed per (login, source) and per source: see `GuessThrottle`. */
  private readonly guesses: GuessThrottle;
  private readonly sockets = new Set<Socket>();
  /** Connections answered with a refusal as they came in: whatever they send next is ignored. */
  private readonly refused = new WeakSet<Duplex>();
  private closing = false;

  constructor(
    private readonly deps: ServiceDeps,
    private readonly router: StreamRouter,
    private readonly auth: AuthService,
    private readonly options: ConnectProxyOptions,
  ) {
    const windowMs = options.authWindowMs ?? 15 * 60 * 1000;
    this.guesses = sharedGuessThrottle(deps, 'proxy', personGuessLimits(options.authAttempts, windowMs));
    this.server = http.createServer({
      maxHeaderSize: options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
      headersTimeout: options.headerTimeoutMs,
      // Bodies are streamed to devices at the pace of both ends: no deadline for the whole request.
      requestTimeout: 0,
      // How often Node looks for connections past the header timeout.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(options.headerTimeoutMs / 4))),
      keepAliveTimeout: 5000,
    });
    deps.sockets.guard('CONNECT proxy', this.server, BUDGET_SHARE, MAX_CONNECTIONS);
    this.server.on('connection', (socket: Socket) => this.onConnection(socket));
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) =>
      this.onClientError(error, socket),
    );
    this.server.on('connect', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.onConnect(request, socket as Socket, head).catch((err: unknown) => {
        this.deps.log.error({ err }, 'CONNECT failed');
        socket.destroy();
      });
    });
    this.server.on('request', (request: IncomingMessage, response: ServerResponse) => {
      this.onRequest(request, response).catch((err: unknown) => {
        this.deps.log.error({ err }, 'proxying a request failed');
        response.destroy();
      });
    });
  }

  /** The port the proxy listens on, once `listen` resolved. */
  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address ? (address as AddressInfo).port : 0;
  }

  /** Starts listening; rejects (EADDRINUSE…) when the port cannot be bound. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const failed = (error: Error) => reject(error);
      this.server.once('error', failed);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', failed);
        this.server.on('error', (err) => this.deps.log.error({ err }, 'CONNECT proxy listener error'));
        resolve(this.port);
      });
    });
  }

  /** Stops listening and drops every connection (their sessions end as reset). */
  async close(): Promise<void> {
    this.closing = true;
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.server.closeAllConnections();
    await closed;
  }

  private onConnection(socket: Socket): void {
    const source = sourceKeyOf(socket.remoteAddress);
    const count = (this.perSourceConnections.get(source) ?? 0) + 1;
    this.perSourceConnections.set(source, count);
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      const left = (this.perSourceConnections.get(source) ?? 1) - 1;
      if (left <= 0) this.perSourceConnections.delete(source);
      else this.perSourceConnections.set(source, left);
    });
    if (count > this.options.maxConnectionsPerSource || this.closing) {
      const refusal = this.closing
        ? new ProxyRefusal(503, 'the server is stopping: try again later')
        : new ProxyRefusal(
            429,
            `too many connections from your address (at most ${this.options.maxConnectionsPerSource})`,
          );
      this.refused.add(socket);
      writeRawRefusal(socket, refusal);
    }
  }

  private onClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
    // The client is gone already, or an answer is under way: nothing can be said any more.
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const refusal =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? new ProxyRefusal(431, 'the request headers are too large (at most 16 KiB)')
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? new ProxyRefusal(408, 'the request headers did not arrive in time')
          : new ProxyRefusal(400, `malformed request: ${error.code ?? error.message}`);
    writeRawRefusal(socket, refusal);
  }

  /** Authenticates `Proxy-Authorization` to a person, counting failures per (login, source) and per source. */
  private async authenticate(request: IncomingMessage): Promise<Actor & { principal: UserPrincipal }> {
    const sourceIp = request.socket.remoteAddress ?? null;
    const sourceKey = sourceKeyOf(sourceIp);
    const credentials = proxyCredentialsOf(request.headers['proxy-authorization']);
    const login = credentials?.login.trim().toLowerCase() ?? '';
    const wait = this.guesses.retryAfter(login, sourceKey);
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      throw new ProxyRefusal(429, `too many failed authentications: try again in ${seconds} s`, {
        'Retry-After': String(seconds),
      });
    }
    if (!credentials) {
      throw new ProxyRefusal(
        407,
        'proxy authentication required: Proxy-Authorization: Basic base64(<e-mail>:<API key>)',
        authenticateHeader,
      );
    }
    const failed = () => {
      this.guesses.failed(login, sourceKey);
      // Never which half was wrong.
      return new ProxyRefusal(407, 'invalid e-mail or API key', authenticateHeader);
    };
    if (!login || !credentials.key || /\s/.test(credentials.key)) throw failed();
    let principal: Awaited<ReturnType<AuthService['authenticate']>>;
    try {
      principal = await this.auth.authenticate(`Bearer ${credentials.key}`, sourceIp);
    } catch (err) {
      if (err instanceof AppError && err.code === 'unauthorized') throw failed();
      throw err;
    }
    if (principal.type !== 'user' || principal.email.toLowerCase() !== login) throw failed();
    this.guesses.succeeded(login, sourceKey);
    return { principal, sourceIp };
  }

  /**
   * Finds the device among the person's (the router resolves what they typed), authorizes and opens the
   * session, within their session limit.
   */
  private async open(
    actor: Actor & { principal: UserPrincipal },
    target: ProxyTarget,
  ): Promise<StreamSession> {
    let device: FoundDevice;
    try {
      // Authenticated for this request just now (`authenticate`): the router need not read the person again.
      device = await this.router.findDevice({ actor, current: true }, { typed: target.device });
    } catch (err) {
      throw refusalOf(err, target);
    }
    const userId = actor.principal.userId;
    const held = this.perUserSessions.get(userId) ?? 0;
    if (held >= this.options.maxSessionsPerUser) {
      throw new ProxyRefusal(
        429,
        `you hold ${held} sessions through the proxy already (at most ${this.options.maxSessionsPerUser})`,
      );
    }
    this.perUserSessions.set(userId, held + 1);
    const release = () => {
      const left = (this.perUserSessions.get(userId) ?? 1) - 1;
      if (left <= 0) this.perUserSessions.delete(userId);
      else this.perUserSessions.set(userId, left);
    };
    let session: StreamSession;
    try {
      session = await this.router.open({
        caller: { actor, current: true },
        device,
        target: target.port,
        surface: 'connect',
      });
    } catch (err) {
      release();
      throw refusalOf(err, target);
    }
    session.stream.once('close', release);
    return session;
  }

  private async onConnect(request: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    // Errors on the client's socket (a reset while we authenticate) must never be unhandled.
    socket.on('error', () => {});
    if (this.refused.has(socket)) return;
    try {
      const target = parseTarget(() => parseConnectAuthority(request.url ?? '', this.options.deviceSuffix));
      const actor = await this.authenticate(request);
      if (socket.destroyed) return;
      const session = await this.open(actor, target);
      if (socket.destroyed) {
        session.stream.destroy();
        return;
      }
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      // Bytes the client sent right behind the CONNECT head (TLS client hello…) belong to the stream.
      if (head.length) socket.unshift(head);
      await session.relay(socket);
    } catch (err) {
      if (!(err instanceof ProxyRefusal)) throw err;
      writeRawRefusal(socket, err);
    }
  }

  private async onRequest(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (this.refused.has(request.socket)) return;
    let session: StreamSession;
    let target: ProxyTarget & { path: string };
    try {
      target = parseTarget(() => parseAbsoluteUrl(request.url ?? '', this.options.deviceSuffix));
      const actor = await this.authenticate(request);
      session = await this.open(actor, target);
    } catch (err) {
      if (!(err instanceof ProxyRefusal)) throw err;
      // The request's body is not wanted: the connection closes after the answer.
      response.shouldKeepAlive = false;
      sendRefusal(response, err);
      return;
    }
    // The device end of an in-memory pipe is the relayed peer; the other is the HTTP client's connection.
    const [clientEnd, deviceEnd] = duplexPair();
    const relayed = session.relay(deviceEnd);
    const headers: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (!hopByHop.has(name) && value !== undefined) headers[name] = value;
    }
    headers.connection = 'close';
    const upstream = http.request({
      method: request.method ?? 'GET',
      path: target.path || '/',
      headers,
      // No agent: this one connection, over the tunnel stream.
      createConnection: () => clientEnd as unknown as Socket,
    });
    clientEnd.once('close', () => {
      // The HTTP client is done with its connection; if the device end has not finished both ways (the
      // exchange broke off, or the device kept its end open), end the session rather than leave it hanging.
      setImmediate(() => {
        if (!deviceEnd.destroyed && !(deviceEnd.readableEnded && deviceEnd.writableFinished))
          deviceEnd.destroy(new Error('the HTTP exchange ended'));
      });
    });
    upstream.on('response', (answer) => {
      const answerHeaders: OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(answer.headers)) {
        if (!hopByHop.has(name) && value !== undefined) answerHeaders[name] = value;
      }
      answerHeaders.connection = 'close';
      response.writeHead(answer.statusCode ?? 502, answer.statusMessage, answerHeaders);
      answer.pipe(response);
      answer.on('error', () => response.destroy());
    });
    upstream.on('error', (err) => {
      if (!response.headersSent) {
        response.shouldKeepAlive = false;
        sendRefusal(response, new ProxyRefusal(502, `the device's answer broke off: ${err.message}`));
      } else {
        response.destroy();
      }
    });
    // The client went away before its answer was complete: stop talking to the device.
    response.once('close', () => {
      if (!response.writableFinished) upstream.destroy();
    });
    request.pipe(upstream);
    await relayed;
  }
}

function parseTarget<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof TargetError) throw new ProxyRefusal(400, err.message);
    throw err;
  }
}

/** A refusal of the stream router (finding the device, opening the stream) as the proxy's answer. */
function refusalOf(err: unknown, target: ProxyTarget): unknown {
  if (!(err instanceof AppError)) return err;
  switch (err.code) {
    case 'not_found':
    case 'unauthorized':
      // Unknown devices and other organizations' answer alike, in words naming only what the request wrote.
      return new ProxyRefusal(
        407,
        `your credentials do not reach ${target.host}:${target.port}`,
        authenticateHeader,
      );
    case 'conflict':
      // Only the person's own devices are counted, so this says nothing about other organizations.
      return new ProxyRefusal(409, err.message);
    case 'forbidden':
      return new ProxyRefusal(403, err.message);
    case 'bad_request':
    case 'validation_failed':
      return new ProxyRefusal(400, err.message);
    case 'unavailable': {
      const stream = (err.details as { stream?: string } | undefined)?.stream;
      return new ProxyRefusal(stream === StreamErrorCode.unreachable ? 503 : 502, err.message);
    }
    default:
      return err;
  }
}

function refusalBody(refusal: ProxyRefusal): string {
  return `fleetgate: ${refusal.message}\n`;
}

/** Writes a refusal straight onto a socket that has no `ServerResponse` (CONNECT, client errors) and closes it. */
function writeRawRefusal(socket: Duplex, refusal: ProxyRefusal): void {
  const body = refusalBody(refusal);
  const extra = Object.entries(refusal.headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  if (socket.writable) {
    socket.end(
      `HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status] ?? 'Error'}\r\n` +
        'Content-Type: text/plain; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        `Connection: close\r\n${extra}\r\n${body}`,
    );
  }
  // Whatever the client still sends is not read: drop the connection shortly after the answer.
  setTimeout(() => socket.destroy(), 1000).unref();
}

function sendRefusal(response: ServerResponse, refusal: ProxyRefusal): void {
  const body = refusalBody(refusal);
  response.writeHead(refusal.status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    Connection: 'close',
    ...refusal.headers,
  });
  response.end(body);
}
