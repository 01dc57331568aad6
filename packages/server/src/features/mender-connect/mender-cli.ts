import type { ExecExitStatus } from '@fleetgate/protocol';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { type WebSocket, WebSocketServer } from 'ws';
import { z } from 'zod';
import { type Actor, requireUser } from '../../infra/access/index.ts';
import { notFound } from '../../infra/errors/index.ts';
import {
  acceptWebSocket,
  actorOf,
  assertWebSocketHandshake,
  keepAlive,
  refuseUpgrade,
  type TypedApp,
} from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { AuthService } from '../auth/index.ts';
import { onlineLinks, parseDeviceRef } from '../devices/index.ts';
import { type ExecOutput, ExecPeer, type FoundDevice, type StreamRouter } from '../remote-access/index.ts';
import { recordsSessions, SessionRecorder } from '../sessions/index.ts';
import type { MenderConnectHub } from './connections.ts';
import {
  ControlType,
  decodeMessage,
  encodeMessage,
  MAX_MESSAGE_FROM_DEVICE,
  MenderProtocolError,
  Proto,
  type ProtoMessage,
  ShellStatus,
  ShellType,
} from './protocol.ts';

/**
 * Mender's deviceconnect management API as `mender-cli terminal` uses it: `GET
 * /api/management/v1/deviceconnect/devices/:id` (`{id, status: connected|disconnected}`) and the WebSocket
 * `…/devices/:id/connect`, on which the person's side speaks the same msgpack shell messages as a device (`new`
 * with the terminal size, answered with the session id and `props.status`; `shell` both ways; `resize`; `stop`).
 * It is one more surface of the stream router: a terminal is an exec stream to the device (an agent device or a
 * mender-connect one alike), authorized, audited, recorded and terminable as the web terminal's.
 *
 * mender-cli type-asserts `props.status` as int64: sent as BigInt, which msgpackr writes as int64.
 */

const DEVICE_PATH = /^\/api\/management\/v1\/deviceconnect\/devices\/([0-9a-fA-F]{32})\/connect$/;
const TERMINAL_TYPE = 'xterm-256color';
/** Output bytes queued to mender-cli above which the device's output waits. */
const SEND_HIGH_WATER = 256 * 1024;

export function registerMenderCli(
  app: TypedApp,
  deps: ServiceDeps,
  hub: MenderConnectHub,
  router: StreamRouter,
  auth: AuthService,
  stopping: () => boolean,
): void {
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: MAX_MESSAGE_FROM_DEVICE,
    clientTracking: false,
  });

  app.register(async (plain) => {
    const scope = plain.withTypeProvider<ZodTypeProvider>();
    scope.addHook('onRequest', async (request) => {
      request.principal = await auth.authenticate(request.headers.authorization, request.ip);
      requireUser(request.principal);
    });
    scope.get(
      '/api/management/v1/deviceconnect/devices/:id',
      {
        schema: {
          hide: true,
          tags: ['mender'],
          summary: 'Whether a device is connected for remote terminals (Mender deviceconnect)',
          params: z.object({ id: z.string().regex(/^[0-9a-fA-F]{32}$/, 'a device uuid') }),
        },
      },
      async (request) => {
        const { found } = await router.findDevice(
          { actor: actorOf(request), current: true },
          { ref: parseDeviceRef(request.params.id) },
        );
        // Connected through any link the router knows counts: the terminal reaches agent devices too.
        const connected = hub.connectionOf(found.id) !== undefined || (await isOnline(deps, found.id));
        return { id: found.uuid, device_id: found.uuid, status: connected ? 'connected' : 'disconnected' };
      },
    );
  });

  app.upgrades.route(DEVICE_PATH, async (request, socket, head, match) => {
    if (stopping()) return refuseUpgrade(socket, 'unavailable', 'the server is stopping: try again later');
    assertWebSocketHandshake(request);
    const principal = await auth.authenticate(
      request.headers.authorization,
      request.socket.remoteAddress ?? '',
    );
    requireUser(principal);
    const actor: Actor = { principal, sourceIp: request.socket.remoteAddress ?? null };
    const ref = match[1];
    if (!ref) throw notFound('device');
    const device = await router.findDevice({ actor, current: true }, { ref: parseDeviceRef(ref) });
    const ws = await acceptWebSocket(wss, request, socket, head);
    if (!ws) return;
    keepAlive(ws);
    serveCli(deps, router, actor, device, ws);
  });
  app.addHook('preClose', async () => {
    wss.close();
  });
}

/** Online through any link, by the one status rule (devices/status.ts). */
async function isOnline(deps: ServiceDeps, deviceId: number): Promise<boolean> {
  const row = await deps.db
    .selectFrom('devices')
    .select([
      'connected_at',
      'disconnected_at',
      'vpn_connected_at',
      'vpn_disconnected_at',
      'mender_connected_at',
      'mender_disconnected_at',
    ])
    .where('id', '=', deviceId)
    .executeTakeFirst();
  return row !== undefined && onlineLinks(row).length > 0;
}

