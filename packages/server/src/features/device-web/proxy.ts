import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { type Duplex, pipeline } from 'node:stream';
import tls from 'node:tls';
import { bridge } from '@fleetgate/protocol';
import type { Actor } from '../../infra/access/index.ts';
import { AppError } from '../../infra/errors/index.ts';
import { cookieOf, type HostHandler, releaseUpgradeSocket, SESSION_COOKIE } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { StreamRouter, StreamSession } from '../remote-access/index.ts';
import type { DeviceOrigin, DeviceOrigins } from './origins.ts';
import { refusePage, sendPage } from './pages.ts';
import { endWebSession, enterWebGrant, GRANT_TTL_MS, type WebSession, webSessionOf } from './service.ts';
import { streamPair } from './stream-pair.ts';

/** The device origin's cookie: the device web session, host-only (no `Domain`), never sent to the device. */
export const DEVICE_WEB_COOKIE = 'fleetgate_device_web';

/** The path on a device origin where a grant is entered (`?grant=`); reserved: it never reaches the device. */
export const ENTER_PATH = '/.fleetgate/enter';

/** How long a kept-alive connection to the device may sit idle before its stream (its session) ends (30 s). */
const IDLE_CONNECTION_MS = 30_000;

/**
 * How long a device web session found for a cookie is taken as found, in milliseconds (1 s): a page's burst of
 * requests reads the database once, not per request. Losing access still stops the page at once: its live
 * streams end (features/sessions rechecks them), and a new one is authorized again by the router.
 */
const SESSION_CACHE_MS = 1000;
/** Cookies remembered at most; past it the memory starts over. */
const SESSION_CACHE_SIZE = 10_000;

/** Connections to the device one device web session may hold at once (a browser opens 6 per origin). */
const MAX_CONNECTIONS_PER_SESSION = 32;

/** fleetgate's own cookies: never sent on to a device, should a browser ever send them to a device origin. */
const FLEETGATE_COOKIES = [DEVICE_WEB_COOKIE, SESSION_COOKIE];

/** Headers that belong to one hop (RFC 9110 section 7.6.1), never relayed; `host` is set for the device. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

const NO_SESSION =
  "This device page is opened from fleetgate: go to the device's page in fleetgate and open the port's web page " +
  'there (the link it opens signs this tab in).';
const SESSION_ENDED =
  'Your access to this device page has ended (signed out of fleetgate, expired, or revoked). Open it again from ' +
  "the device's page in fleetgate.";
const GRANT_REFUSED =
  `This link to the device page was already used or has expired: each link works once, within ${GRANT_TTL_MS / 1000} ` +
  "seconds. Open the page again from the device's page in fleetgate.";
const CROSS_ORIGIN =
  'A request to this device page from another page (another device, fleetgate itself, another site) is refused: ' +
  'open the device page in its own tab.';

/** Kept-alive connections to a device port for one device web session: each one a stream (a session) of the router. */
interface Pool {
  /** The device web session's id. */
  id: number;
  agent: http.Agent;
  /** The person as the last request found them: new connections are opened (and authorized again) for them. */
  actor: Actor;
  connections: number;
}

/**
 * Device web pages: every request whose `Host` is a device origin comes here (infra/http's host router), before
 * Fastify sees it. `/.fleetgate/enter?grant=` turns a grant into the origin's cookie; every other request, with
 * that cookie, is relayed to the device port through the stream router (surface `web`), over kept-alive
 * connections: each connection is one stream, authorized when it opens, listed in sessions, ended by an
 * administrator's termination or the person losing access. Paths, query strings, methods, bodies, the device
 * app's cookies, redirects and WebSocket upgrades pass through; fleetgate's cookie does not reach the device.
 */
export class DeviceWebProxy implements HostHandler {
  private readonly pools = new Map<number, Pool>();
  /** Sessions found recently, by cookie: see `SESSION_CACHE_MS`. */
  private readonly recent = new Map<string, { session: WebSession; host: string; until: number }>();

