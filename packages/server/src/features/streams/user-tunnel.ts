import { StreamErrorCode } from '@fleetgate/protocol';
import type { Actor } from '../../infra/access/index.ts';
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
    const sourceIp = request.socket.remoteAddress ?? null;
    const principal = await auth.authenticate(request.headers.authorization, sourceIp);
    if (principal.type !== 'user')
      throw new AppError(
        'forbidden',
        'only people open tunnels to devices: sign in with your own token or API key',
      );
    const actor: Actor = { principal, sourceIp };
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
