import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { bridge } from '@fleetgate/protocol';
import { type Command, InvalidArgumentError } from 'commander';
import type { Device } from '../api.ts';
import { ApiError, apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
import { trustedCas } from '../tls.ts';
import { namedArgument } from './completion.ts';

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
 * accepted TCP connection a stream to the device's port, through a connection of its own to the server
 * (`GET /api/v1/devices/:device/ports/:port`, `Upgrade: fleetgate-stream`). Half-close and resets cross over;
 * refusals print one line.
 */
export function registerTunnelCommand(program: Command, io: CliIo): void {
  program
    .command('tunnel')
    .description("forward local TCP ports to a device's ports through the server (like ssh -L)")
    .addArgument(namedArgument('<device>', 'device uuid, id or name', 'devices'))
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
      for (const mapping of mappings) await checkPort(ctx, io, device, mapping.remote);
      const { server, token, ca } = await ctx.connection();
      await runTunnel({ io, server: server!, token: token!, ca, device, mappings, bind: options.bind });
    });
}

/**
 * A device as the person named it (uuid, unique uuid prefix, id or name): the server resolves it
 * (`GET /devices/:device`), answering 409 with the candidates when a name or prefix names several.
 */
export async function resolveDevice(ctx: CommandContext, text: string): Promise<Device> {
  return ctx.api<Device>('GET', apiPath`/devices/${text}`);
}

/**
 * Asks the server first whether I may open streams to the port: a role that may not connect (viewer) ends the
 * command with the server's reason; a port off the allow-list only gets a note, since an admin may add it
 * while the tunnel runs.
 */
async function checkPort(ctx: CommandContext, io: CliIo, device: Device, port: number): Promise<void> {
  let answer: PortAccess;
  try {
    answer = await ctx.api<PortAccess>('GET', apiPath`/devices/${device.uuid}/ports/${String(port)}`);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    throw new CliError(`the server refused the tunnel to ${device.name}: ${error.message}`);
  }
  if (!answer.allowed) {
    io.stderr.write(
      `fleetgate: note: port ${port} is not on ${device.name}'s port allow-list (${answer.ports.join(', ') || 'empty'}); ` +
        'connections to it are refused until an admin adds it\n',
    );
  }
}

interface PortAccess {
  port: number;
  allowed: boolean;
  ports: number[];
}

interface TunnelSetup {
  io: CliIo;
  server: string;
  token: string;
  /** The profile's saved CA (see `Credentials.ca`). */
  ca: string | undefined;
  device: Device;
  mappings: PortMapping[];
  bind: string;
}

/** Why a connection to the device port could not be made: said once per local connection. */
class StreamRefused extends Error {
  constructor(
    message: string,
    /** The server no longer takes the sign-in: no later connection will work either. */
    readonly signedOut = false,
  ) {
    super(message);
  }
}

/**
 * One connection to the server per local connection: `GET /api/v1/devices/:uuid/ports/:port` with
 * `Upgrade: fleetgate-stream`; once the device accepted the port, the server answers 101 and the connection
 * carries the port's bytes. Resolves to that connection, or rejects with the server's reason.
 */
function openPortStream(setup: TunnelSetup, port: number): Promise<Duplex> {
  const url = new URL(`/api/v1/devices/${setup.device.uuid}/ports/${port}`, setup.server);
  const request = (url.protocol === 'https:' ? https : http).request(url, {
    headers: {
      authorization: `Bearer ${setup.token}`,
      connection: 'Upgrade',
      upgrade: 'fleetgate-stream',
    },
    agent: false,
    ...(setup.ca ? { ca: trustedCas(setup.ca) } : {}),
  });
  return new Promise((resolve, reject) => {
    request.once('upgrade', (_response, socket, head) => {
      socket.setNoDelay(true);
      if (head.length) socket.unshift(head);
      resolve(socket);
    });
    request.once('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.length < 64 && chunks.push(chunk));
      response.once('end', () => {
        let message = `HTTP ${response.statusCode}`;
        try {
          message = JSON.parse(Buffer.concat(chunks).toString('utf8')).error.message ?? message;
        } catch {}
        reject(new StreamRefused(message, response.statusCode === 401));
      });
      response.once('error', () => reject(new StreamRefused(`HTTP ${response.statusCode}`)));
    });
    request.once('error', (error) =>
      reject(new StreamRefused(`cannot reach ${setup.server}: ${error.message}`)),
    );
    request.end();
  });
}

/**
 * Listens on the mapped local ports; each accepted connection becomes its own connection to the server and
 * stream to the device port, so nothing is held open while no local connection is, and a server restart only
 * fails the connections made while it is down. A refusal prints one line and resets the local connection;
 * a sign-in the server no longer takes ends the command. Ends on Ctrl-C.
 */
async function runTunnel(setup: TunnelSetup): Promise<void> {
  const { io, device } = setup;
  const label = `${device.name} (${device.uuid})`;
  let failed!: (error: Error) => void;
  const signedOut = new Promise<never>((_resolve, reject) => {
    failed = reject;
  });
  const listeners: net.Server[] = [];
  const stop = () => failed(new Stopped());
  try {
    for (const mapping of setup.mappings) {
      const listener = net.createServer({ allowHalfOpen: true }, (socket) =>
        forward(setup, socket, mapping, label).catch((error: unknown) => {
          if (error instanceof StreamRefused && error.signedOut) {
            failed(
              new CliError(
                `the server refused your sign-in: ${error.message}; sign in again (fleetgate login)`,
              ),
            );
          }
        }),
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
    if (device.status === 'decommissioned') {
      io.stderr.write(
        `fleetgate: note: ${device.name} is decommissioned: it takes no connections (an admin may delete it)\n`,
      );
    } else if (device.status !== 'online') {
      io.stderr.write(
        `fleetgate: note: ${device.name} is ${device.status}; connections fail until it is online\n`,
      );
    }
    io.stdout.write('press Ctrl-C to stop\n');
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    await signedOut;
  } catch (error) {
    if (!(error instanceof Stopped)) throw error;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    for (const listener of listeners) listener.close();
  }
}

class Stopped extends Error {}

/**
 * One accepted local connection → one stream to the device port; a refusal prints one line and resets the
 * local connection. Rejects with the refusal, for `runTunnel` to see a sign-in the server no longer takes.
 */
async function forward(setup: TunnelSetup, socket: net.Socket, mapping: PortMapping, label: string) {
  socket.on('error', () => {});
  socket.pause();
  let remote: Duplex;
  try {
    remote = await openPortStream(setup, mapping.remote);
  } catch (error) {
    setup.io.stderr.write(
      `fleetgate: a connection to ${label} port ${mapping.remote} was refused: ${(error as Error).message}\n`,
    );
    socket.resetAndDestroy();
    throw error;
  }
  if (socket.destroyed) {
    remote.destroy();
    return;
  }
  const bridged = bridge(socket, remote);
  socket.resume();
  await bridged.catch(() => {});
}