  constructor(
    private readonly deps: ServiceDeps,
    private readonly router: StreamRouter,
    private readonly origins: DeviceOrigins,
    private readonly stopping: () => boolean,
  ) {}

  claims(host: string): boolean {
    return this.origins.claims(host);
  }

  request(request: IncomingMessage, response: ServerResponse): void {
    this.serve(request, response).catch((err: unknown) => {
      this.deps.log.error({ err }, 'a device web page request failed');
      sendPage(response, 502, 'fleetgate could not relay this request; its log has the details.');
    });
  }

  upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.serveUpgrade(request, socket, head).catch((err: unknown) => {
      const { status, message } = pageOf(err);
      if (status >= 500 && !(err instanceof AppError))
        this.deps.log.error({ err }, 'a device web page upgrade failed');
      refusePage(socket, status, message);
    });
  }

  /** Ends every kept-alive connection (the server is stopping). */
  close(): void {
    for (const pool of this.pools.values()) pool.agent.destroy();
    this.pools.clear();
  }

  private async serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const host = request.headers.host ?? '';
    const origin = this.origins.parse(host);
    if (!origin)
      return sendPage(
        response,
        404,
        `${host.slice(0, 300)} names no device page: a device page's host is <port>-<device uuid>.${this.origins.suffix}.`,
      );
    if (this.stopping()) return sendPage(response, 503, 'fleetgate is stopping: try again in a moment.');
    const url = request.url ?? '/';
    if (url.split('?')[0] === ENTER_PATH) return this.enter(request, response, origin, url);
    if (isCrossOrigin(request)) return sendPage(response, 403, CROSS_ORIGIN);
    const session = await this.sessionOf(request, origin);
    if (typeof session === 'string') return sendPage(response, 401, session);
    const pool = this.poolOf(session, origin);
    const ownOrigin = `${isEncrypted(request) ? 'https' : 'http'}://${host}`;
    const outgoing = http.request({
      agent: pool.agent,
      method: request.method,
      path: url,
      headers: requestHeaders(request, origin, false),
      setHost: false,
    });
    outgoing.on('response', (answer) => {
      response.writeHead(
        answer.statusCode ?? 502,
        answer.statusMessage,
        responseHeaders(answer, origin, ownOrigin),
      );
      pipeline(answer, response, () => {});
    });
    outgoing.on('error', (err) => {
      if (response.headersSent) response.destroy();
      else {
        const { status, message } = pageOf(err);
        sendPage(response, status, message);
      }
    });
    // The person went away (tab closed, navigation) before the answer ended: the request to the device goes too.
    response.on('close', () => {
      if (!response.writableFinished) outgoing.destroy();
    });
    pipeline(request, outgoing, () => {});
  }

  private async serveUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const origin = this.origins.parse(request.headers.host ?? '');
    if (!origin) return refusePage(socket, 404, 'this host names no device page');
    if (this.stopping()) return refusePage(socket, 503, 'fleetgate is stopping: try again in a moment.');
    // Browsers send `Origin` with every WebSocket handshake; other pages may open one to any host.
    if (isCrossOrigin(request)) return refusePage(socket, 403, CROSS_ORIGIN);
    const found = await this.sessionOf(request, origin);
    if (typeof found === 'string') return refusePage(socket, 401, found);
    const session = await this.router.open({
      caller: { actor: found.actor },
      device: { ref: origin.uuid },
      target: origin.port,
      surface: 'web',
      details: { https: origin.tls, upgrade: true },
    });
    if (socket.destroyed) {
      session.stream.destroy(new Error('the person went away before the upgrade was relayed'));
      await session.relay(socket);
      return;
    }
    releaseUpgradeSocket(socket);
    (socket as Partial<Socket>).setNoDelay?.(true);
    const requestHead = `${request.method} ${request.url} HTTP/1.1\r\n${headerLines(requestHeaders(request, origin, true))}\r\n`;
    if (!origin.tls) {
      session.stream.write(requestHead);
      if (head.length) session.stream.write(head);
      await session.relay(socket);
      return;
    }
    const { secure, relaying } = overTls(session);
    secure.write(requestHead);
    if (head.length) secure.write(head);
    await Promise.all([bridge(socket, secure).catch(() => {}), relaying]);
  }

  /** Enters a grant: the origin's cookie and a redirect to `/`, or a page saying the link no longer works. */
  private async enter(
    request: IncomingMessage,
    response: ServerResponse,
    origin: DeviceOrigin,
    url: string,
  ): Promise<void> {
    if (request.method !== 'GET' && request.method !== 'HEAD')
      return sendPage(response, 400, `${ENTER_PATH} is opened with GET, as a link.`);
    const grant = new URL(url, 'http://device').searchParams.get('grant');
    if (!grant || grant.length > 128 || !/^[\w-]+$/.test(grant))
      return sendPage(response, 403, GRANT_REFUSED);
    const entered = await enterWebGrant(this.deps, grant, origin, request.socket.remoteAddress ?? null);
    if (!entered) return sendPage(response, 403, GRANT_REFUSED);
    const maxAge = Math.floor((entered.expiresAt - Date.now()) / 1000);
    const secure = isEncrypted(request) ? '; Secure' : '';
    response.writeHead(303, {
      Location: '/',
      'Set-Cookie': `${DEVICE_WEB_COOKIE}=${entered.cookie}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAge}${secure}`,
      'Cache-Control': 'no-store',
      // The grant is in this URL: the device's page must not see it as its referrer.
      'Referrer-Policy': 'no-referrer',
      'Content-Length': 0,
    });
    response.end();
  }

  /** Drops a pool that holds no connection (its agent would open new ones for a request that found it). */
  private forget(pool: Pool): void {
    if (this.pools.get(pool.id) === pool) this.pools.delete(pool.id);
  }

  /** Ends a device web session: its cookie, its kept-alive connections, what is remembered of it. */
  private async end(pool: Pool): Promise<void> {
    for (const [cookie, known] of this.recent) if (known.session.id === pool.id) this.recent.delete(cookie);
    this.forget(pool);
    pool.agent.destroy();
    await endWebSession(this.deps, pool.id);
  }

  /** The device web session of the request's cookie, or why there is none (a page's text). */
  private async sessionOf(request: IncomingMessage, origin: DeviceOrigin): Promise<WebSession | string> {
    const cookie = cookieOf(request, DEVICE_WEB_COOKIE);
    if (!cookie) return NO_SESSION;
    const now = Date.now();
    const known = this.recent.get(cookie);
    if (known && known.until > now && this.origins.hostOf(origin) === known.host) return known.session;
    const session = await webSessionOf(this.deps, cookie, origin, request.socket.remoteAddress ?? null);
    if (!session) {
      this.recent.delete(cookie);
      return SESSION_ENDED;
    }
    if (this.recent.size >= SESSION_CACHE_SIZE) this.recent.clear();
    this.recent.set(cookie, {
      session,
      host: this.origins.hostOf(origin),
      until: Math.min(now + SESSION_CACHE_MS, session.expiresAt),
    });
    return session;
  }

  /** The session's kept-alive connections to its device port; its person as this request found them. */
  private poolOf(session: WebSession, origin: DeviceOrigin): Pool {
    const known = this.pools.get(session.id);
    if (known) {
      known.actor = session.actor;
      return known;
    }
    const agent = new http.Agent({
      keepAlive: true,
      maxSockets: MAX_CONNECTIONS_PER_SESSION,
      timeout: IDLE_CONNECTION_MS,
    });
    const pool: Pool = { id: session.id, agent, actor: session.actor, connections: 0 };
    // Node's agent takes a connection from a callback: each one is a stream the router opens (and authorizes).
    (agent as unknown as { createConnection: unknown }).createConnection = (
      _options: unknown,
      callback: (err: Error | null, socket?: Duplex) => void,
    ) => {
      this.connect(pool, origin).then(
        (socket) => callback(null, socket),
        (err: unknown) => {
          // Refused (device offline, access gone): a pool with no connection is not kept.
          if (pool.connections === 0) this.forget(pool);
          callback(err as Error);
        },
      );
      return undefined;
    };
    this.pools.set(session.id, pool);
    return pool;
  }

  /** One connection to the device port: a router stream, with TLS over it for HTTPS on the device. */
  private async connect(pool: Pool, origin: DeviceOrigin): Promise<Duplex> {
    const session = await this.router.open({
      caller: { actor: pool.actor },
      device: { ref: origin.uuid },
      target: origin.port,
      surface: 'web',
      details: { https: origin.tls },
    });
    pool.connections += 1;
    let socket: Duplex;
    let socketEnd: Duplex;
    if (origin.tls) {
      ({ secure: socket, socketEnd } = overTls(session));
    } else {
      const [relayEnd, end] = streamPair();
      void session.relay(relayEnd);
      socket = socketEnd = end;
    }
    // The router resets a terminated session's stream with the administrator's reason: the whole page ends, not
    // only this connection (the browser would open another at once).
    socketEnd.once('error', (err: Error) => {
      if (err.message.startsWith('terminated by')) void this.end(pool).catch(() => {});
    });
    socket.once('close', () => {
      pool.connections -= 1;
      if (pool.connections === 0) this.forget(pool);
    });
    return socket;
  }
}

