import { type ChildProcess, type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import {
  type AgentMessage,
  bridge,
  type ConnectionClose,
  HEADER_SIZE,
  MAX_FRAME_PAYLOAD,
  Multiplexer,
  type ServerMessage,
  StreamErrorCode,
} from '@fleetgate/protocol';
import WebSocket from 'ws';
import type { Role } from '../../src/infra/access/index.ts';
import { check } from '../api/helpers.ts';
import { createProvisioningKey, registerNewDevice } from '../enrollment/helpers.ts';
import { startTestServer, type TestServer } from '../harness.ts';

/**
 * A test server listening on 127.0.0.1 (so WebSockets can reach it), with short tunnel timings: pings every
 * 300 ms, but 2 s to answer one, so that a test agent on a loaded CI machine is not dropped mid-test.
 * `overrides` replace any of these (a longer time to answer for an agent the test stops reading, say).
 */
export async function startTunnelServer(
  overrides: Parameters<typeof startTestServer>[0] = {},
): Promise<TestServer & { baseUrl: string; wsUrl: string }> {
  const server = await startTestServer({
    tunnelPingIntervalMs: 300,
    tunnelPingTimeoutMs: 2000,
    presenceFlushMs: 50,
    ...overrides,
  });
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  const address = server.app.server.address() as net.AddressInfo;
  const baseUrl = `http://127.0.0.1:${address.port}`;
  return { ...server, baseUrl, wsUrl: `ws://127.0.0.1:${address.port}` };
}

export function basicAuth(uuid: string, key: string): string {
  return `Basic ${Buffer.from(`${uuid}:${key}`).toString('base64')}`;
}

/** A registered device in a new fleet of the default organization. */
export async function newDevice(
  server: TestServer,
  fleetName = `fleet-${Math.random().toString(36).slice(2, 8)}`,
) {
  const fleet = check(
    await server.api('POST', '/api/v1/fleets', {
      token: server.adminToken,
      body: { orgId: 1, name: fleetName, defaultDeviceType: 'raspberrypi4-64' },
    }),
    201,
  );
  const { key } = await createProvisioningKey(server, fleet.id);
  const device = await registerNewDevice(server, key);
  return { fleetId: fleet.id as number, ...device, authorization: basicAuth(device.uuid, device.apiKey) };
}

/** Sets the device's own port allow-list (null: it follows its fleet's), as an administrator. */
export async function setDevicePorts(
  server: TestServer,
  uuid: string,
  ports: number[] | null,
): Promise<void> {
  check(
    await server.api('PUT', `/api/v1/devices/${uuid}/allowed-ports`, {
      token: server.adminToken,
      body: { ports },
    }),
    200,
  );
}

/** Sets a fleet's port allow-list (null: back to the default, [22]), as an administrator. */
export async function setFleetPorts(
  server: TestServer,
  fleetId: number,
  ports: number[] | null,
): Promise<void> {
  check(
    await server.api('PUT', `/api/v1/fleets/${fleetId}/allowed-ports`, {
      token: server.adminToken,
      body: { ports },
    }),
    200,
  );
}

/**
 * A registered device in a new fleet `fleetName`, with `ports` as its own port allow-list, and a `TestAgent`
 * connected for it that has had its variables: the device is online and takes streams to those ports.
 */
export async function onlineDevice(
  server: TestServer & { wsUrl: string },
  fleetName: string,
  ports: number[],
) {
  const device = await newDevice(server, fleetName);
  await setDevicePorts(server, device.uuid, ports);
  const agent = await TestAgent.connect(server.wsUrl, device.authorization);
  await agent.waitFor(isVariables);
  return { device, agent };
}

/**
 * A new member of organization 1 (the default one) with `role`, narrowed to `fleetIds` when given, signed in.
 * `name` starts their e-mail address (default: the role), which a random suffix makes unique.
 */
export async function newMember(
  server: TestServer,
  options: { role: Role; fleetIds?: number[]; name?: string },
) {
  const email = `${options.name ?? options.role}-${Math.random().toString(36).slice(2, 8)}@example.test`;
  const created = check(
    await server.api('POST', '/api/v1/orgs/1/members', {
      token: server.adminToken,
      body: { email, role: options.role, ...(options.fleetIds ? { fleetIds: options.fleetIds } : {}) },
    }),
    201,
  );
  return { email, userId: created.userId as number, token: await server.login(email, created.password) };
}

/** Listens on 127.0.0.1, on a port the system picks; resolves with that port. */
export async function listen(service: net.Server): Promise<number> {
  await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
  return (service.address() as net.AddressInfo).port;
}

/** A TCP server on 127.0.0.1 that sends back what it receives, and the port it listens on. */
export async function startEchoService(): Promise<{ service: net.Server; port: number }> {
  const service = net.createServer({ allowHalfOpen: true }, (socket) => {
    // Echoes, and ends its side when the client ends its own: half-close crosses the tunnel both ways.
    socket.pipe(socket);
    // A stream reset on the way (a terminated session) reaches this end as ECONNRESET.
    socket.on('error', () => {});
  });
  return { service, port: await listen(service) };
}

/**
 * A port on 127.0.0.1 that nothing listens on (one the system handed out, closed again): connections to it are
 * refused.
 */
export async function unusedPort(): Promise<number> {
  const probe = net.createServer();
  const port = await listen(probe);
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

const cliBin = fileURLToPath(new URL('../../../cli/bin/fleetgate.js', import.meta.url));

/** A running `fleetgate`: what it printed so far, and its exit status once it has exited. */
export interface RunningCli<Child extends ChildProcess = ChildProcess> {
  child: Child;
  stdout(): string;
  stderr(): string;
  /** The exit status, once the process has exited and its output has all been read. */
  exited: Promise<number | null>;
}

/** Options of `runCli`. */
export interface CliOptions {
  /**
   * Its environment (default: this process's). FLEETGATE_CONFIG_DIR is always set, to a directory that does not
   * exist, so that no sign-in saved on this machine is read.
   */
  env?: NodeJS.ProcessEnv;
  /** `pipe` gives the test its standard input (`child.stdin`); by default it has none. */
  stdin?: 'pipe' | 'ignore';
}

/** Runs the real CLI (`packages/cli/bin/fleetgate.js`) with `args`, as a child process of this Node. */
export function runCli(
  args: string[],
  options: CliOptions & { stdin: 'pipe' },
): RunningCli<ChildProcessWithoutNullStreams>;
export function runCli(args: string[], options?: CliOptions & { stdin?: 'ignore' }): RunningCli;
export function runCli(args: string[], options: CliOptions = {}): RunningCli {
  const child = spawn(process.execPath, [cliBin, ...args], {
    env: { ...(options.env ?? process.env), FLEETGATE_CONFIG_DIR: '/nonexistent-fleetgate-test' },
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  // 'close', not 'exit': its output may still be in the pipes when the process exits.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** The answer to a refused upgrade. */
export class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly body: { error: { code: string; message: string } },
  ) {
    super(`upgrade refused: ${status} ${JSON.stringify(body)}`);
  }
}

/** Opens a WebSocket; resolves once open, rejects with `UpgradeRefused` on a plain HTTP answer. */
export function openSocket(url: string, headers: Record<string, string>): Promise<WebSocket> {
  return opened(newSocket(url, headers));
}

export function newSocket(url: string, headers: Record<string, string>): WebSocket {
  return new WebSocket(url, {
    headers,
    perMessageDeflate: false,
    maxPayload: HEADER_SIZE + MAX_FRAME_PAYLOAD,
  });
}

/**
 * Resolves when `ws` is open. Message listeners must be attached before: the server's first frames can come
 * in the same packet as the upgrade answer, and are emitted in the same tick as 'open'.
 */
export function opened(ws: WebSocket): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_request, response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: UpgradeRefused['body'];
        try {
          body = JSON.parse(text);
        } catch {
          body = { error: { code: 'not-json', message: text } };
        }
        reject(new UpgradeRefused(response.statusCode ?? 0, body));
      });
    });
  });
}

