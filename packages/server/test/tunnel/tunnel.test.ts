import { CloseCode, encodeFrame } from '@fleetgate/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { check } from '../api/helpers.ts';
import type { TestServer } from '../harness.ts';
import {
  basicAuth,
  eventually,
  isVariables,
  newDevice,
  openSocket,
  startTunnelServer,
  TestAgent,
  UpgradeRefused,
} from './helpers.ts';

/**
 * The device end of the tunnel hub over real sockets: authentication in the upgrade, hello and variables,
 * state reports, one connection per device, decommission and revocation, liveness, presence and hostile input.
 */

let server: TestServer & { baseUrl: string; wsUrl: string };

beforeAll(async () => {
  server = await startTunnelServer();
});
afterAll(async () => {
  await server?.close();
});

async function refusal(promise: Promise<unknown>): Promise<UpgradeRefused> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UpgradeRefused);
  return error as UpgradeRefused;
}

const device = (uuid: string) => server.api('GET', `/api/v1/devices/${uuid}`, { token: server.adminToken });

describe('authentication in the upgrade', () => {
  it('refuses no credential and a wrong key with 401 in the API error shape', async () => {
    const none = await refusal(openSocket(`${server.wsUrl}/api/v1/tunnel`, {}));
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe('unauthorized');
    const d = await newDevice(server);
    const wrong = await refusal(
      openSocket(`${server.wsUrl}/api/v1/tunnel`, { authorization: basicAuth(d.uuid, 'x'.repeat(32)) }),
    );
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.message).toMatch(/credential/);
  });

  it('lets a device whose uuid was guessed at 30 times from its own address reconnect with its key', async () => {
    const d = await newDevice(server);
    // Someone behind the device's address (127.0.0.1: a shared NAT) tries 31 wrong keys for its uuid.
    for (let i = 0; i <= 30; i++) {
      await refusal(
        openSocket(`${server.wsUrl}/api/v1/tunnel`, {
          authorization: basicAuth(d.uuid, `${'x'.repeat(31)}${i}`),
        }),
      );
    }
    const limited = await refusal(
      openSocket(`${server.wsUrl}/api/v1/tunnel`, { authorization: basicAuth(d.uuid, 'y'.repeat(32)) }),
    );
    expect(limited.status).toBe(429);
    // The device, dropped and reconnecting with its own key, is taken at once.
    const agent = await TestAgent.connect(server.wsUrl, d.authorization);
    await agent.waitFor(isVariables);
    agent.close();
  });

  it('answers 404 for WebSocket upgrades elsewhere', async () => {
    const other = await refusal(openSocket(`${server.wsUrl}/api/v1/nowhere`, {}));
    expect(other.status).toBe(404);
  });
});