/** One mender-cli connection: its messages until a `new` opens the terminal, then the terminal's. */
function serveCli(
  deps: ServiceDeps,
  router: StreamRouter,
  actor: Actor,
  device: FoundDevice,
  ws: WebSocket,
): void {
  let terminal: CliTerminal | undefined;
  const send = (message: Parameters<typeof encodeMessage>[0]) =>
    ws.send(encodeMessage(message), { binary: true });
  ws.on('error', () => {});
  ws.on('close', () => {
    if (terminal && !terminal.writableFinished) terminal.destroy(new Error('mender-cli closed the terminal'));
  });
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    let message: ProtoMessage;
    try {
      if (!isBinary) throw new MenderProtocolError('messages are binary msgpack');
      message = decodeMessage(data);
    } catch (err) {
      ws.close(1002, String((err as Error).message).slice(0, 120));
      return;
    }
    const { proto, typ, props } = message.hdr;
    if (proto === Proto.control && typ === ControlType.ping) {
      send({ proto: Proto.control, typ: ControlType.pong, sid: message.hdr.sid });
      return;
    }
    if (proto !== Proto.shell) return;
    if (typ === ShellType.new && !terminal) {
      const size = {
        cols: sizeOf(props.terminal_width, 80),
        rows: sizeOf(props.terminal_height, 24),
      };
      terminal = new CliTerminal(ws);
      void openTerminal(deps, router, actor, device, terminal, size, send);
      return;
    }
    terminal?.fromCli(message);
  });
}

function sizeOf(value: unknown, fallback: number): number {
  const number = typeof value === 'bigint' ? Number(value) : value;
  return typeof number === 'number' && Number.isInteger(number) && number >= 1 && number <= 10_000
    ? number
    : fallback;
}

async function openTerminal(
  deps: ServiceDeps,
  router: StreamRouter,
  actor: Actor,
  device: FoundDevice,
  terminal: CliTerminal,
  size: { cols: number; rows: number },
  send: (message: Parameters<typeof encodeMessage>[0]) => void,
): Promise<void> {
  let session: Awaited<ReturnType<StreamRouter['open']>>;
  try {
    session = await router.open({
      caller: { actor, current: true },
      device,
      target: { exec: { pty: { term: TERMINAL_TYPE, ...size } } },
      surface: 'mender-cli',
    });
  } catch (err) {
    send({
      proto: Proto.shell,
      typ: ShellType.new,
      props: { status: BigInt(ShellStatus.error) },
      body: Buffer.from((err as Error).message ?? 'the terminal could not be opened'),
    });
    terminal.destroy();
    return;
  }
  if (await recordsSessions(deps, session.device.orgId)) {
    const principal = actor.principal as { email?: string };
    terminal.record(
      SessionRecorder.begin(deps, actor, {
        sessionId: session.id,
        orgId: session.device.orgId,
        deviceUuid: session.device.uuid,
        ...size,
        term: TERMINAL_TYPE,
        title: `${principal.email ?? 'someone'} on ${session.device.name} (mender-cli)`,
      }),
    );
  }
  terminal.sid = session.id;
  send({
    proto: Proto.shell,
    typ: ShellType.new,
    sid: session.id,
    props: { status: BigInt(ShellStatus.normal) },
    body: Buffer.from('Shell started'),
  });
  await session.relay(terminal).catch((err: unknown) => {
    deps.log.debug({ err }, 'a mender-cli terminal ended with an error');
  });
}

/** mender-cli's end of an exec stream: its shell messages in, the device's output out as `shell` messages. */
class CliTerminal extends ExecPeer {
  sid = '';
  private done = false;

  constructor(private readonly ws: WebSocket) {
    super();
  }

  fromCli(message: ProtoMessage): void {
    const { typ, props } = message.hdr;
    switch (typ) {
      case ShellType.shell:
        this.send({ type: 'stdin', data: message.body });
        return;
      case ShellType.resize:
        this.send({
          type: 'resize',
          cols: sizeOf(props.terminal_width, 80),
          rows: sizeOf(props.terminal_height, 24),
        });
        return;
      case ShellType.stop:
        // The person left (Ctrl+]): the shell on the device stops.
        this.done = true;
        this.destroy(new Error('mender-cli stopped the terminal'));
        return;
      default:
        return;
    }
  }

  private toCli(typ: string, body?: Buffer, sent?: () => void): void {
    if (this.done && typ !== ShellType.stop) {
      sent?.();
      return;
    }
    this.ws.send(
      encodeMessage({
        proto: Proto.shell,
        typ,
        sid: this.sid,
        props: { status: BigInt(ShellStatus.normal) },
        ...(body ? { body } : {}),
      }),
      { binary: true },
      sent,
    );
  }

  protected override pauseInput(): void {
    this.ws.pause();
  }

  protected override resumeInput(): void {
    this.ws.resume();
  }

  /** Output waits for mender-cli only when it is behind: then until what it queued has left. */
  protected override deliver(output: ExecOutput[], done: () => void): void {
    if (this.ws.readyState !== this.ws.OPEN) {
      done();
      return;
    }
    let queued = output.length;
    let waiting = false;
    const sent = () => {
      queued -= 1;
      if (waiting && queued === 0) done();
    };
    for (const { data } of output) this.toCli(ShellType.shell, Buffer.from(data), sent);
    if (this.ws.bufferedAmount <= SEND_HIGH_WATER) done();
    else waiting = true;
  }

  protected override ended(_status: ExecExitStatus | undefined): void {
    this.finish();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.finish();
    super._destroy(error, callback);
  }

  /** The shell ended: mender-cli is told (`stop`), and its connection closes. */
  private finish(): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.toCli(ShellType.stop);
    this.done = true;
    this.ws.close(1000, 'the shell ended');
  }
}
