import { execFile } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthService } from '../../src/features/auth/service.ts';
import type { StreamRequest } from '../../src/features/remote-access/index.ts';
import type { Actor } from '../../src/infra/access/index.ts';
import { AppError } from '../../src/infra/errors/index.ts';
import type { ServiceDeps } from '../../src/infra/service/index.ts';
import { check } from '../api/helpers.ts';
import { seedTwoOrgs } from '../harness.ts';
import {
  eventually,
  listen,
  liveEcho,
  newDevice,
  newMember,
  onlineDevice,
  requestPortStream,
  runCli,
  sessionOutcome,
  setDevicePorts,
  setFleetPorts,
  startEchoService,
  startTunnelServer,
  streamOpened,
  type TestAgent,
  within,
} from './helpers.ts';

/**
 * People reaching device ports: the stream router's rules, access taken away from streams that are open (streams opened
 * as `fleetgate tunnel` opens them, with real TCP servers behind the in-test agent), and `fleetgate tunnel` as a
 * child process with curl through it.
 */

const execFileAsync = promisify(execFile);

let server: Awaited<ReturnType<typeof startTunnelServer>>;
let seed: Awaited<ReturnType<typeof seedTwoOrgs>>;
let device: Awaited<ReturnType<typeof newDevice>>;
let agent: TestAgent;
let echo: net.Server;
let echoPort: number;
let web: http.Server;
let webPort: number;

