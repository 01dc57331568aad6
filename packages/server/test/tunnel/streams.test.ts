import { execFile, spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Multiplexer, StreamError, type TunnelStream } from '@fleetgate/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStream } from '../../src/features/streams/service.ts';
import type { Actor, Membership } from '../../src/infra/access/index.ts';
import { AppError } from '../../src/infra/errors/index.ts';
import { createLogger } from '../../src/infra/logging/index.ts';
import type { ServiceDeps } from '../../src/infra/service/index.ts';
import { check } from '../api/helpers.ts';
import { seedTwoOrgs } from '../harness.ts';
import {
  eventually,
  isVariables,
  newDevice,
  newSocket,
  opened,
  startTunnelServer,
  TestAgent,
  UpgradeRefused,
} from './helpers.ts';

/**
 * People reaching device ports: `openStream`'s rules, the `GET /api/v1/devices/:device/tunnel` WebSocket with a
 * real TCP server behind the in-test agent, and `fleetgate tunnel` as a child process with curl through it.
 */

const execFileAsync = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');

let server: Awaited<ReturnType<typeof startTunnelServer>>;
let seed: Awaited<ReturnType<typeof seedTwoOrgs>>;
let device: Awaited<ReturnType<typeof newDevice>>;
let agent: TestAgent;
let echo: net.Server;
let echoPort: number;
let web: http.Server;
let webPort: number;
let closedPort: number;

async function listen(s: net.Server): Promise<number> {
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return (s.address() as net.AddressInfo).port;
}

beforeAll(async () => {
  server = await startTunnelServer();
  seed = await seedTwoOrgs(server);
  device = await newDevice(server, 'ports-fleet');
  echo = net.createServer({ allowHalfOpen: true }, (socket) => {
    // Echoes, and ends its side when the client ends its own: half-close crosses the tunnel both ways.
    socket.pipe(socket);
  });
  echoPort = await listen(echo);
  web = http.createServer((_request, response) => response.end('hello from the device\n'));
  webPort = await listen(web);
  const probe = net.createServer();
  closedPort = await listen(probe);
  await new Promise((resolve) => probe.close(resolve));
  check(
    await server.api('PUT', `/api/v1/devices/${device.uuid}/allowed-ports`, {
      token: server.adminToken,
      body: { ports: [echoPort, webPort, closedPort] },
    }),
    200,
  );
  agent = await TestAgent.connect(server.wsUrl, device.authorization);
  await agent.waitFor(isVariables);
});

afterAll(async () => {
  agent?.close();
  echo?.close();
  web?.close();
  await server?.close();
});

function actorWith(memberships: Membership[]): Actor {
  return {
    principal: {
      type: 'user',
      userId: 999,
      email: 'someone@example.test',
      serverAdmin: false,
      memberships,
      credential: { type: 'session', id: 0 },
    },
    sourceIp: '127.0.0.1',
  };
}

function deps(): ServiceDeps {
  return {
    db: server.database.db,
    config: server.config,
    log: createLogger('silent'),
    deviceTokens: undefined as never,
  };
}

async function refusedWith(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AppError);
  return error as AppError;
}