/**
 * TLS to the device over a router stream: the device's certificate is not checked (devices serve self-signed
 * ones; the stream itself reaches the device authenticated by its tunnel).
 */
function overTls(session: StreamSession): {
  secure: tls.TLSSocket;
  socketEnd: Duplex;
  relaying: Promise<void>;
} {
  const [relayEnd, socketEnd] = streamPair();
  const relaying = session.relay(relayEnd);
  const secure = tls.connect({
    socket: socketEnd as unknown as Socket,
    rejectUnauthorized: false,
    servername: 'localhost',
    ALPNProtocols: ['http/1.1'],
  });
  secure.once('close', () => socketEnd.destroy());
  secure.on('error', () => {});
  return { secure, socketEnd, relaying };
}

function isEncrypted(request: IncomingMessage): boolean {
  return (request.socket as Partial<tls.TLSSocket>).encrypted === true;
}

/**
 * A request another page made: `Origin` not this host (every CORS request, every non-GET, every WebSocket), or
 * `Sec-Fetch-Site` saying another site or a sibling origin made it (`<img>`, `<script>`) other than by navigating
 * to it. All device origins share one site (`*.<suffix>`), so `SameSite` alone would let one device's page send
 * requests to another's with the person's cookie; links and bookmarks (navigations) still open a device page.
 */