beforeAll(async () => {
  server = await startTunnelServer();
  seed = await seedTwoOrgs(server);
  ({ service: echo, port: echoPort } = await startEchoService());
  web = http.createServer((_request, response) => response.end('hello from the device\n'));
  webPort = await listen(web);
  ({ device, agent } = await onlineDevice(server, 'ports-fleet', [echoPort, webPort]));
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

/** Asks the app's stream router for a stream to `port` on the device, as `fleetgate tunnel` would. */
function openStream(actor: Actor, uuid: string, port: number) {
  const request: StreamRequest = {
    caller: { actor },
    device: { ref: uuid },
    target: port,
    surface: 'tunnel',
  };
  return server.app.streamRouter.open(request);
}

/** The services' dependencies of the app under test. */
function deps(): ServiceDeps {
  return server.app.deps;
}

async function refusedWith(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AppError);
  return error as AppError;
}

describe('the stream router', () => {
  it('answers not_found to another organization and to a membership narrowed to other fleets', async () => {
    const outsider = await actorOf(seed.people.betaOwner.token);
    expect((await refusedWith(openStream(outsider, device.uuid, echoPort))).code).toBe('not_found');
    // An operator of the organization narrowed to alpha-fleet; the device is in ports-fleet.
    const narrowed = await actorOf(seed.people.alphaFleetOperator.token);
    expect((await refusedWith(openStream(narrowed, device.uuid, echoPort))).code).toBe('not_found');
  });

  it('refuses viewers with forbidden, and ports outside the allow-list', async () => {
    const viewer = await actorOf(seed.people.alphaViewer.token);
    expect((await refusedWith(openStream(viewer, device.uuid, echoPort))).code).toBe('forbidden');
    const operator = await actorOf(seed.people.alphaOperator.token);
    const outside = await refusedWith(openStream(operator, device.uuid, 22));
    expect(outside.code).toBe('forbidden');
    expect(outside.message).toMatch(/allow-list/);
    expect(outside.details).toMatchObject({ stream: 'not-allowed' });
  });

  it('says clearly that an offline device is offline', async () => {
    const offline = await newDevice(server, 'offline-fleet');
    const operator = await actorOf(seed.people.alphaOperator.token);
    const error = await refusedWith(openStream(operator, offline.uuid, 22));
    expect(error.code).toBe('unavailable');
    expect(error.message).toMatch(/offline/);
    expect(error.details).toMatchObject({ stream: 'unreachable' });
  });

  it('opens a stream for an operator, to the TCP port on the device', async () => {
    const operator = await actorOf(seed.people.alphaOperator.token);
    const session = await openStream(operator, device.uuid, echoPort);
    const back: Buffer[] = [];
    session.stream.on('data', (chunk: Buffer) => back.push(chunk));
    session.stream.end('abc');
    await new Promise((resolve) => session.stream.once('end', resolve));
    expect(Buffer.concat(back).toString()).toBe('abc');
  });
});

describe('access taken away while streams are open', () => {
  // Signing out ends them too: tested with the endpoint's own tests, in port-streams.test.ts.

  /** A stream to the device's echo server as `token`, proven to echo (see `liveEcho`). */
  function echoAs(token: string) {
    return liveEcho(server.baseUrl, token, device.uuid, echoPort);
  }

  /** The first chunk `socket` receives once `text` is written; fails at once when the stream ends instead. */
  function answerTo(socket: Duplex, text: string): Promise<string> {
    return new Promise((resolve, reject) => {
      if (socket.destroyed) return reject(new Error('the stream had ended'));
      const ended = () => reject(new Error('the stream ended instead of answering'));
      socket.once('close', ended);
      socket.once('data', (chunk: Buffer) => {
        socket.off('close', ended);
        resolve(chunk.toString());
      });
      socket.write(text);
    });
  }

  it("a role lowered to viewer, or a removed membership, ends the person's streams; others go on", async () => {
    const lowered = await newMember(server, { role: 'operator', name: 'lowered' });
    const removed = await newMember(server, { role: 'operator', name: 'removed' });
    const bystander = await newMember(server, { role: 'operator', name: 'bystander' });
    const a = await echoAs(lowered.token);
    const b = await echoAs(removed.token);
    const c = await echoAs(bystander.token);
    try {
      check(
        await server.api('PATCH', `/api/v1/orgs/1/members/${lowered.userId}`, {
          token: server.adminToken,
          body: { role: 'viewer' },
        }),
        200,
      );
      expect(await within(a.ended)).toMatchObject({ code: 'ECONNRESET' });
      expect(await sessionOutcome(server, a.sessionId)).toBe(
        'access revoked: the person may no longer reach this device',
      );
      check(
        await server.api('DELETE', `/api/v1/orgs/1/members/${removed.userId}`, { token: server.adminToken }),
        204,
      );
      expect(await within(b.ended)).toMatchObject({ code: 'ECONNRESET' });
      expect(await sessionOutcome(server, b.sessionId)).toMatch(/^access revoked: /);
      expect(await answerTo(c.socket, 'and me?')).toBe('and me?');
    } finally {
      for (const t of [a, b, c]) t.socket.destroy();
    }
  });

  /** The device's HTTP server answers a request on `socket`: the stream is still relayed. */
  async function stillAnswers(socket: Duplex) {
    expect(await answerTo(socket, 'GET / HTTP/1.1\r\nHost: device\r\n\r\n')).toMatch(/^HTTP\/1\.1 200/);
  }

  it("moving the device to another fleet ends the streams of a member narrowed to its old fleet, not others'", async () => {
    const narrowed = await newMember(server, {
      role: 'operator',
      fleetIds: [device.fleetId],
      name: 'narrowed',
    });
    const whole = await newMember(server, { role: 'operator', name: 'whole-org' });
    const a = await echoAs(narrowed.token);
    const b = await echoAs(whole.token);
    try {
      check(
        await server.api('PATCH', `/api/v1/devices/${device.uuid}`, {
          token: server.adminToken,
          body: { fleetId: seed.alpha.fleet.id },
        }),
        200,
      );
      expect(await within(a.ended)).toMatchObject({ code: 'ECONNRESET' });
      expect(await sessionOutcome(server, a.sessionId)).toMatch(
        /^access revoked: the person may no longer reach/,
      );
      // The operator of the whole organization reaches the device in its new fleet: their stream goes on.
      expect(await answerTo(b.socket, 'moved with it')).toBe('moved with it');
    } finally {
      check(
        await server.api('PATCH', `/api/v1/devices/${device.uuid}`, {
          token: server.adminToken,
          body: { fleetId: device.fleetId },
        }),
        200,
      );
      for (const t of [a, b]) t.socket.destroy();
    }
  });

  it("taking a port off the device's or the fleet's allow-list ends the streams to it, not to other ports", async () => {
    const person = await newMember(server, { role: 'operator', name: 'ports' });
    // The HTTP server keeps the connection between requests longer than this test takes.
    web.keepAliveTimeout = 30_000;
    const toEcho = await echoAs(person.token);
    const toWeb = streamOpened(await requestPortStream(server.baseUrl, person.token, device.uuid, webPort));
    toWeb.socket.on('error', () => {});
    let again: Awaited<ReturnType<typeof echoAs>> | undefined;
    try {
      // The device's own list.
      await setDevicePorts(server, device.uuid, [webPort]);
      expect(await within(toEcho.ended)).toMatchObject({ code: 'ECONNRESET' });
      expect(await sessionOutcome(server, toEcho.sessionId)).toBe(
        `access revoked: port ${echoPort} is no longer on the device's port allow-list`,
      );
      await stillAnswers(toWeb.socket);

      // The fleet's list, which the device follows once it has none of its own.
      await setFleetPorts(server, device.fleetId, [echoPort, webPort]);
      await setDevicePorts(server, device.uuid, null);
      again = await echoAs(person.token);
      await setFleetPorts(server, device.fleetId, [webPort]);
      expect(await within(again.ended)).toMatchObject({ code: 'ECONNRESET' });
      expect(await sessionOutcome(server, again.sessionId)).toMatch(/^access revoked: port \d+ is no longer/);
      await stillAnswers(toWeb.socket);
    } finally {
      await setFleetPorts(server, device.fleetId, null);
      await setDevicePorts(server, device.uuid, [echoPort, webPort]);
      for (const socket of [toEcho.socket, toWeb.socket, again?.socket]) socket?.destroy();
    }
  });
});

describe('fleetgate tunnel', () => {
  it('forwards a local port to the device: curl reaches the HTTP server on the device', async () => {
    const { name } = check(
      await server.api('GET', `/api/v1/devices/${device.uuid}`, { token: server.adminToken }),
      200,
    );
    const cli = runCli([
      'tunnel',
      name,
      `0:${webPort}`,
      `0:${echoPort + 0}`,
      '0:22',
      '--server',
      server.baseUrl,
      '--token',
      seed.people.alphaOperator.token,
    ]);
    try {
      await eventually(
        () => /press Ctrl-C/.test(cli.stdout()) || cli.child.exitCode !== null,
        20_000,
        `the CLI to listen (${cli.stderr()})`,
      );
      const ports = [...cli.stdout().matchAll(/forwarding 127\.0\.0\.1:(\d+) → .* port (\d+)/g)].map((m) => ({
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
      expect(cli.stderr()).toMatch(/note: port 22 is not on .*'s port allow-list/);
      await execFileAsync('curl', ['-sS', '--max-time', '10', `http://127.0.0.1:${ports[2]!.local}/`]).catch(
        () => {},
      );
      await eventually(
        () =>
          /a connection to .* port 22 was refused: port 22 is not on the device's port allow-list/.test(
            cli.stderr(),
          ),
        5000,
        `the refusal line (${cli.stderr()})`,
      );
      // Half-close through the CLI: the echo answers everything and ends after our end.
      const socket = net.connect(ports[1]!.local, '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.end('through the cli');
      await new Promise((resolve) => socket.once('end', resolve));
      expect(Buffer.concat(chunks).toString()).toBe('through the cli');
    } finally {
      cli.child.kill('SIGINT');
      expect(await cli.exited).toBe(0);
    }
  }, 60_000);

  it('prints a one-line reason when the server refuses the tunnel', async () => {
    const cli = runCli([
      'tunnel',
      device.uuid,
      '0:22',
      '--server',
      server.baseUrl,
      '--token',
      seed.people.alphaViewer.token,
    ]);
    expect(await cli.exited).toBe(1);
    expect(cli.stderr()).toMatch(/^fleetgate: the server refused the tunnel to .*: your role \(viewer\)/m);
  }, 30_000);
});
