import net from 'node:net';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { check } from '../api/helpers.ts';
import { seedTwoOrgs } from '../harness.ts';
import {
  eventually,
  liveEcho,
  newDevice,
  newMember,
  onlineDevice,
  type PortStreamAnswer,
  requestPortStream,
  runCli,
  sessionOutcome,
  startEchoService,
  startTunnelServer,
  streamOpened,
  type TestAgent,
  unusedPort,
  within,
} from './helpers.ts';

/**
 * People's streams to device ports, one per connection (`fleetgate tunnel`'s way): `GET
 * /api/v1/devices/:device/ports/:port` asks whether I may, and the same URL with `Upgrade: fleetgate-stream`
 * opens the stream, with a real TCP server behind the in-test agent.
 */

let server: Awaited<ReturnType<typeof startTunnelServer>>;
let seed: Awaited<ReturnType<typeof seedTwoOrgs>>;
let device: Awaited<ReturnType<typeof newDevice>>;
let agent: TestAgent;
let echo: net.Server;
let echoPort: number;
let closedPort: number;

beforeAll(async () => {
  server = await startTunnelServer();
  seed = await seedTwoOrgs(server);
  ({ service: echo, port: echoPort } = await startEchoService());
  closedPort = await unusedPort();
  ({ device, agent } = await onlineDevice(server, 'port-streams-fleet', [echoPort, closedPort]));
});

afterAll(async () => {
  agent?.close();
  echo?.close();
  await server?.close();
});

/** Asks for a stream to `port` of the test device as `token` (see `requestPortStream`). */
function portStream(
  token: string | undefined,
  port: number | string,
  options: { ref?: string; upgrade?: string; first?: string } = {},
) {
  return requestPortStream(server.baseUrl, token, options.ref ?? device.uuid, port, options);
}

function refused(result: PortStreamAnswer) {
  if (!('status' in result)) {
    result.socket.destroy();
    throw new Error('the stream opened');
  }
  return result;
}

/** Everything the socket sends until it ends. */
function readAll(socket: Duplex): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve, reject) => {
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
  });
}

describe('GET /api/v1/devices/:device/ports/:port', () => {
  it('tells an operator whether the port is on the allow-list; viewers 403, other organizations 404', async () => {
    const operator = seed.people.alphaOperator.token;
    const allowed = check(
      await server.api('GET', `/api/v1/devices/${device.uuid}/ports/${echoPort}`, { token: operator }),
      200,
    );
    expect(allowed).toMatchObject({ port: echoPort, allowed: true, source: 'device' });
    const off = check(
      await server.api('GET', `/api/v1/devices/${device.uuid}/ports/22`, { token: operator }),
      200,
    );
    expect(off).toMatchObject({
      port: 22,
      allowed: false,
      ports: [echoPort, closedPort].sort((a, b) => a - b),
    });
    const viewer = await server.api('GET', `/api/v1/devices/${device.uuid}/ports/${echoPort}`, {
      token: seed.people.alphaViewer.token,
    });
    expect(viewer.status).toBe(403);
    const outsider = await server.api('GET', `/api/v1/devices/${device.uuid}/ports/${echoPort}`, {
      token: seed.people.betaOwner.token,
    });
    expect(outsider.status).toBe(404);
    expect(
      (await server.api('GET', `/api/v1/devices/${device.uuid}/ports/0`, { token: operator })).status,
    ).toBe(400);
  });
});

