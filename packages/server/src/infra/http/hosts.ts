import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * Requests dispatched by their `Host` before anything else sees them: a host that a feature claims (a device's
 * web page origin) is that feature's alone, for plain requests and for upgrades, so fleetgate's API, UI and
 * upgrade endpoints never answer on it (`/api/v1/me` there is the device's path, not fleetgate's).
 */
export interface HostHandler {
  /** Whether the request's `Host` (lower-cased, with its port) is one this handler serves. */
  claims(host: string): boolean;
  request(request: IncomingMessage, response: ServerResponse): void;
  upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
}

export class HostRouter {
  private readonly handlers: HostHandler[] = [];

  /** Adds a host handler; the first that claims a request's host takes it. */
  route(handler: HostHandler): void {
    this.handlers.push(handler);
  }

  /** The handler that claims this request's host, if any. */
  handlerOf(request: IncomingMessage): HostHandler | undefined {
    if (this.handlers.length === 0) return undefined;
    const host = request.headers.host?.toLowerCase();
    if (!host) return undefined;
    return this.handlers.find((handler) => handler.claims(host));
  }

  /**
   * Puts this router in front of the server's own `request` listener (Fastify's): requests for a claimed host
   * go to their handler, before Fastify routes, parses or authenticates anything.
   */
  interceptRequests(server: Server): void {
    const listeners = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
    server.removeAllListeners('request');
    server.on('request', (request: IncomingMessage, response: ServerResponse) => {
      const handler = this.handlerOf(request);
      if (handler) {
        handler.request(request, response);
        return;
      }
      for (const listener of listeners) listener.call(server, request, response);
    });
  }
}
