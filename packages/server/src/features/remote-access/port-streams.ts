import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { type Actor, authorizeRoute, type UserPrincipal } from '../../infra/access/index.ts';
import { AppError, notFound } from '../../infra/errors/index.ts';
import { refuseUpgrade, type TypedApp } from '../../infra/http/index.ts';
import type { AuthService } from '../auth/index.ts';
import { parseDeviceRef } from '../devices/index.ts';
import type { StreamRouter } from './router.ts';

/** The `Upgrade` token of a raw stream to a device port. */
export const PORT_STREAM_PROTOCOL = 'fleetgate-stream';

/**
 * One connection, one stream: `GET /api/v1/devices/:device/ports/:port` with `Upgrade: fleetgate-stream` and
 * the person's `Authorization: Bearer <session token or API key>` goes through the stream router (so a refusal is a
 * plain HTTP answer in the API's error shape: 401, 403 for a port off the allow-list or a viewer, 404, 409 when
 * the device is decommissioned, 503 when it is offline or refuses the port), and once the device accepted, `101 Switching Protocols` and the
 * connection carries the port's bytes both ways, half-close included, like a `CONNECT` through the proxy.
 * `fleetgate tunnel` makes one such connection per local connection: no framing of its own on the person's
 * side, and nothing held open to the server while no local connection is.
 */
export function registerPortStreams(
  app: TypedApp,
  router: StreamRouter,
  auth: AuthService,
  stopping: () => boolean,
): void {
  app.upgrades.route(
    /^\/api\/v1\/devices\/([^/]+)\/ports\/([^/]+)$/,
    async (request, socket, head, match) => {
      if (stopping()) return refuseUpgrade(socket, 'unavailable', 'the server is stopping: try again later');
      if (request.headers.upgrade?.toLowerCase() !== PORT_STREAM_PROTOCOL) {
        throw new AppError('bad_request', `this endpoint upgrades to "${PORT_STREAM_PROTOCOL}" only`);
      }
      const text = match[1] ?? '';
      if (!/^(?:[1-9]\d{0,9}|[0-9a-fA-F]{32})$/.test(text)) throw notFound('device');
      const port = /^\d{1,5}$/.test(match[2] ?? '') ? Number(match[2]) : Number.NaN;
      if (!(port >= 1 && port <= 65535))
        throw new AppError('bad_request', 'a port is a number from 1 to 65535');
      const actor = await personOf(request, auth);
      const session = await router.open({
        // Authenticated for this request just now: the router need not read the person again.
        caller: { actor, current: true },
        device: { ref: parseDeviceRef(text) },
        target: port,
        surface: 'tunnel',
      });
      if (socket.destroyed) {
        session.stream.destroy(new Error('the person went away before the stream was relayed'));
        await session.relay(socket);
        return;
      }
      (socket as Partial<Socket>).setNoDelay?.(true);
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${PORT_STREAM_PROTOCOL}\r\n` +
          `Fleetgate-Session: ${session.id}\r\n\r\n`,
      );
      // Bytes the client sent right behind the request belong to the stream.
      if (head.length) socket.unshift(head);
      await session.relay(socket);
    },
  );
}

/**
 * The person in an upgrade request's `Authorization` (session token or API key). A route made for people:
 * devices are refused 401 and services 403, as on every other route (`authorizeRoute`).
 */
async function personOf(
  request: IncomingMessage,
  auth: AuthService,
): Promise<Actor & { principal: UserPrincipal }> {
  const sourceIp = request.socket.remoteAddress ?? null;
  const principal = await auth.authenticate(request.headers.authorization, sourceIp);
  authorizeRoute(principal, {});
  if (principal.type !== 'user')
    throw new AppError(
      'forbidden',
      'only people open tunnels to devices: sign in with your own token or API key',
    );
  return { principal, sourceIp };
}
