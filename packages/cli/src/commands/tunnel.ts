import net from 'node:net';
import { Backoff, MaskedSender } from '@fleetgate/agent';
import {
  bridge,
  CloseCode,
  type ConnectionClose,
  HEADER_SIZE,
  MAX_FRAME_PAYLOAD,
  Multiplexer,
  StreamError,
} from '@fleetgate/protocol';
import { type Command, InvalidArgumentError } from 'commander';
import WebSocket from 'ws';
import type { Device, Page } from '../api.ts';
import { apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';

/** One `<localPort>:<remotePort>` argument. */
export interface PortMapping {
  /** 0 picks a free port, printed at start. */
  local: number;
  remote: number;
}

function parsePort(text: string, allowZero: boolean): number {
  if (!/^\d{1,5}$/.test(text)) return Number.NaN;
  const port = Number(text);
  return port <= 65535 && (port > 0 || allowZero) ? port : Number.NaN;
}

/** Parses `8022:22` (local 8022 → device port 22), or `22` (the same port on both ends). */
export function parseMapping(text: string): PortMapping {
  const parts = text.trim().split(':');
  const [localText, remoteText] = parts.length === 1 ? [parts[0]!, parts[0]!] : parts;
  const local = parsePort(localText ?? '', true);
  const remote = parsePort(remoteText ?? '', false);
  if (parts.length > 2 || Number.isNaN(local) || Number.isNaN(remote)) {
    throw new InvalidArgumentError(`expected <localPort>:<remotePort> (e.g. 8022:22), got "${text}"`);
  }
  return { local, remote };
}

interface TunnelOptions {
  bind: string;
}

/**
 * `tunnel <device> <localPort>:<remotePort>…`: listens on the laptop (127.0.0.1 by default) and makes each
 * accepted TCP connection a stream to the device's port, over one WebSocket to the server speaking the tunnel
 * protocol (`GET /api/v1/devices/:device/tunnel`). Half-close and resets cross over; refusals print one line.
 */
export function registerTunnelCommand(program: Command, io: CliIo): void {
  program
    .command('tunnel')
    .description("forward local TCP ports to a device's ports through the server (like ssh -L)")
    .argument('<device>', 'device uuid, id or name')
    .argument('<mappings...>', '<localPort>:<remotePort>, e.g. 8022:22 (local port 0 picks a free one)')
    .option('--bind <address>', 'local address to listen on', '127.0.0.1')
    .addHelpText(
      'after',
      '\nExamples:\n  fleetgate tunnel 7f3c… 8022:22        then: ssh -p 8022 root@127.0.0.1\n' +
        '  fleetgate tunnel gateway-17 8080:80 5900:5900\n' +
        "The device's port must be on its allow-list (GET /api/v1/devices/<uuid>/allowed-ports; default 22).",
    )
    .action(async (deviceText: string, mappingTexts: string[], options: TunnelOptions, command: Command) => {
      const mappings = mappingTexts.map(parseMapping);
      const ctx = new CommandContext(io, command);
      await ctx.client(); // fails early, with how to sign in, when there is no login
      const device = await resolveDevice(ctx, deviceText);
      const { server, token } = await ctx.connection();
      await runTunnel({ io, server: server!, token: token!, device, mappings, bind: options.bind });
    });
}

/** A device by uuid or id (asked directly) or by exact name (one match among the devices I can see). */
async function resolveDevice(ctx: CommandContext, text: string): Promise<Device> {
  if (/^(?:[1-9]\d{0,9}|[0-9a-fA-F]{32})$/.test(text)) {
    return ctx.api<Device>('GET', apiPath`/devices/${text}`);
  }
  const page = await ctx.api<Page<Device>>('GET', '/devices', { query: { q: text, limit: 500 } });
  const named = page.items.filter((d) => d.name === text);
  if (named.length === 1) return named[0]!;
  if (named.length === 0)
    throw new CliError(`no device named "${text}" (give its uuid, or see \`fleetgate devices ls\`)`);
  throw new CliError(
    `${named.length} devices are named "${text}": give the uuid (${named.map((d) => d.uuid).join(', ')})`,
  );
}

interface TunnelSetup {
  io: CliIo;
  server: string;
  token: string;
  device: Device;
  mappings: PortMapping[];
  bind: string;
}

/** An answer that ends the command: the server refused the tunnel (not allowed, no such device, bad token). */
class Refused extends CliError {}

/** One WebSocket to the server speaking the tunnel protocol; resolves once it is open. */
async function connect(
  setup: TunnelSetup,
): Promise<{ mux: Multiplexer<'server'>; ended: Promise<ConnectionClose> }> {
  const url = `${setup.server.replace(/^http/, 'ws')}/api/v1/devices/${setup.device.uuid}/tunnel`;
  const ws = new WebSocket(url, {
    headers: { authorization: `Bearer ${setup.token}` },
    perMessageDeflate: false,
    // ws's own sends (the close frame) unmasked over TLS too, as MaskedSender's.
    ...(url.startsWith('wss:') ? { generateMask: (mask: Buffer) => void mask.fill(0) } : {}),
    maxPayload: HEADER_SIZE + MAX_FRAME_PAYLOAD,
  });
  // Frames masked in place rather than copied by ws.send (see MaskedSender).
  const sender = new MaskedSender(ws, url);
  let closed!: (close: ConnectionClose) => void;
  const ended = new Promise<ConnectionClose>((resolve) => {
    closed = resolve;
  });
  // Role 'server': on this connection the CLI opens the streams (the server side answers as 'agent').
  const mux = new Multiplexer({
    role: 'server',
    software: 'fleetgate-cli',
    send: (frame) => sender.send(frame),
    onClose: (close) => {
      ws.close(close.code, close.reason.slice(0, 120));
      closed(close);
    },
  });
  // Before 'open': the server's hello may arrive in the same packet as the upgrade answer.
  ws.on('message', (data, isBinary) => {
    if (isBinary) mux.receive(data as Buffer);
  });
  ws.on('close', () => mux.transportClosed('the connection to the server closed'));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', (error) => reject(new CliError(`cannot reach ${setup.server}: ${error.message}`)));
    ws.once('unexpected-response', (_request, response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        let message = `HTTP ${response.statusCode}`;
        try {
          message = JSON.parse(Buffer.concat(chunks).toString('utf8')).error.message ?? message;
        } catch {}
        const text = `the server refused the tunnel to ${setup.device.name}: ${message}`;
        // 5xx and 429 say "not now"; anything else will not change by retrying.
        const status = response.statusCode ?? 0;
        reject(status >= 500 || status === 429 ? new CliError(text) : new Refused(text));
      });
    });
  });
  ws.on('error', () => {});
  mux.start();
  return { mux, ended };
}