describe('openStream', () => {
  it('answers not_found to another organization and to a membership narrowed to other fleets', async () => {
    const outsider = actorWith([{ orgId: seed.beta.orgId, role: 'owner', fleetIds: null }]);
    expect(
      (await refusedWith(openStream(deps(), server.app.tunnels, outsider, device.uuid, echoPort))).code,
    ).toBe('not_found');
    const narrowed = actorWith([{ orgId: 1, role: 'operator', fleetIds: [seed.alpha.fleet.id] }]);
    expect(
      (await refusedWith(openStream(deps(), server.app.tunnels, narrowed, device.uuid, echoPort))).code,
    ).toBe('not_found');
  });

  it('refuses viewers with forbidden, and ports outside the allow-list', async () => {
    const viewer = actorWith([{ orgId: 1, role: 'viewer', fleetIds: null }]);
    expect(
      (await refusedWith(openStream(deps(), server.app.tunnels, viewer, device.uuid, echoPort))).code,
    ).toBe('forbidden');
    const operator = actorWith([{ orgId: 1, role: 'operator', fleetIds: null }]);
    const outside = await refusedWith(openStream(deps(), server.app.tunnels, operator, device.uuid, 22));
    expect(outside.code).toBe('forbidden');
    expect(outside.message).toMatch(/allow-list/);
    expect(outside.details).toMatchObject({ stream: 'not-allowed' });
  });

  it('says clearly that an offline device is offline', async () => {
    const offline = await newDevice(server, 'offline-fleet');
    const operator = actorWith([{ orgId: 1, role: 'operator', fleetIds: null }]);
    const error = await refusedWith(openStream(deps(), server.app.tunnels, operator, offline.uuid, 22));
    expect(error.code).toBe('unavailable');
    expect(error.message).toMatch(/offline/);
    expect(error.details).toMatchObject({ stream: 'unreachable' });
  });

  it('opens a stream for an operator, to the TCP port on the device', async () => {
    const operator = actorWith([{ orgId: 1, role: 'operator', fleetIds: null }]);
    const session = await openStream(deps(), server.app.tunnels, operator, device.uuid, echoPort);
    const back: Buffer[] = [];
    session.stream.on('data', (chunk: Buffer) => back.push(chunk));
    session.stream.end('abc');
    await new Promise((resolve) => session.stream.once('end', resolve));
    expect(Buffer.concat(back).toString()).toBe('abc');
  });
});

/** A person's tunnel: the CLI's side of the protocol, over `ws`. */
async function userTunnel(token: string | undefined, ref = device.uuid) {
  const ws = newSocket(
    `${server.wsUrl}/api/v1/devices/${ref}/tunnel`,
    token ? { authorization: `Bearer ${token}` } : {},
  );
  const mux = new Multiplexer({ role: 'server', send: (frame) => ws.send(frame) });
  ws.on('message', (data, isBinary) => isBinary && mux.receive(data as Buffer));
  ws.on('close', () => mux.transportClosed());
  ws.on('error', () => {});
  await opened(ws);
  mux.start();
  return { ws, mux };
}

async function upgradeStatus(token: string | undefined, ref = device.uuid): Promise<number> {
  const error = await userTunnel(token, ref).then(
    ({ ws }) => {
      ws.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UpgradeRefused);
  return (error as UpgradeRefused).status;
}

function collect(stream: TunnelStream): Promise<string> {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve, reject) => {
    stream.once('end', () => resolve(Buffer.concat(chunks).toString()));
    stream.once('error', reject);
  });
}

describe('GET /api/v1/devices/:device/tunnel', () => {
  it('refuses the upgrade without a token (401), to another organization (404) and to a viewer (403)', async () => {
    expect(await upgradeStatus(undefined)).toBe(401);
    expect(await upgradeStatus(seed.people.betaOwner.token)).toBe(404);
    expect(await upgradeStatus(seed.people.alphaViewer.token)).toBe(403);
    expect(await upgradeStatus(server.adminToken, 'not-a-device')).toBe(404);
  });

  it("relays a stream to a TCP server on the device, half-close included, and audits the session's bytes", async () => {
    const { mux, ws } = await userTunnel(seed.people.alphaOperator.token);
    const stream = await mux.open({ port: echoPort });
    const answer = collect(stream);
    stream.write('ping ');
    stream.end('pong');
    expect(await answer).toBe('ping pong');
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    const second = await mux.open({ port: echoPort });
    const echoed = new Promise<number>((resolve, reject) => {
      let n = 0;
      second.on('data', (chunk: Buffer) => {
        n += chunk.length;
      });
      second.once('end', () => resolve(n));
      second.once('error', reject);
    });
    second.end(big);
    expect(await echoed).toBe(big.length);
    await eventually(
      async () => {
        const events = check(
          await server.api('GET', `/api/v1/audit?action=device.stream.close&resourceId=${device.uuid}`, {
            token: server.adminToken,
          }),
          200,
        );
        return events.items.some(
          (e: { details: { bytesToDevice?: number; bytesFromDevice?: number } | null }) =>
            e.details?.bytesToDevice === big.length && e.details?.bytesFromDevice === big.length,
        );
      },
      3000,
      'the audit event with the byte counts',
    );
    ws.close();
  });

  it('refuses streams with the reason: not on the allow-list, nothing listening, offline device', async () => {
    const { mux, ws } = await userTunnel(seed.people.alphaOperator.token);
    const notAllowed = await mux.open({ port: 22 }).catch((e: unknown) => e);
    expect(notAllowed).toBeInstanceOf(StreamError);
    expect((notAllowed as StreamError).code).toBe('not-allowed');
    const refused = await mux.open({ port: closedPort }).catch((e: unknown) => e);
    expect((refused as StreamError).code).toBe('refused');
    const named = await mux.open({ service: 'ssh' }).catch((e: unknown) => e);
    expect((named as StreamError).code).toBe('not-allowed');
    ws.close();

    const offline = await newDevice(server, 'offline-fleet-2');
    const other = await userTunnel(server.adminToken, offline.uuid);
    const unreachable = await other.mux.open({ port: 22 }).catch((e: unknown) => e);
    expect((unreachable as StreamError).code).toBe('unreachable');
    expect((unreachable as StreamError).reason).toMatch(/offline/);
    other.ws.close();
  });
});

