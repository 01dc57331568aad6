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
import type { StreamRouter } from '../remote-access/index.ts';
import { recordsSessions, SessionRecorder } from '../sessions/index.ts';
import { DEFAULT_TERMINAL_SIZE, MAX_INPUT_FRAME, TERMINAL_MAX_SIZE, TERMINAL_TYPE } from './protocol.ts';
import { getTerminalAccess } from './service.ts';
import { TerminalSocket } from './terminal-socket.ts';

export { MAX_INPUT_FRAME, TerminalCloseCode, type TerminalControl, type TerminalEvent } from './protocol.ts';

const TERMINAL_PATH = /^\/api\/v1\/devices\/([^/]+)\/terminal$/;

/**
 * The web terminal (DESIGN section 13, issue 16): `GET /api/v1/devices/:device/terminal` upgraded to a WebSocket
 * is a shell on the device, in a pty, through the stream router (surface `terminal`): authorized as an SSH shell
 * (`device.ssh`), audited, listed in sessions, terminable by an administrator, ended when the person loses
 * access, recorded (asciicast) when the organization records sessions. The frames are in protocol.ts.
 *
 * The browser signs in with its session cookie: such an upgrade must come from fleetgate's own pages (`Origin`),
 * since any site's page may open a WebSocket to any host. Other clients send `Authorization: Bearer`. Refusals
 * come before the handshake, as plain HTTP answers in the API's error shape (401, 403, 404, 503 when the device
 * is offline or its agent refuses to run shells). Without the upgrade, the same URL answers whether the person
 * may open a terminal there.
 */
export function registerWebTerminal(
  app: TypedApp,
  deps: ServiceDeps,
  router: StreamRouter,
  auth: AuthService,
  stopping: () => boolean,
): void {
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: MAX_INPUT_FRAME,
    clientTracking: false,
  });

  app.get(
    '/api/v1/devices/:device/terminal',
    {
      schema: {
        tags: ['remote access'],
        summary: 'Open a terminal on the device (WebSocket), or ask whether I may',
        description:
          'With `Connection: Upgrade` and `Upgrade: websocket`, a shell on the device in a pty (xterm-256color), ' +
          "as `ssh <login>+<device>@gw` gives: operators and above (viewers get 403), through the agent's exec " +
          'service; 503 when the device is offline. `?cols=&rows=` set the initial size (default 80×24, at most ' +
          `${TERMINAL_MAX_SIZE}). Signed in by the session cookie, the upgrade must come from this origin ` +
          "(`Origin`); scripts send `Authorization: Bearer`. Frames: binary both ways is the terminal's bytes " +
          `(at most ${MAX_INPUT_FRAME} bytes a frame from the client); the client sends text ` +
          '`{"type":"resize","cols":N,"rows":N}`; the server sends text `{"type":"session","id"}` first, then ' +
          '`{"type":"exit","code"|"signal"}` or `{"type":"ended","reason"}` last, and closes with 1000 (exited), ' +
          '1001 (server stopping), 1007 (invalid message), 1009 (frame too big), 4000 (ended by an administrator), ' +
          '4001 (access revoked) or 4002 (device gone offline). The session is listed in `/api/v1/sessions` ' +
          '(surface `terminal`) and recorded when the organization records sessions. Without the upgrade: ' +
          'whether I may, and whether it would be recorded.',
        params: z.object({ device: deviceRefParam }),
        response: {
          200: z.object({
            device: z.object({ id: z.number(), uuid: z.string(), name: z.string() }),
            recorded: z
              .boolean()
              .describe("the organization records shell sessions: the terminal's output is kept"),
          }),
          403: errorBody,
          404: errorBody,
        },
      },
    },
    async (request) => getTerminalAccess(deps, actorOf(request), request.params.device),
  );

  app.upgrades.route(TERMINAL_PATH, async (request, socket, head, match) => {
    if (stopping()) return refuseUpgrade(socket, 'unavailable', 'the server is stopping: try again later');
    assertWebSocketHandshake(request);
    const text = match[1] ?? '';
    if (!/^(?:[1-9]\d{0,9}|[0-9a-fA-F]{32})$/.test(text)) throw notFound('device');
    const actor = await personOfBrowserUpgrade(
      request,
      auth,
      'only people open terminals on devices: sign in with your own account',
    );
    // After authentication, as at the HTTP edge: an anonymous caller learns nothing of what it sent.
    const size = sizeOf(request);
    const session = await router.open({
      // Authenticated for this request just now: the router need not read the person again.
      caller: { actor, current: true },
      device: { ref: parseDeviceRef(text) },
      target: { exec: { pty: { term: TERMINAL_TYPE, ...size } } },
      surface: 'terminal',
    });
    const recorder = (await recordsSessions(deps, session.device.orgId))
      ? SessionRecorder.begin(deps, actor, {
          sessionId: session.id,
          orgId: session.device.orgId,
          deviceUuid: session.device.uuid,
          ...size,
          term: TERMINAL_TYPE,
          title: `${actor.principal.email} on ${session.device.name} (web terminal)`,
        })
      : undefined;
    if (socket.destroyed) {
      recorder?.finish();
      session.stream.destroy(new Error('the person went away before the terminal opened'));
      await session.relay(socket);
      return;
    }
    const ws = await acceptWebSocket(wss, request, socket, head);
    if (!ws) {
      recorder?.finish();
      session.stream.destroy(new Error('the WebSocket handshake failed'));
      await session.relay(socket);
      return;
    }
    const terminal = new TerminalSocket(ws, stopping);
    if (recorder) terminal.record(recorder);
    terminal.event({ type: 'session', id: session.id });
    await session.relay(terminal).catch((err: unknown) => {
      deps.log.debug({ err }, 'a web terminal ended with an error');
    });
  });

  app.addHook('preClose', async () => {
    // Terminals still open end with their streams as the tunnels close, saying the server is stopping (1001).
    wss.close();
  });
}

/** The initial terminal size from `?cols=&rows=`; out of range is `bad_request` (before the handshake). */
function sizeOf(request: IncomingMessage): { cols: number; rows: number } {
  const query = new URL(request.url ?? '/', 'http://x').searchParams;
  const read = (name: 'cols' | 'rows') => {
    const value = query.get(name);
    if (value === null) return DEFAULT_TERMINAL_SIZE[name];
    const number = /^\d{1,4}$/.test(value) ? Number(value) : Number.NaN;
    if (!(number >= 1 && number <= TERMINAL_MAX_SIZE))
      throw badRequest(`${name} is a number from 1 to ${TERMINAL_MAX_SIZE}`);
    return number;
  };
  return { cols: read('cols'), rows: read('rows') };
}
