import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { StreamErrorCode } from '@fleetgate/protocol';
import type { Actor, UserPrincipal } from '../../infra/access/index.ts';
import { AppError, notFound } from '../../infra/errors/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { AuthService } from '../auth/service.ts';
import { deviceForAction, parseDeviceRef } from '../devices/service.ts';
import type { TunnelHub } from '../tunnel/hub.ts';
import { openStream, streamRefusalOf } from './service.ts';

/**
 * The people's end of `fleetgate tunnel`: a WebSocket upgrade at `GET /api/v1/devices/:device/tunnel`,
 * authenticated with the user's `Authorization: Bearer <session token or API key>`, speaking the same
 * multiplexer protocol as devices with the roles turned around (the client opens streams, this side has role
 * `agent`). Each stream the client opens with target `{port}` goes through `openStream` and is relayed to the
 * device; a refusal comes back as OPEN_ERR with the reason, for the client to print.
 */
export function registerUserTunnel(deps: ServiceDeps, hub: TunnelHub, auth: AuthService): void {
  hub.route(/^\/api\/v1\/devices\/([^/]+)\/tunnel$/, async (request, socket, head, match) => {
    if (hub.stopping) return hub.refuse(socket, 'unavailable', 'the server is stopping: try again later');
    const text = match[1] ?? '';
    if (!/^(?:[1-9]\d{0,9}|[0-9a-fA-F]{32})$/.test(text)) throw notFound('device');
    const ref = parseDeviceRef(text);
    const actor = await personOf(request, auth);
    // Refused here, in plain HTTP, so the client can say why before listening for connections.
    await deviceForAction(deps.db, actor, ref, 'device.connect');
    if (socket.destroyed) return;
    await hub.openPeer<'agent'>(request, socket, head, {
      role: 'agent',
      onStream: (open) => {
        const target = open.target;
        if (!('port' in target) || target.host !== undefined) {
          open.reject(StreamErrorCode.notAllowed, 'only device ports can be reached: open {port}');
          return;
        }
        openStream(deps, hub, actor, ref, target.port).then(
          (session) => {
            const stream = open.accept();
            session
              .relay(stream)
              .catch((err: unknown) => deps.log.error({ err }, 'relaying a stream failed'));
          },
          (err: unknown) => {
            const { code, reason } = streamRefusalOf(err);
            if (code === StreamErrorCode.internal) deps.log.error({ err }, 'opening a stream failed');
            try {
              open.reject(code, reason);
            } catch {
              // The client cancelled the open meanwhile.
            }
          },
        );
      },
      onControl: () => {},
    });
  });
}

/** The person in an upgrade request's `Authorization` (session token or API key); devices and services are refused. */
async function personOf(
  request: IncomingMessage,
  auth: AuthService,
): Promise<Actor & { principal: UserPrincipal }> {
  const sourceIp = request.socket.remoteAddress ?? null;
  const principal = await auth.authenticate(request.headers.authorization, sourceIp);
  if (principal.type !== 'user')
    throw new AppError(
      'forbidden',
      'only people open tunnels to devices: sign in with your own token or API key',
    );
  return { principal, sourceIp };
}

/** The `Upgrade` token of a raw stream to a device port. */
export const PORT_STREAM_PROTOCOL = 'fleetgate-stream';

/**
 * One connection, one stream: `GET /api/v1/devices/:device/ports/:port` with `Upgrade: fleetgate-stream` and
 * the person's `Authorization: Bearer <session token or API key>` goes through `openStream` (so a refusal is a
 * plain HTTP answer in the API's error shape: 401, 403 for a port off the allow-list or a viewer, 404, 503 when
 * the device is offline or refuses the port), and once the device accepted, `101 Switching Protocols` and the
 * connection carries the port's bytes both ways, half-close included, like a `CONNECT` through the proxy.
 * `fleetgate tunnel` makes one such connection per local connection: no framing of its own on the person's
 * side, and nothing held open to the server while no local connection is.
 */
export function registerPortStreams(deps: ServiceDeps, hub: TunnelHub, auth: AuthService): void {
  hub.route(/^\/api\/v1\/devices\/([^/]+)\/ports\/([^/]+)$/, async (request, socket, head, match) => {
    if (hub.stopping) return hub.refuse(socket, 'unavailable', 'the server is stopping: try again later');
    if (request.headers.upgrade?.toLowerCase() !== PORT_STREAM_PROTOCOL) {
      throw new AppError('bad_request', `this endpoint upgrades to "${PORT_STREAM_PROTOCOL}" only`);
    }
    const text = match[1] ?? '';
    if (!/^(?:[1-9]\d{0,9}|[0-9a-fA-F]{32})$/.test(text)) throw notFound('device');
    const port = /^\d{1,5}$/.test(match[2] ?? '') ? Number(match[2]) : Number.NaN;
    if (!(port >= 1 && port <= 65535))
      throw new AppError('bad_request', 'a port is a number from 1 to 65535');
    const actor = await personOf(request, auth);
    const session = await openStream(deps, hub, actor, parseDeviceRef(text), port);
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
  });
}