describe('fleetgate tunnel', () => {
  it('forwards a local port to the device: curl reaches the HTTP server on the device', async () => {
    const { name } = check(
      await server.api('GET', `/api/v1/devices/${device.uuid}`, { token: server.adminToken }),
      200,
    );
    const child = spawn(
      process.execPath,
      [
        path.join(repoRoot, 'packages/cli/bin/fleetgate.js'),
        'tunnel',
        name,
        `0:${webPort}`,
        `0:${echoPort + 0}`,
        '0:22',
        '--server',
        server.baseUrl,
        '--token',
        seed.people.alphaOperator.token,
      ],
      {
        env: { ...process.env, FLEETGATE_CONFIG_DIR: '/nonexistent-fleetgate-test' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await eventually(
        () => /press Ctrl-C/.test(stdout) || child.exitCode !== null,
        20_000,
        `the CLI to listen (${stderr})`,
      );
      const ports = [...stdout.matchAll(/forwarding 127\.0\.0\.1:(\d+) → .* port (\d+)/g)].map((m) => ({
        local: Number(m[1]),
        remote: Number(m[2]),
      }));
      expect(ports.map((p) => p.remote)).toEqual([webPort, echoPort, 22]);
      const { stdout: body } = await execFileAsync('curl', [
        '-sS',
        '--max-time',
        '10',
        `http://127.0.0.1:${ports[0]!.local}/`,
      ]);
      expect(body).toBe('hello from the device\n');
      // A port the device's allow-list does not hold: the connection is reset and the CLI says why.
      await execFileAsync('curl', ['-sS', '--max-time', '10', `http://127.0.0.1:${ports[2]!.local}/`]).catch(
        () => {},
      );
      await eventually(() => /port 22: not-allowed/.test(stderr), 5000, `the refusal line (${stderr})`);
      // Half-close through the CLI: the echo answers everything and ends after our end.
      const socket = net.connect(ports[1]!.local, '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.end('through the cli');
      await new Promise((resolve) => socket.once('end', resolve));
      expect(Buffer.concat(chunks).toString()).toBe('through the cli');
    } finally {
      child.kill('SIGINT');
      expect(await exited).toBe(0);
    }
  }, 60_000);

  it('prints a one-line reason when the server refuses the tunnel', async () => {
    const result = await execFileAsync(
      process.execPath,
      [
        path.join(repoRoot, 'packages/cli/bin/fleetgate.js'),
        'tunnel',
        device.uuid,
        '0:22',
        '--server',
        server.baseUrl,
        '--token',
        seed.people.alphaViewer.token,
      ],
      { env: { ...process.env, FLEETGATE_CONFIG_DIR: '/nonexistent-fleetgate-test' } },
    ).catch((e: { code: number; stderr: string }) => e);
    expect((result as { code: number }).code).toBe(1);
    expect((result as { stderr: string }).stderr).toMatch(
      /^fleetgate: the server refused the tunnel to .*: your role \(viewer\)/m,
    );
  }, 30_000);
});
