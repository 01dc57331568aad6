import { execFile, spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Multiplexer, StreamError, type TunnelStream } from '@fleetgate/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthService } from '../../src/features/auth/service.ts';
import { openStream } from '../../src/features/streams/service.ts';
import type { Actor } from '../../src/infra/access/index.ts';
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
    // A stream reset on the way (a terminated session) reaches this end as ECONNRESET.
    socket.on('error', () => {});
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

/** The actor a person's token stands for, as the server authenticates it. */
async function actorOf(token: string): Promise<Actor> {
  const principal = await createAuthService(deps()).authenticate(`Bearer ${token}`, '127.0.0.1');
  return { principal, sourceIp: '127.0.0.1' };
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
    const outsider = await actorOf(seed.people.betaOwner.token);
    expect(
      (await refusedWith(openStream(deps(), server.app.tunnels, outsider, device.uuid, echoPort))).code,
    ).toBe('not_found');
    // An operator of the organization narrowed to alpha-fleet; the device is in ports-fleet.
    const narrowed = await actorOf(seed.people.alphaFleetOperator.token);
    expect(
      (await refusedWith(openStream(deps(), server.app.tunnels, narrowed, device.uuid, echoPort))).code,
    ).toBe('not_found');
  });

  it('refuses viewers with forbidden, and ports outside the allow-list', async () => {
    const viewer = await actorOf(seed.people.alphaViewer.token);
    expect(
      (await refusedWith(openStream(deps(), server.app.tunnels, viewer, device.uuid, echoPort))).code,
    ).toBe('forbidden');
    const operator = await actorOf(seed.people.alphaOperator.token);
    const outside = await refusedWith(openStream(deps(), server.app.tunnels, operator, device.uuid, 22));
    expect(outside.code).toBe('forbidden');
    expect(outside.message).toMatch(/allow-list/);
    expect(outside.details).toMatchObject({ stream: 'not-allowed' });
  });

  it('says clearly that an offline device is offline', async () => {
    const offline = await newDevice(server, 'offline-fleet');
    const operator = await actorOf(seed.people.alphaOperator.token);
    const error = await refusedWith(openStream(deps(), server.app.tunnels, operator, offline.uuid, 22));
    expect(error.code).toBe('unavailable');
    expect(error.message).toMatch(/offline/);
    expect(error.details).toMatchObject({ stream: 'unreachable' });
  });

  it('opens a stream for an operator, to the TCP port on the device', async () => {
    const operator = await actorOf(seed.people.alphaOperator.token);
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
    // A service credential (the OpenSSH bastion's) acts for no one: 403, as on every route not made for it.
    const service = check(
      await server.api('POST', '/api/v1/api-keys', {
        token: server.adminToken,
        body: { name: 'bastion', service: 'openssh' },
      }),
      201,
    );
    expect(await upgradeStatus(service.key)).toBe(403);
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

describe('access taken away while streams are open', () => {
  /** A new operator of the device's organization (narrowed to `fleetIds` when given), signed in. */
  async function newOperator(name: string, fleetIds?: number[]) {
    const email = `${name}-${Math.random().toString(36).slice(2, 8)}@example.test`;
    const created = check(
      await server.api('POST', '/api/v1/orgs/1/members', {
        token: server.adminToken,
        body: { email, role: 'operator', ...(fleetIds ? { fleetIds } : {}) },
      }),
      201,
    );
    return { userId: created.userId as number, token: await server.login(email, created.password) };
  }

  /** An echo stream through the person's tunnel, proven to work, and how it ends. */
  async function liveEcho(token: string) {
    const tunnel = await userTunnel(token);
    const stream = await tunnel.mux.open({ port: echoPort });
    const ended = new Promise<unknown>((resolve) => {
      stream.once('error', resolve);
      stream.once('close', () => resolve('closed without an error'));
    });
    const first = new Promise<string>((resolve) =>
      stream.once('data', (chunk: Buffer) => resolve(chunk.toString())),
    );
    stream.write('still here?');
    expect(await first).toBe('still here?');
    return { ...tunnel, stream, ended };
  }

  it('signing out ends the streams the sign-in held open and refuses new ones', async () => {
    const person = await newOperator('signs-out');
    const { mux, ws, ended } = await liveEcho(person.token);
    check(await server.api('POST', '/api/v1/auth/logout', { token: person.token }), 204);
    const error = await ended;
    expect(error).toBeInstanceOf(StreamError);
    expect((error as StreamError).reason).toMatch(/access revoked/);
    // The open tunnel gets no new stream either, and the token no longer opens a tunnel.
    const again = await mux.open({ port: echoPort }).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(StreamError);
    expect((again as StreamError).code).toBe('not-allowed');
    expect((again as StreamError).reason).toMatch(/revoked or has expired/);
    ws.close();
    expect(await upgradeStatus(person.token)).toBe(401);
    // The session's end says why.
    await eventually(async () => {
      const sessions = check(
        await server.api('GET', `/api/v1/sessions?deviceId=${device.uuid}&limit=100`, {
          token: server.adminToken,
        }),
        200,
      );
      return sessions.items.some(
        (x: { user: { id: number }; outcome: string | null }) =>
          x.user.id === person.userId && /access revoked/.test(x.outcome ?? ''),
      );
    });
  });

  it("a role lowered to viewer, or a removed membership, ends the person's streams; others go on", async () => {
    const lowered = await newOperator('lowered');
    const removed = await newOperator('removed');
    const bystander = await newOperator('bystander');
    const a = await liveEcho(lowered.token);
    const b = await liveEcho(removed.token);
    const c = await liveEcho(bystander.token);
    check(
      await server.api('PATCH', `/api/v1/orgs/1/members/${lowered.userId}`, {
        token: server.adminToken,
        body: { role: 'viewer' },
      }),
      200,
    );
    expect(((await a.ended) as StreamError).reason).toMatch(/may no longer reach this device/);
    check(
      await server.api('DELETE', `/api/v1/orgs/1/members/${removed.userId}`, { token: server.adminToken }),
      204,
    );
    expect(await b.ended).toBeInstanceOf(StreamError);
    // The bystander's stream still echoes.
    const echoed = new Promise<string>((resolve) =>
      c.stream.once('data', (chunk: Buffer) => resolve(chunk.toString())),
    );
    c.stream.write('and me?');
    expect(await echoed).toBe('and me?');
    for (const t of [a, b, c]) t.ws.close();
  });

  /** How `ended` settles, or a note that the stream was still open after `ms`: a failure, not a hang. */
  function within(ended: Promise<unknown>, ms = 5000): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      ended,
      new Promise((resolve) => {
        timer = setTimeout(() => resolve(`still open after ${ms} ms`), ms);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /** Sets the device's own port allow-list (null: its fleet's), as an administrator. */
  async function setDevicePorts(ports: number[] | null) {
    check(
      await server.api('PUT', `/api/v1/devices/${device.uuid}/allowed-ports`, {
        token: server.adminToken,
        body: { ports },
      }),
      200,
    );
  }

  /** The device's stream to the HTTP server answers a request: it is still relayed. */
  async function stillAnswers(stream: TunnelStream) {
    const answered = new Promise<string>((resolve) =>
      stream.once('data', (chunk: Buffer) => resolve(chunk.toString())),
    );
    stream.write('GET / HTTP/1.1\r\nHost: device\r\n\r\n');
    expect(await answered).toMatch(/^HTTP\/1\.1 200/);
  }

  it("moving the device to another fleet ends the streams of a member narrowed to its old fleet, not others'", async () => {
    const narrowed = await newOperator('narrowed', [device.fleetId]);
    const whole = await newOperator('whole-org');
    const a = await liveEcho(narrowed.token);
    const b = await liveEcho(whole.token);
    try {
      check(
        await server.api('PATCH', `/api/v1/devices/${device.uuid}`, {
          token: server.adminToken,
          body: { fleetId: seed.alpha.fleet.id },
        }),
        200,
      );
      const error = await within(a.ended);
      expect(error).toBeInstanceOf(StreamError);
      expect((error as StreamError).reason).toMatch(/^access revoked: the person may no longer reach/);
      // The operator of the whole organization reaches the device in its new fleet: their stream goes on.
      const echoed = new Promise<string>((resolve) =>
        b.stream.once('data', (chunk: Buffer) => resolve(chunk.toString())),
      );
      b.stream.write('moved with it');
      expect(await echoed).toBe('moved with it');
      await eventually(async () => {
        const sessions = check(
          await server.api('GET', `/api/v1/sessions?device=${device.uuid}&limit=100`, {
            token: server.adminToken,
          }),
          200,
        );
        return sessions.items.some(
          (x: { user: { id: number }; outcome: string | null }) =>
            x.user.id === narrowed.userId && /access revoked/.test(x.outcome ?? ''),
        );
      });
    } finally {
      check(
        await server.api('PATCH', `/api/v1/devices/${device.uuid}`, {
          token: server.adminToken,
          body: { fleetId: device.fleetId },
        }),
        200,
      );
      for (const t of [a, b]) t.ws.close();
    }
  });

  it("taking a port off the device's or the fleet's allow-list ends the streams to it, not to other ports", async () => {
    const person = await newOperator('ports');
    const toEcho = await liveEcho(person.token);
    const toWeb = await userTunnel(person.token);
    // The HTTP server keeps the connection between requests longer than this test takes.
    web.keepAliveTimeout = 30_000;
    const webStream = await toWeb.mux.open({ port: webPort });
    webStream.on('error', () => {});
    try {
      // The device's own list.
      await setDevicePorts([webPort, closedPort]);
      const error = await within(toEcho.ended);
      expect(error).toBeInstanceOf(StreamError);
      expect((error as StreamError).reason).toBe(
        `access revoked: port ${echoPort} is no longer on the device's port allow-list`,
      );
      await stillAnswers(webStream);

      // The fleet's list, which the device follows once it has none of its own.
      check(
        await server.api('PUT', `/api/v1/fleets/${device.fleetId}/allowed-ports`, {
          token: server.adminToken,
          body: { ports: [echoPort, webPort] },
        }),
        200,
      );
      await setDevicePorts(null);
      const again = await liveEcho(person.token);
      check(
        await server.api('PUT', `/api/v1/fleets/${device.fleetId}/allowed-ports`, {
          token: server.adminToken,
          body: { ports: [webPort] },
        }),
        200,
      );
      const ended = await within(again.ended);
      again.ws.close();
      expect(ended).toBeInstanceOf(StreamError);
      expect((ended as StreamError).reason).toMatch(/^access revoked: port \d+ is no longer/);
      await stillAnswers(webStream);
    } finally {
      check(
        await server.api('PUT', `/api/v1/fleets/${device.fleetId}/allowed-ports`, {
          token: server.adminToken,
          body: { ports: null },
        }),
        200,
      );
      await setDevicePorts([echoPort, webPort, closedPort]);
      toEcho.ws.close();
      toWeb.ws.close();
    }
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
      // A port the device's allow-list does not hold: a note at start; then each connection is reset and the
      // CLI says why.
      expect(stderr).toMatch(/note: port 22 is not on .*'s port allow-list/);
      await execFileAsync('curl', ['-sS', '--max-time', '10', `http://127.0.0.1:${ports[2]!.local}/`]).catch(
        () => {},
      );
      await eventually(
        () =>
          /a connection to .* port 22 was refused: port 22 is not on the device's port allow-list/.test(
            stderr,
          ),
        5000,
        `the refusal line (${stderr})`,
      );
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