describe('Upgrade: fleetgate-stream', () => {
  it('relays the port both ways, half-close included, and records the session and its audit event with its bytes', async () => {
    const { socket, headers } = streamOpened(await portStream(seed.people.alphaOperator.token, echoPort));
    expect(headers.upgrade).toBe('fleetgate-stream');
    const sessionId = headers['fleetgate-session'];
    expect(sessionId).toMatch(/^[0-9a-f]{16}$/);
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    const back = readAll(socket);
    socket.end(big);
    expect((await back).equals(big)).toBe(true);
    await eventually(
      async () => {
        const session = check(
          await server.api('GET', `/api/v1/sessions/${sessionId}`, { token: server.adminToken }),
          200,
        );
        return (
          !session.live &&
          session.surface === 'tunnel' &&
          session.port === echoPort &&
          session.bytesToDevice === big.length &&
          session.bytesFromDevice === big.length &&
          session.outcome === 'closed'
        );
      },
      5000,
      'the session recorded as closed with its bytes',
    );
    // The session's end and its audit event are written together.
    const closes = check(
      await server.api('GET', `/api/v1/audit?action=device.stream.close&resourceId=${device.uuid}`, {
        token: server.adminToken,
      }),
      200,
    );
    expect(
      closes.items.find((e: { details: { session?: string } | null }) => e.details?.session === sessionId)
        ?.details,
    ).toMatchObject({ bytesToDevice: big.length, bytesFromDevice: big.length });
  });

  it('keeps bytes the client sent right behind the request', async () => {
    const { socket } = streamOpened(
      await portStream(seed.people.alphaOperator.token, echoPort, { first: 'sent before the answer' }),
    );
    const back = readAll(socket);
    socket.end();
    expect((await back).toString()).toBe('sent before the answer');
  });

  it('refuses with the reason, in plain HTTP: no token, another organization, viewer, port, device state', async () => {
    const operator = seed.people.alphaOperator.token;
    expect(refused(await portStream(undefined, echoPort)).status).toBe(401);
    expect(refused(await portStream(seed.people.betaOwner.token, echoPort)).status).toBe(404);
    const viewer = refused(await portStream(seed.people.alphaViewer.token, echoPort));
    expect(viewer.status).toBe(403);
    expect(viewer.error.message).toMatch(/viewer/);
    const offList = refused(await portStream(operator, 22));
    expect(offList.status).toBe(403);
    expect(offList.error.message).toMatch(/port 22 is not on the device's port allow-list/);
    const closed = refused(await portStream(operator, closedPort));
    expect(closed.status).toBe(503);
    expect(closed.error.message).toMatch(/refused/);
    const offline = await newDevice(server, 'port-streams-offline');
    const down = refused(await portStream(server.adminToken, 22, { ref: offline.uuid }));
    expect(down.status).toBe(503);
    expect(down.error.message).toMatch(/offline/);
    expect(refused(await portStream(operator, 'http')).status).toBe(400);
    expect(refused(await portStream(operator, 70000)).status).toBe(400);
    expect(refused(await portStream(operator, echoPort, { ref: 'not-a-device' })).status).toBe(404);
    const websocket = refused(await portStream(operator, echoPort, { upgrade: 'websocket' }));
    expect(websocket.status).toBe(400);
    expect(websocket.error.message).toMatch(/fleetgate-stream/);
    // A device cannot open streams to itself (401), a service credential (the OpenSSH bastion's) acts for no one
    // (403): as on every route not made for them.
    expect(refused(await portStream(device.apiKey, echoPort)).status).toBe(401);
    const asDevice = refused(await portStream(`${device.uuid}:${device.apiKey}`, echoPort));
    expect(asDevice.status).toBe(401);
    expect(asDevice.error.message).toMatch(/a device credential may only call the routes made for devices/);
    const service = check(
      await server.api('POST', '/api/v1/api-keys', {
        token: server.adminToken,
        body: { name: 'bastion', service: 'openssh' },
      }),
      201,
    );
    expect(refused(await portStream(service.key, echoPort)).status).toBe(403);
  });

  it('says a decommissioned device is decommissioned, not offline: 409, on an allowed port or not', async () => {
    const { device: retired, agent: retiredAgent } = await onlineDevice(server, 'port-streams-retired', [
      echoPort,
    ]);
    // It served streams until then.
    const { ended } = await liveEcho(server.baseUrl, server.adminToken, retired.uuid, echoPort);
    check(
      await server.api('POST', `/api/v1/devices/${retired.uuid}/decommission`, { token: server.adminToken }),
      200,
    );
    await within(retiredAgent.closed);
    await within(ended);
    for (const port of [echoPort, 22]) {
      const answer = refused(await portStream(server.adminToken, port, { ref: retired.uuid }));
      expect(answer.status, `port ${port}`).toBe(409);
      expect(answer.error.message).toMatch(/is decommissioned: it takes no streams/);
      expect(answer.error.message).not.toMatch(/offline/);
      expect(answer.error.details).toMatchObject({ reason: 'decommissioned' });
    }
  });

  it('signing out resets the streams the sign-in holds open, with the reason in the session; the token opens none after', async () => {
    const { token } = await newMember(server, { role: 'operator', name: 'streams' });
    const { sessionId, ended } = await liveEcho(server.baseUrl, token, device.uuid, echoPort);
    check(await server.api('POST', '/api/v1/auth/logout', { token }), 204);
    expect(await within(ended)).toMatchObject({ code: 'ECONNRESET' });
    expect(await sessionOutcome(server, sessionId)).toBe(
      'access revoked: the sign-in it was opened with was revoked or has expired',
    );
    expect(refused(await portStream(token, echoPort)).status).toBe(401);
  });
});

describe('fleetgate tunnel, one connection to the server per local connection', () => {
  it('holds nothing open while idle, and ends with a clear line once the server no longer takes the sign-in', async () => {
    const { email, token } = await newMember(server, { role: 'operator', name: 'cli' });
    const cli = runCli([
      'tunnel',
      device.uuid,
      `0:${echoPort}`,
      '--server',
      server.baseUrl,
      '--token',
      token,
    ]);
    try {
      await eventually(
        () => /press Ctrl-C/.test(cli.stdout()),
        20_000,
        `the CLI to listen (${cli.stderr()})`,
      );
      const localPort = Number(/forwarding 127\.0\.0\.1:(\d+)/.exec(cli.stdout())?.[1]);
      const echoOnce = async (text: string) => {
        const socket = net.connect(localPort, '127.0.0.1');
        socket.on('error', () => {});
        const back = readAll(socket);
        socket.end(text);
        return (await back).toString();
      };
      expect(await echoOnce('first')).toBe('first');
      // Idle: no session live for this person (the first one ended with its connection).
      await eventually(async () => {
        const live = check(
          await server.api('GET', `/api/v1/sessions?live=true&user=${email}`, { token: server.adminToken }),
          200,
        );
        return live.total === 0;
      });
      check(await server.api('POST', '/api/v1/auth/logout', { token }), 204);
      await echoOnce('refused').catch(() => '');
      expect(await cli.exited).toBe(1);
      expect(cli.stderr()).toMatch(/the server refused your sign-in: .*; sign in again \(fleetgate login\)/);
    } finally {
      cli.child.kill('SIGKILL');
    }
  }, 60_000);
});