/**
 * Listens on the mapped local ports and keeps one tunnel connection to the server for them. When the
 * connection drops (the server restarts, the network goes away), it reconnects with backoff and full jitter
 * while the local ports stay open: a connection accepted meanwhile waits for the new tunnel. It ends on
 * Ctrl-C, or when the server refuses the tunnel outright (no such device, not allowed, token revoked).
 */
async function runTunnel(setup: TunnelSetup): Promise<void> {
  const { io, device } = setup;
  let live = await connect(setup);
  // Resolves to the connection in use, or to the next one while reconnecting.
  let current: Promise<Multiplexer<'server'>> = Promise.resolve(live.mux);

  const label = `${device.name} (${device.uuid})`;
  const listeners: net.Server[] = [];
  try {
    for (const mapping of setup.mappings) {
      const listener = net.createServer({ allowHalfOpen: true }, (socket) =>
        forward(io, current, socket, mapping, label),
      );
      await new Promise<void>((resolve, reject) => {
        listener.once('error', (error: NodeJS.ErrnoException) =>
          reject(
            new CliError(`cannot listen on ${setup.bind}:${mapping.local}: ${error.code ?? error.message}`),
          ),
        );
        listener.listen(mapping.local, setup.bind, () => resolve());
      });
      listeners.push(listener);
      const port = (listener.address() as net.AddressInfo).port;
      io.stdout.write(`forwarding ${setup.bind}:${port} → ${label} port ${mapping.remote}\n`);
    }
  } catch (error) {
    live.mux.close(CloseCode.normal, 'the CLI stopped');
    throw error;
  }
  if (device.status !== 'online') {
    io.stderr.write(
      `fleetgate: note: ${device.name} is ${device.status}; connections fail until it is online\n`,
    );
  }
  io.stdout.write('press Ctrl-C to stop\n');

  let stopping = false;
  let wake = () => {};
  const stop = () => {
    stopping = true;
    live.mux.close(CloseCode.normal, 'the CLI stopped');
    wake();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const backoff = new Backoff({ baseMs: 500, capMs: 15_000 });
    for (;;) {
      const close = await live.ended;
      if (stopping) return;
      if (close.code === CloseCode.unauthorized) {
        throw new CliError(
          `the tunnel closed: ${close.reason || close.name}; sign in again (fleetgate login)`,
        );
      }
      io.stderr.write(
        `fleetgate: the tunnel closed: ${close.reason || close.name} (${close.code}); reconnecting\n`,
      );
      let resolveNext!: (mux: Multiplexer<'server'>) => void;
      let rejectNext!: (error: Error) => void;
      current = new Promise((resolve, reject) => {
        resolveNext = resolve;
        rejectNext = reject;
      });
      current.catch(() => {});
      for (;;) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, backoff.next());
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        if (stopping) {
          rejectNext(new Error('the CLI stopped'));
          return;
        }
        try {
          live = await connect(setup);
          backoff.reset();
          resolveNext(live.mux);
          io.stderr.write('fleetgate: reconnected\n');
          break;
        } catch (error) {
          if (error instanceof Refused) {
            rejectNext(error);
            throw error;
          }
          io.stderr.write(`fleetgate: ${(error as Error).message}; retrying\n`);
        }
      }
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    for (const listener of listeners) listener.close();
  }
}

/**
 * One accepted local connection → one stream to the device port, over the live tunnel connection (or the
 * next one, while reconnecting); a refusal prints one line and resets the local connection.
 */
function forward(
  io: CliIo,
  connection: Promise<Multiplexer<'server'>>,
  socket: net.Socket,
  mapping: PortMapping,
  label: string,
): void {
  socket.on('error', () => {});
  socket.pause();
  connection
    .then((mux) => mux.open({ port: mapping.remote }))
    .then(
      (stream) => {
        bridge(socket, stream).catch(() => {});
        socket.resume();
      },
      (error: unknown) => {
        const reason =
          error instanceof StreamError ? `${error.code}: ${error.reason}` : (error as Error).message;
        io.stderr.write(`fleetgate: ${label} port ${mapping.remote}: ${reason}\n`);
        socket.resetAndDestroy();
      },
    );
}
