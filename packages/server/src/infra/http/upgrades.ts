import { type IncomingMessage, type Server, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { AppError, type ErrorCode, httpStatusOf, retryAfterHeader } from '../errors/index.ts';
import type { Logger } from '../logging/index.ts';
import type { HostRouter } from './hosts.ts';

/**
 * The HTTP server's `upgrade` event, in one place: features register their upgrade endpoints by path (devices'
 * tunnels, people's streams to device ports, the OpenSSH bastion's WebSocket) and take the socket once they
 * have authenticated the request, or refuse it with a plain HTTP answer in the API's error shape.
 */

/**
 * Takes an upgrade request whose path matched: authenticates, then takes the socket (a WebSocket handshake, a
 * raw stream) or `refuseUpgrade`s it. A thrown `AppError` becomes its HTTP answer; anything else a 500, logged.
 */
export type UpgradeHandler = (
  request: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  match: RegExpExecArray,
) => Promise<void>;

/** Until the handler takes an upgrading socket over, a reset must not become an uncaught exception. */
function destroyOnError(this: Duplex): void {
  this.destroy();
}

/**
 * Lets a handler that takes the socket over (a WebSocket library that listens for its errors from now on)
 * remove the guard `UpgradeRouter` put on it.
 */
export function releaseUpgradeSocket(socket: Duplex): void {
  socket.off('error', destroyOnError);
}

export class UpgradeRouter {
  private readonly routes: { pattern: RegExp; handle: UpgradeHandler }[] = [];
  private server: Server | undefined;

  /** @param hosts upgrades for a host it claims go there, whatever their path. */
  constructor(
    private readonly log: Logger,
    private readonly hosts?: HostRouter,
  ) {}

  /** Adds an upgrade endpoint; the first pattern that matches the path (without its query) takes the request. */
  route(pattern: RegExp, handle: UpgradeHandler): void {
    this.routes.push({ pattern, handle });
  }

  /** Starts answering `server`'s upgrade requests. */
  listen(server: Server): void {
    this.server = server;
    server.on('upgrade', this.onUpgrade);
  }

  /** Stops answering upgrade requests (sockets already taken are their handlers' to close). */
  close(): void {
    this.server?.off('upgrade', this.onUpgrade);
    this.server = undefined;
  }

  private readonly onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', destroyOnError);
    const hostHandler = this.hosts?.handlerOf(request);
    if (hostHandler) {
      hostHandler.upgrade(request, socket, head);
      return;
    }
    const path = (request.url ?? '/').split('?')[0] ?? '/';
    for (const route of this.routes) {
      const match = route.pattern.exec(path);
      if (!match) continue;
      route.handle(request, socket, head, match).catch((err: unknown) => {
        if (err instanceof AppError) {
          refuseUpgradeWith(socket, err);
          return;
        }
        this.log.error({ err, path }, 'upgrade failed');
        refuseUpgrade(socket, 'internal', 'internal error; the server log has the details');
      });
      return;
    }
    refuseUpgrade(socket, 'not_found', `no upgrade endpoint at ${path.slice(0, 200)}`);
  };
}

/** Answers an upgrade request with a plain HTTP error in the API's error shape, and drops the socket. */
export function refuseUpgrade(
  socket: Duplex,
  code: ErrorCode,
  message: string,
  details?: unknown,
  headers: Record<string, string> = {},
): void {
  if (socket.destroyed) return;
  const status = httpStatusOf(code);
  const body = JSON.stringify({ error: { code, message, ...(details === undefined ? {} : { details }) } });
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`, () => socket.destroy());
}

/** `refuseUpgrade` for an `AppError`, with `Retry-After` for `rate_limited`. */
export function refuseUpgradeWith(socket: Duplex, error: AppError): void {
  refuseUpgrade(
    socket,
    error.code,
    error.message,
    error.details,
    retryAfterHeader(error.code, error.details),
  );
}