function isCrossOrigin(request: IncomingMessage): boolean {
  const site = request.headers['sec-fetch-site'];
  if ((site === 'same-site' || site === 'cross-site') && request.headers['sec-fetch-mode'] !== 'navigate')
    return true;
  const origin = request.headers.origin;
  if (origin === undefined) return false;
  try {
    return new URL(origin).host !== request.headers.host?.toLowerCase();
  } catch {
    return true;
  }
}

/** What a refused or failed relay shows the person. */
function pageOf(err: unknown): { status: number; message: string } {
  if (err instanceof AppError) {
    switch (err.code) {
      case 'unauthorized':
        return { status: 401, message: `${err.message}. ${SESSION_ENDED}` };
      case 'forbidden':
        return { status: 403, message: err.message };
      case 'not_found':
        return {
          status: 404,
          message: `${err.message}: it may have been deleted or moved out of your reach.`,
        };
      case 'conflict':
        return { status: 409, message: err.message };
      case 'unavailable':
        return {
          status: 503,
          message: `${err.message}. Try again once the device is online and its service listens on the port.`,
        };
      default:
        return { status: 502, message: err.message };
    }
  }
  const message = err instanceof Error ? err.message : String(err);
  if (message.startsWith('terminated by') || message.startsWith('access revoked'))
    return { status: 403, message: `${message}. Open the page again from the device's page in fleetgate.` };
  return {
    status: 502,
    message:
      `The device's web server closed the connection without an answer (${message}). ` +
      'Check that it serves HTTP on this port (or HTTPS: open the page as HTTPS from fleetgate).',
  };
}

