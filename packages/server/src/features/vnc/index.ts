import type { IncomingMessage } from 'node:http';
import { WebSocketServer } from 'ws';
import { z } from 'zod';
import { badRequest, notFound } from '../../infra/errors/index.ts';
import {
  acceptWebSocket,
  actorOf,
  assertWebSocketHandshake,
  errorBody,
  refuseUpgrade,
  type TypedApp,
} from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { type AuthService, personOfBrowserUpgrade } from '../auth/index.ts';
import { deviceRefParam, parseDeviceRef } from '../devices/index.ts';
import { getPortAccess, type StreamRouter } from '../remote-access/index.ts';
import { MAX_VNC_FRAME, VNC_SUBPROTOCOL } from './protocol.ts';
import { WebSocketBytes } from './websocket-bytes.ts';

export { MAX_VNC_FRAME, VncCloseCode } from './protocol.ts';

const VNC_PATH = /^\/api\/v1\/devices\/([^/]+)\/ports\/([^/]+)\/vnc$/;

/**
 * VNC in the browser (issue 16): `GET /api/v1/devices/:device/ports/:port/vnc` upgraded to a WebSocket carries
 * the bytes of a VNC server's port on the device (websockify's way, which noVNC speaks), through the stream
 * router as a port stream (surface `vnc`): authorized like any port stream (`device.connect`, the port on the
 * device's allow-list), audited, listed in sessions, terminable by an administrator, ended when the person loses
 * access. The frames and close codes are in protocol.ts.
 *
 * Signed in like the web terminal: the session cookie from fleetgate's own pages (`Origin`), or `Authorization:
 * Bearer`. Refusals come before the handshake, as plain HTTP answers in the API's error shape. Without the
 * upgrade, the same URL answers whether the person may open it (the port's allow-list).
 */
export function registerVnc(
  app: TypedApp,
  deps: ServiceDeps,
  router: StreamRouter,
  auth: AuthService,
  stopping: () => boolean,
): void {
  /** The session each accepted request opened, for the 101 answer's `Fleetgate-Session`. */
  const sessionOf = new WeakMap<IncomingMessage, string>();
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: MAX_VNC_FRAME,
    clientTracking: false,
    // Only `binary`, and only when asked: anything else was refused before the handshake (`subprotocolOf`).
    handleProtocols: (protocols) => (protocols.has(VNC_SUBPROTOCOL) ? VNC_SUBPROTOCOL : false),
  });
  wss.on('headers', (headers, request) => {
    const id = sessionOf.get(request);
    if (id) headers.push(`Fleetgate-Session: ${id}`);
  });

  app.get(
    '/api/v1/devices/:device/ports/:port/vnc',
    {
      schema: {
        tags: ['remote access'],
        summary: "Open the device's VNC server in the browser (WebSocket), or ask whether I may",
        description:
          'With `Connection: Upgrade` and `Upgrade: websocket`, the bytes of the VNC server on this port of the ' +
          'device, as websockify carries them (what noVNC speaks): binary frames both ways (at most ' +
          `${MAX_VNC_FRAME} bytes a frame from the client), subprotocol \`binary\` when asked for. For ` +
          "operators and above (viewers get 403), the port on the device's allow-list (403 otherwise; allow " +
          '5900 with `PUT /api/v1/devices/{device}/allowed-ports`); 409 when the device is decommissioned, 503 ' +
          'when it is offline or refuses the port. Signed in by the session cookie, the upgrade must come from ' +
          'this origin (`Origin`); scripts send `Authorization: Bearer`. The 101 answer names the session in ' +
          '`Fleetgate-Session`; it is listed in `/api/v1/sessions` (surface `vnc`). Closes with 1000 (the VNC ' +
          'server closed the connection), 1001 (server stopping), 1003 (a text frame), 1009 (frame too big), ' +
          '4000 (ended by an administrator), 4001 (access revoked) or 4002 (device gone offline). Without the ' +
          "upgrade: whether I may, and the device's allow-list.",
        params: z.object({ device: deviceRefParam, port: z.coerce.number().int().min(1).max(65535) }),
        response: {
          200: z.object({
            ports: z.array(z.number()).describe("the device's port allow-list"),
            source: z.enum(['device', 'fleet', 'default']).describe('where the list comes from'),
            port: z.number(),
            allowed: z
              .boolean()
              .describe('whether the port is on the allow-list: the VNC viewer may open it'),
          }),
          403: errorBody,
          404: errorBody,
        },
      },
    },
    async (request) => getPortAccess(deps, actorOf(request), request.params.device, request.params.port),
  );

  app.upgrades.route(VNC_PATH, async (request, socket, head, match) => {
    if (stopping()) return refuseUpgrade(socket, 'unavailable', 'the server is stopping: try again later');
    assertWebSocketHandshake(request);
    assertSubprotocol(request);
    const text = match[1] ?? '';
    if (!/^(?:[1-9]\d{0,9}|[0-9a-fA-F]{32})$/.test(text)) throw notFound('device');
    const port = /^\d{1,5}$/.test(match[2] ?? '') ? Number(match[2]) : Number.NaN;
    if (!(port >= 1 && port <= 65535)) throw badRequest('a port is a number from 1 to 65535');
    const actor = await personOfBrowserUpgrade(
      request,
      auth,
      'only people open VNC on devices: sign in with your own account',
    );
    const session = await router.open({
      // Authenticated for this request just now: the router need not read the person again.
      caller: { actor, current: true },
      device: { ref: parseDeviceRef(text) },
      target: port,
      surface: 'vnc',
    });
    sessionOf.set(request, session.id);
    const ws = await acceptWebSocket(wss, request, socket, head);
    if (!ws) {
      session.stream.destroy(new Error('the WebSocket handshake failed or the person went away'));
      await session.relay(socket);
      return;
    }
    await session.relay(new WebSocketBytes(ws, stopping)).catch((err: unknown) => {
      deps.log.debug({ err }, 'a VNC session ended with an error');
    });
  });

  app.addHook('preClose', async () => {
    // Sessions still open end with their streams as the tunnels close, saying the server is stopping (1001).
    wss.close();
  });
}

/** A browser that asks for subprotocols must be offered `binary` among them (else it fails the handshake). */
function assertSubprotocol(request: IncomingMessage): void {
  const header = request.headers['sec-websocket-protocol'];
  if (header === undefined) return;
  const offered = header.split(',').map((p) => p.trim());
  if (!offered.includes(VNC_SUBPROTOCOL))
    throw badRequest(`the only WebSocket subprotocol here is "${VNC_SUBPROTOCOL}" (or none)`);
}