/**
 * A minimal device agent: the protocol over `ws`, answering pings, bridging streams to 127.0.0.1:<port>, and
 * keeping every control message and the close for the test to look at.
 */
export class TestAgent {
  readonly messages: ServerMessage[] = [];
  readonly closed: Promise<ConnectionClose & { wsCode: number }>;
  readonly mux: Multiplexer<'agent'>;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    let wsClosed!: (code: number) => void;
    const wsCode = new Promise<number>((resolve) => {
      wsClosed = resolve;
    });
    let muxClosed!: (close: ConnectionClose) => void;
    const muxClose = new Promise<ConnectionClose>((resolve) => {
      muxClosed = resolve;
    });
    this.closed = Promise.all([muxClose, wsCode]).then(([close, code]) => ({ ...close, wsCode: code }));
    this.mux = new Multiplexer({
      role: 'agent',
      software: 'test-agent/1.0',
      send: (frame) => ws.send(frame),
      onControl: (message) => {
        this.messages.push(message);
        for (const wake of this.waiters.splice(0)) wake();
      },
      onStream: (open) => {
        if (!('port' in open.target)) return open.reject(StreamErrorCode.notAllowed, 'ports only');
        const socket = net.connect({ port: open.target.port, host: '127.0.0.1', allowHalfOpen: true });
        let accepted = false;
        socket.once('connect', () => {
          accepted = true;
          const stream = open.accept();
          bridge(socket, stream).catch(() => {});
        });
        socket.once('error', (error: NodeJS.ErrnoException) => {
          if (!accepted)
            open.reject(
              error.code === 'ECONNREFUSED' ? StreamErrorCode.refused : StreamErrorCode.unreachable,
              error.message,
            );
        });
      },
      onClose: (close) => {
        muxClosed(close);
        ws.close(close.code, close.reason.slice(0, 100));
      },
    });
    ws.on('message', (data, isBinary) => (isBinary ? this.mux.receive(data as Buffer) : undefined));
    ws.on('close', (code) => {
      wsClosed(code);
      this.mux.transportClosed();
    });
    ws.on('error', () => {});
  }

  static async connect(wsUrl: string, authorization: string): Promise<TestAgent> {
    const ws = newSocket(`${wsUrl}/api/v1/tunnel`, { authorization, 'x-fleetgate-agent': 'test-agent/1.0' });
    const agent = new TestAgent(ws);
    await opened(ws);
    agent.mux.start();
    return agent;
  }

  /** The first control message (from index `from` on) that satisfies `test`, waiting up to `ms`. */
  async waitFor<T extends ServerMessage>(
    test: (m: ServerMessage) => m is T,
    from = 0,
    ms = 3000,
  ): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.messages.slice(from).find(test);
      if (found) return found;
      if (Date.now() > deadline)
        throw new Error(`no such control message; got ${JSON.stringify(this.messages)}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  send(message: Exclude<AgentMessage, { type: 'hello' }>): void {
    this.mux.sendControl(message);
  }

  close(): void {
    this.mux.close(4000, 'test done');
  }
}

export const isVariables = (m: ServerMessage): m is Extract<ServerMessage, { type: 'variables' }> =>
  m.type === 'variables';

/** Polls `probe` until it answers true, up to `ms`. */
export async function eventually(
  probe: () => Promise<boolean> | boolean,
  ms = 3000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A stream to a device port, opened; or the server's refusal. */
export type PortStreamAnswer =
  | { socket: Duplex; headers: http.IncomingHttpHeaders }
  | { status: number; error: { code: string; message: string; details?: unknown } };

/**
 * A person's stream to a device port, as `fleetgate tunnel` opens one: `GET /api/v1/devices/:ref/ports/:port`
 * with `Upgrade: fleetgate-stream`. `first` is written right behind the request, as a client that does not
 * wait for the answer would; `upgrade` replaces the protocol asked for.
 */
export function requestPortStream(
  baseUrl: string,
  token: string | undefined,
  ref: string,
  port: number | string,
  options: { upgrade?: string; first?: string } = {},
): Promise<PortStreamAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request(`${baseUrl}/api/v1/devices/${ref}/ports/${port}`, {
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        connection: 'Upgrade',
        upgrade: options.upgrade ?? 'fleetgate-stream',
      },
      agent: false,
    });
    request.once('upgrade', (response, socket, head) => {
      if (head.length) socket.unshift(head);
      resolve({ socket, headers: response.headers });
    });
    request.once('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.once('end', () =>
        resolve({ status: response.statusCode ?? 0, ...JSON.parse(Buffer.concat(chunks).toString()) }),
      );
    });
    request.once('error', reject);
    if (options.first) request.write(options.first);
    request.end();
  });
}

/** The stream `answer` opened; throws with the server's refusal when it refused. */
export function streamOpened(answer: PortStreamAnswer) {
  if ('status' in answer) throw new Error(`refused: ${answer.status} ${answer.error.message}`);
  return answer;
}

/**
 * A person's stream to an echo server on the device, proven to echo, with its session's id and how it ends: the
 * socket's error (`ECONNRESET` when the server resets it, as when access is taken away) or a note that it closed
 * without one.
 */
export async function liveEcho(baseUrl: string, token: string, ref: string, port: number) {
  const { socket, headers } = streamOpened(await requestPortStream(baseUrl, token, ref, port));
  const ended = new Promise<unknown>((resolve) => {
    socket.once('error', resolve);
    socket.once('close', () => resolve('closed without an error'));
  });
  const first = new Promise<string>((resolve) =>
    socket.once('data', (chunk: Buffer) => resolve(chunk.toString())),
  );
  socket.write('still here?');
  const echoed = await first;
  if (echoed !== 'still here?') throw new Error(`the stream echoed ${JSON.stringify(echoed)}`);
  return { socket, sessionId: String(headers['fleetgate-session']), ended };
}

/** How `ended` settles, or a note that it had not after `ms`: a failure, not a hang. */
export function within(ended: Promise<unknown>, ms = 5000): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    ended,
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(`still open after ${ms} ms`), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** How session `id` ended, as `GET /api/v1/sessions/:id` records it, once it has (waiting up to `ms`). */
export async function sessionOutcome(server: TestServer, id: string, ms = 5000): Promise<string> {
  let outcome = '';
  await eventually(
    async () => {
      const session = check(
        await server.api('GET', `/api/v1/sessions/${id}`, { token: server.adminToken }),
        200,
      );
      if (session.live) return false;
      outcome = session.outcome;
      return true;
    },
    ms,
    `session ${id} to end`,
  );
  return outcome;
}