/** Names listed in the request's `Connection` header: hop-by-hop too. */
function connectionTokens(headers: http.IncomingHttpHeaders): Set<string> {
  const value = headers.connection;
  return new Set(value ? value.split(',').map((token) => token.trim().toLowerCase()) : []);
}

/**
 * The headers the device's server gets: the browser's, less hop-by-hop ones and fleetgate's own cookie, with
 * `Host: localhost:<port>` (what the device's app would see from a browser on the device itself) and the device
 * origin in `X-Forwarded-Host`/`-Proto`. An upgrade keeps `Connection`/`Upgrade`.
 */
function requestHeaders(
  request: IncomingMessage,
  origin: DeviceOrigin,
  upgrade: boolean,
): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  const listed = connectionTokens(request.headers);
  const raw = request.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    if (name === 'host' || name.startsWith('x-forwarded-')) continue;
    if (name === 'cookie') {
      const kept = value
        .split(';')
        .map((part) => part.trim())
        .filter((part) => part && !FLEETGATE_COOKIES.some((name) => part.startsWith(`${name}=`)));
      if (kept.length)
        headers.cookie = headers.cookie ? `${headers.cookie}; ${kept.join('; ')}` : kept.join('; ');
      continue;
    }
    // The request's body is relayed as Node reads it; transfer-encoding is re-applied by the client when needed.
    if (name === 'transfer-encoding') {
      headers[name] = value;
      continue;
    }
    if (HOP_BY_HOP.has(name) || listed.has(name)) {
      if (!(upgrade && (name === 'connection' || name === 'upgrade'))) continue;
    }
    const known = headers[name];
    headers[name] = known === undefined ? value : Array.isArray(known) ? [...known, value] : [known, value];
  }
  const defaultPort = origin.tls ? 443 : 80;
  headers.host = origin.port === defaultPort ? 'localhost' : `localhost:${origin.port}`;
  if (request.headers.host) headers['x-forwarded-host'] = request.headers.host;
  headers['x-forwarded-proto'] = isEncrypted(request) ? 'https' : 'http';
  return headers;
}

function headerLines(headers: Record<string, string | string[]>): string {
  let text = '';
  for (const [name, value] of Object.entries(headers))
    for (const one of Array.isArray(value) ? value : [value]) text += `${name}: ${one}\r\n`;
  return text;
}

/** Hosts by which a device's app names itself in an absolute `Location`: its own loopback. */
const DEVICE_SELF = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * The headers the browser gets: the device's, less hop-by-hop ones; an absolute `Location` to the device's own
 * `localhost:<port>` points at the device origin instead; a cookie's `Domain` attribute is dropped, so the
 * device's cookies stay on its own origin (a `Domain` could otherwise reach fleetgate's or other devices' hosts).
 */
function responseHeaders(answer: IncomingMessage, origin: DeviceOrigin, ownOrigin: string): string[] {
  const out: string[] = [];
  const listed = connectionTokens(answer.headers);
  const raw = answer.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    let value = raw[i + 1]!;
    if (HOP_BY_HOP.has(lower) || listed.has(lower)) continue;
    if (lower === 'location') value = rewriteLocation(value, origin, ownOrigin);
    else if (lower === 'set-cookie') value = value.replace(/;\s*domain=[^;]*/gi, '');
    out.push(name, value);
  }
  return out;
}

function rewriteLocation(location: string, origin: DeviceOrigin, ownOrigin: string): string {
  if (!/^https?:\/\//i.test(location)) return location;
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    return location;
  }
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  if (!DEVICE_SELF.has(url.hostname) || port !== origin.port) return location;
  return `${ownOrigin}${url.pathname}${url.search}${url.hash}`;
}