describe('a connected device', () => {
  it('gets its effective variables after the hello, and again whenever they change; its answers are recorded', async () => {
    const d = await newDevice(server);
    const token = server.adminToken;
    check(
      await server.api('PUT', `/api/v1/fleets/${d.fleetId}/variables/SHARED`, {
        token,
        body: { value: 'fleet' },
      }),
      200,
    );
    check(
      await server.api('PUT', `/api/v1/fleets/${d.fleetId}/variables/ONLY_FLEET`, {
        token,
        body: { value: 'f' },
      }),
      200,
    );
    check(
      await server.api('PUT', `/api/v1/devices/${d.uuid}/variables/SHARED`, {
        token,
        body: { value: 'device' },
      }),
      200,
    );
    check(
      await server.api('PUT', `/api/v1/devices/${d.uuid}/variables/TOKEN`, {
        token,
        body: { value: 's3cret', secret: true },
      }),
      200,
    );
    const agent = await TestAgent.connect(server.wsUrl, d.authorization);
    const first = await agent.waitFor(isVariables);
    expect(first.variables).toEqual({ SHARED: 'device', ONLY_FLEET: 'f', TOKEN: 's3cret' });
    expect(agent.mux.peerHello?.software).toMatch(/^fleetgate-server\//);

    check(
      await server.api('PUT', `/api/v1/fleets/${d.fleetId}/variables/NEW`, { token, body: { value: '1' } }),
      200,
    );
    const second = await agent.waitFor(isVariables, 1);
    expect(second.variables).toEqual({ SHARED: 'device', ONLY_FLEET: 'f', TOKEN: 's3cret', NEW: '1' });
    expect(second.revision).toBeGreaterThan(first.revision);

    check(await server.api('DELETE', `/api/v1/devices/${d.uuid}/variables/SHARED`, { token }), 204);
    const third = await agent.waitFor(isVariables, 2);
    expect(third.variables.SHARED).toBe('fleet');
    expect(third.revision).toBeGreaterThan(second.revision);

    agent.send({ type: 'variables-applied', revision: third.revision, error: 'hook exited with 1' });
    await eventually(async () => (await device(d.uuid)).body.variablesApplied?.revision === third.revision);
    expect((await device(d.uuid)).body.variablesApplied.error).toBe('hook exited with 1');
    agent.close();
  });

  it("gets the new fleet's variables when it is moved to another fleet, its own values still winning", async () => {
    const d = await newDevice(server);
    const token = server.adminToken;
    check(
      await server.api('PUT', `/api/v1/fleets/${d.fleetId}/variables/SITE`, {
        token,
        body: { value: 'old' },
      }),
      200,
    );
    const target = check(
      await server.api('POST', '/api/v1/fleets', {
        token,
        body: { orgId: 1, name: `moved-${d.uuid.slice(0, 8)}`, defaultDeviceType: 'raspberrypi4-64' },
      }),
      201,
    );
    check(
      await server.api('PUT', `/api/v1/fleets/${target.id}/variables/SITE`, {
        token,
        body: { value: 'new' },
      }),
      200,
    );
    check(
      await server.api('PUT', `/api/v1/fleets/${target.id}/variables/MODE`, { token, body: { value: 'x' } }),
      200,
    );
    check(
      await server.api('PUT', `/api/v1/devices/${d.uuid}/variables/MODE`, { token, body: { value: 'mine' } }),
      200,
    );
    const agent = await TestAgent.connect(server.wsUrl, d.authorization);
    const first = await agent.waitFor(isVariables);
    expect(first.variables).toEqual({ SITE: 'old', MODE: 'mine' });

    check(
      await server.api('PATCH', `/api/v1/devices/${d.uuid}`, { token, body: { fleetId: target.id } }),
      200,
    );
    const second = await agent.waitFor(isVariables, 1);
    expect(second.variables).toEqual({ SITE: 'new', MODE: 'mine' });
    expect(second.revision).toBeGreaterThan(first.revision);
    agent.close();
  });

  it('shows its state report on the device', async () => {
    const d = await newDevice(server);
    const agent = await TestAgent.connect(server.wsUrl, d.authorization);
    await agent.waitFor(isVariables);
    agent.send({
      type: 'state-report',
      hostname: 'gateway-17',
      os: 'Debian GNU/Linux 12',
      kernel: '6.1.0-18-arm64',
      agentVersion: '0.1.0',
      uptimeSeconds: 1234,
      memory: { totalBytes: 1000, usedBytes: 500 },
      ipAddresses: ['192.0.2.7'],
    });
    await eventually(async () => (await device(d.uuid)).body.state !== null, 3000, 'the state report');
    const view = (await device(d.uuid)).body;
    expect(view.state).toMatchObject({
      hostname: 'gateway-17',
      kernel: '6.1.0-18-arm64',
      ipAddresses: ['192.0.2.7'],
    });
    expect(view.state.type).toBeUndefined();
    expect(view.agentVersion).toBe('0.1.0');
    expect(view.stateReportedAt).toEqual(expect.any(String));
    agent.close();
  });

  it('is online (after the batch), filtered by ?status=online, then offline with its connection in the history', async () => {
    const d = await newDevice(server);
    expect((await device(d.uuid)).body.status).toBe('never-connected');
    const agent = await TestAgent.connect(server.wsUrl, d.authorization);
    await eventually(async () => (await device(d.uuid)).body.status === 'online', 3000, 'online');
    const online = check(
      await server.api('GET', `/api/v1/devices?status=online&fleetId=${d.fleetId}`, {
        token: server.adminToken,
      }),
      200,
    );
    expect(online.items.map((i: { uuid: string }) => i.uuid)).toEqual([d.uuid]);
    const view = (await device(d.uuid)).body;
    expect(view.connectedAt).toEqual(expect.any(String));
    expect(view.agentVersion).toBe('test-agent/1.0');

    agent.close();
    await agent.closed;
    await eventually(async () => (await device(d.uuid)).body.status === 'offline', 3000, 'offline');
    const offline = check(
      await server.api('GET', `/api/v1/devices?status=offline&fleetId=${d.fleetId}`, {
        token: server.adminToken,
      }),
      200,
    );
    expect(offline.total).toBe(1);
    const none = check(
      await server.api('GET', `/api/v1/devices?status=online&fleetId=${d.fleetId}`, {
        token: server.adminToken,
      }),
      200,
    );
    expect(none.total).toBe(0);
    await eventually(async () => {
      const history = check(
        await server.api('GET', `/api/v1/devices/${d.uuid}/connections`, { token: server.adminToken }),
        200,
      );
      return history.items[0]?.disconnectedAt !== null && history.total === 1;
    });
    const history = check(
      await server.api('GET', `/api/v1/devices/${d.uuid}/connections`, { token: server.adminToken }),
      200,
    );
    expect(history.items[0]).toMatchObject({
      remoteAddress: expect.stringContaining('127.0.0.1'),
      agentVersion: 'test-agent/1.0',
      closeCode: CloseCode.normal,
      closeReason: 'test done',
      durationMs: expect.any(Number),
    });
  });
});

describe('one connection per device', () => {
  it('closes the older connection with superseded when the same device connects again', async () => {
    const d = await newDevice(server);
    const older = await TestAgent.connect(server.wsUrl, d.authorization);
    await older.waitFor(isVariables);
    const newer = await TestAgent.connect(server.wsUrl, d.authorization);
    const close = await older.closed;
    expect(close.code).toBe(CloseCode.superseded);
    expect(close.wsCode).toBe(CloseCode.superseded);
    await newer.waitFor(isVariables);
    expect(newer.mux.closed).toBeNull();
    // The superseded connection's end does not make the device look offline.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await device(d.uuid)).body.status).toBe('online');
    newer.close();
  });
});

describe('closing a tunnel at once', () => {
  it('closes it within a second of a decommission, and refuses the device afterwards with 403', async () => {
    const d = await newDevice(server);
    const agent = await TestAgent.connect(server.wsUrl, d.authorization);
    await agent.waitFor(isVariables);
    const started = Date.now();
    check(
      await server.api('POST', `/api/v1/devices/${d.uuid}/decommission`, { token: server.adminToken }),
      200,
    );
    const close = await agent.closed;
    expect(Date.now() - started).toBeLessThan(1000);
    expect(close.code).toBe(CloseCode.decommissioned);
    const again = await refusal(TestAgent.connect(server.wsUrl, d.authorization));
    expect(again.status).toBe(403);
    expect(again.body.error.message).toMatch(/decommissioned/);
    await eventually(async () => (await device(d.uuid)).body.status === 'decommissioned');
  });

  it('closes it when the device key is revoked', async () => {
    const d = await newDevice(server);
    const agent = await TestAgent.connect(server.wsUrl, d.authorization);
    await agent.waitFor(isVariables);
    check(await server.api('DELETE', `/api/v1/devices/${d.uuid}/keys`, { token: server.adminToken }), 200);
    const close = await agent.closed;
    expect(close.code).toBe(CloseCode.unauthorized);
    expect((await refusal(TestAgent.connect(server.wsUrl, d.authorization))).status).toBe(401);
  });
});

describe('liveness', () => {
  it('closes a peer that never answers pings with livenessTimeout', async () => {
    const d = await newDevice(server);
    const silent = await openSocket(`${server.wsUrl}/api/v1/tunnel`, { authorization: d.authorization });
    const started = Date.now();
    const code = await new Promise<number>((resolve) => silent.once('close', (c) => resolve(c)));
    // Pinged after ~300 ms (±10 %), closed after 2 s more without an answer; terminated, so 1006.
    expect([CloseCode.livenessTimeout, 1006]).toContain(code);
    expect(Date.now() - started).toBeGreaterThan(2000);
    expect(Date.now() - started).toBeLessThan(15_000);
    await eventually(async () => {
      const history = check(
        await server.api('GET', `/api/v1/devices/${d.uuid}/connections`, { token: server.adminToken }),
        200,
      );
      return history.items[0]?.closeCode === CloseCode.livenessTimeout;
    });
  });

  it('keeps a peer that answers, across several ping rounds', async () => {
    const d = await newDevice(server);
    const agent = await TestAgent.connect(server.wsUrl, d.authorization);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(agent.mux.closed).toBeNull();
    await eventually(
      async () => (await device(d.uuid)).body.lastSeenAt !== (await device(d.uuid)).body.connectedAt,
    );
    agent.close();
  });
});

describe('hostile frames', () => {
  it('closes with protocolError on a text message or garbage bytes, and keeps serving', async () => {
    const d = await newDevice(server);
    for (const send of [
      (ws: import('ws').WebSocket) => ws.send('hello there'),
      (ws: import('ws').WebSocket) => ws.send(Buffer.from([0xff, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])),
      (ws: import('ws').WebSocket) =>
        ws.send(encodeFrame({ type: 'data', streamId: 1, payload: new Uint8Array(4) })),
    ]) {
      const ws = await openSocket(`${server.wsUrl}/api/v1/tunnel`, { authorization: d.authorization });
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      send(ws);
      expect(await closed).toBe(CloseCode.protocolError);
    }
    const agent = await TestAgent.connect(server.wsUrl, d.authorization);
    await agent.waitFor(isVariables);
    agent.close();
    check(await server.api('GET', '/api/v1/devices', { token: server.adminToken }), 200);
  });
});
