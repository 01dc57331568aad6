/**
 * Remote diagnostics (issue 16) through the real server: a real agent (in-process, over real sockets) runs its
 * checks and the server stores and lists them; devices that are offline, too old, silent or hostile get clear
 * answers, and nothing of theirs is stored. A hand-made agent speaking the real protocol plays the devices a real
 * agent would never be (one that sends garbage, one that never answers). SQLite, and PostgreSQL with DATABASE_URL.
 */
import type { Agent } from '@fleetgate/agent';
import { enrollAgent, removeTemporaryDirs } from '@fleetgate/agent/test/helpers.ts';
import {
  DIAGNOSTICS_SERVICE,
  diagnosticsStatuses,
  type IncomingOpen,
  Multiplexer,
  StreamErrorCode,
} from '@fleetgate/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDeviceDiagnostics } from '../../src/features/diagnostics/index.ts';
import type { Actor } from '../../src/infra/access/index.ts';
import { AppError } from '../../src/infra/errors/index.ts';
import { createProvisioningKey } from '../enrollment/helpers.ts';
import type { TestServer } from '../harness.ts';
import { newDevice, newMember, newSocket, opened, startTunnelServer, TestAgent } from '../tunnel/helpers.ts';

type Server = TestServer & { baseUrl: string; wsUrl: string };

/** A device's agent whose diagnostics stream is answered by `answer` (the real protocol, a made-up agent). */
async function fakeAgent(server: Server, authorization: string, answer: (open: IncomingOpen) => void) {
  const ws = newSocket(`${server.wsUrl}/api/v1/tunnel`, { authorization, 'x-fleetgate-agent': 'fake/1.0' });
  const mux = new Multiplexer({
    role: 'agent',
    software: 'fake-agent/1.0',
    send: (frame) => ws.send(frame),
    onStream: (open) => {
      if ('service' in open.target && open.target.service === DIAGNOSTICS_SERVICE) answer(open);
      else open.reject(StreamErrorCode.notAllowed, 'not here');
    },
    onClose: (close) => ws.close(close.code, close.reason.slice(0, 100)),
  });
  ws.on('message', (data, isBinary) => (isBinary ? mux.receive(data as Buffer) : undefined));
  ws.on('close', () => mux.transportClosed());
  ws.on('error', () => {});
  await opened(ws);
  mux.start();
  return { mux, close: () => mux.close(4000, 'test done') };
}

const validReport = (agentVersion = 'fake/1.0') => ({
  version: 1,
  agentVersion,
  checks: [
    { id: 'disk', title: 'Disk usage', status: 'ok', summary: '/ 10 % used', durationMs: 1, data: {} },
  ],
});

describe('remote diagnostics', () => {
  let server: Server;
  let agent: Agent;
  let uuid: string;
  let deviceId: number;
  let operator: { token: string };
  let viewer: { token: string };
  let betaToken: string;

  const api = (method: string, url: string, token: string) => server.api(method, url, { token });
  const waitOnline = async (ref: string) => {
    for (let i = 0; i < 200; i++) {
      if ((await api('GET', `/api/v1/devices/${ref}`, server.adminToken)).body.status === 'online') return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`device ${ref} never came online`);
  };

  beforeAll(async () => {
    server = await startTunnelServer();
    const fleet = (
      await server.api('POST', '/api/v1/fleets', {
        token: server.adminToken,
        body: { orgId: 1, name: 'diagnostics-fleet', defaultDeviceType: 'generic-amd64' },
      })
    ).body;
    const { key } = await createProvisioningKey(server, fleet.id);
    ({ agent, uuid } = await enrollAgent(
      server.baseUrl,
      key,
      { agentVersion: '0.1.0-diagnostics' },
      async (id) => (await api('GET', `/api/v1/devices/${id}`, server.adminToken)).body.status === 'online',
    ));
    deviceId = (await api('GET', `/api/v1/devices/${uuid}`, server.adminToken)).body.id;
    operator = await newMember(server, { role: 'operator' });
    viewer = await newMember(server, { role: 'viewer' });
    await server.api('POST', '/api/v1/users', {
      token: server.adminToken,
      body: { email: 'beta-diag@example.test', password: 'beta owner password' },
    });
    betaToken = await server.login('beta-diag@example.test', 'beta owner password');
    await server.api('POST', '/api/v1/orgs', { token: betaToken, body: { name: 'Beta' } });
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    await server?.close();
    removeTemporaryDirs();
  });

  it('run every check on an online device, reach the server, and are kept in its history', async () => {
    const ran = await api('POST', `/api/v1/devices/${uuid}/diagnostics`, operator.token);
    expect(ran.status, JSON.stringify(ran.body)).toBe(201);
    const run = ran.body;
    expect(run).toMatchObject({
      version: 1,
      agentVersion: '0.1.0-diagnostics',
      device: { uuid, id: deviceId },
    });
    expect(run.checks.map((c: { id: string }) => c.id)).toEqual([
      'disk',
      'memory',
      'load',
      'time-sync',
      'dns',
      'tcp',
      'agent',
      'network-interfaces',
      'systemd-failed-units',
      'kernel-messages',
    ]);
    for (const check of run.checks) {
      expect(diagnosticsStatuses, check.id).toContain(check.status);
      expect(check.summary, check.id).not.toBe('');
    }
    const byId = Object.fromEntries(run.checks.map((c: { id: string }) => [c.id, c]));
    const port = Number(new URL(server.baseUrl).port);
    expect(byId.tcp).toMatchObject({ status: 'ok', data: { host: '127.0.0.1', port } });
    expect(byId.dns.status).toBe('ok');
    expect(byId['time-sync'].status).toBe('ok');
    expect(byId.agent).toMatchObject({ status: 'ok', data: { agentVersion: '0.1.0-diagnostics' } });
    expect(Object.values(run.counts).reduce((a: number, b) => a + (b as number), 0)).toBe(10);

    // Stored: first in the device's history (by id as well as by uuid), and readable again as it was.
    const history = await api('GET', `/api/v1/devices/${deviceId}/diagnostics`, operator.token);
    expect(history.status).toBe(200);
    expect(history.body.items[0]).toMatchObject({ id: run.id, status: run.status, counts: run.counts });
    expect(history.body.items[0]).not.toHaveProperty('checks');
    const again = await api('GET', `/api/v1/devices/${uuid}/diagnostics/${run.id}`, operator.token);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(run);

    // A session of its own (surface `diagnostics`), ended, and the stored report audited.
    const session = await api('GET', `/api/v1/sessions/${run.sessionId}`, server.adminToken);
    expect(session.body).toMatchObject({ surface: 'diagnostics', target: 'diagnostics', live: false });
    const audit = await api('GET', '/api/v1/audit?action=device.diagnostics.run', server.adminToken);
    expect(audit.body.items[0]).toMatchObject({ resourceId: uuid, outcome: 'success' });
  }, 30_000);

  it('refuse viewers (403) and other organizations (404) at every endpoint', async () => {
    const run = (await api('POST', `/api/v1/devices/${uuid}/diagnostics`, server.adminToken)).body;
    const endpoints: [string, string][] = [
      ['POST', `/api/v1/devices/${uuid}/diagnostics`],
      ['GET', `/api/v1/devices/${uuid}/diagnostics`],
      ['GET', `/api/v1/devices/${uuid}/diagnostics/${run.id}`],
    ];
    for (const [method, url] of endpoints) {
      const asViewer = await api(method, url, viewer.token);
      expect(asViewer.status, `${method} ${url} as viewer`).toBe(403);
      const asOutsider = await api(method, url, betaToken);
      expect(asOutsider.status, `${method} ${url} as outsider`).toBe(404);
      expect(JSON.stringify(asOutsider.body)).not.toContain(uuid);
    }
    // A run of another device is not found through this one.
    const other = await newDevice(server);
    const crossed = await api(
      'GET',
      `/api/v1/devices/${other.uuid}/diagnostics/${run.id}`,
      server.adminToken,
    );
    expect(crossed.status).toBe(404);
  }, 30_000);

  it('answer at once with 503 when the device is offline, and store nothing', async () => {
    const offline = await newDevice(server);
    const startedAt = performance.now();
    const answer = await api('POST', `/api/v1/devices/${offline.uuid}/diagnostics`, operator.token);
    expect(performance.now() - startedAt).toBeLessThan(2000);
    expect(answer.status).toBe(503);
    expect(answer.body.error.message).toMatch(/is offline/);
    const history = await api('GET', `/api/v1/devices/${offline.uuid}/diagnostics`, operator.token);
    expect(history.body.total).toBe(0);
  });

  it("say the device's agent is too old when it does not know diagnostics, and leave its tunnel up", async () => {
    const old = await newDevice(server);
    // The test agent serves port streams only and refuses any other service, as an agent before diagnostics did.
    const oldAgent = await TestAgent.connect(server.wsUrl, old.authorization);
    try {
      await waitOnline(old.uuid);
      const answer = await api('POST', `/api/v1/devices/${old.uuid}/diagnostics`, operator.token);
      expect(answer.status).toBe(409);
      expect(answer.body.error.details).toEqual({ reason: 'agent_too_old' });
      expect(answer.body.error.message).toMatch(/agent is too old for remote diagnostics/);
      expect(oldAgent.mux.closed).toBeNull();
    } finally {
      oldAgent.close();
    }
  });

  it('refuse an oversized or malformed report from a device with 502, store nothing, and keep the tunnel', async () => {
    const hostile = await newDevice(server);
    const answers: (string | Buffer)[] = [
      'x'.repeat(300 * 1024),
      'not json at all',
      Buffer.from([0xff, 0xfe, 0x7b, 0x7d]),
      JSON.stringify({ ...validReport(), checks: [{ ...validReport().checks[0], status: 'great' }] }),
      JSON.stringify({
        ...validReport(),
        checks: [{ ...validReport().checks[0], data: { a: [[[[[[[1]]]]]]] } }],
      }),
      JSON.stringify({ ...validReport(), checks: [] }),
    ];
    let next = 0;
    const fake = await fakeAgent(server, hostile.authorization, (open) => {
      const stream = open.accept();
      stream.on('error', () => {});
      stream.resume();
      stream.end(answers[next++]);
    });
    try {
      await waitOnline(hostile.uuid);
      const messages: string[] = [];
      for (let i = 0; i < answers.length; i++) {
        const answer = await api('POST', `/api/v1/devices/${hostile.uuid}/diagnostics`, operator.token);
        expect(answer.status, JSON.stringify(answer.body)).toBe(502);
        messages.push(answer.body.error.message);
      }
      expect(messages[0]).toMatch(/report exceeds 256 KiB/);
      expect(messages[1]).toMatch(/not UTF-8 JSON/);
      expect(messages[2]).toMatch(/not UTF-8 JSON/);
      expect(messages[3]).toMatch(/invalid diagnostics report: at checks\.0\.status/);
      expect(messages[4]).toMatch(/nested deeper than 6 levels/);
      expect(messages[5]).toMatch(/at checks/);
      const history = await api('GET', `/api/v1/devices/${hostile.uuid}/diagnostics`, operator.token);
      expect(history.body.total).toBe(0);
      expect(fake.mux.closed).toBeNull();
    } finally {
      fake.close();
    }
  }, 30_000);

  it('give up with 503 on a device that takes the request but never answers', async () => {
    const silent = await newDevice(server);
    const fake = await fakeAgent(server, silent.authorization, (open) => {
      open.accept().on('error', () => {});
    });
    try {
      await waitOnline(silent.uuid);
      const actor: Actor = {
        principal: {
          type: 'user',
          userId: 1,
          email: 'admin@example.test',
          serverAdmin: true,
          memberships: [{ orgId: 1, role: 'owner', fleetIds: null }],
          credential: { type: 'session', id: 0 },
        },
        sourceIp: '127.0.0.1',
      };
      const startedAt = performance.now();
      const error = await runDeviceDiagnostics(server.app.deps, server.app.streamRouter, actor, silent.uuid, {
        timeoutMs: 500,
      }).catch((e: unknown) => e);
      expect(performance.now() - startedAt).toBeLessThan(2000);
      expect(error).toBeInstanceOf(AppError);
      expect(error).toMatchObject({ code: 'unavailable', details: { reason: 'timeout' } });
      expect((error as AppError).message).toMatch(/did not send its diagnostics within 0.5 s/);
    } finally {
      fake.close();
    }
  });

  it('keep the newest 50 runs of each device', async () => {
    const busy = await newDevice(server);
    const fake = await fakeAgent(server, busy.authorization, (open) => {
      const stream = open.accept();
      stream.on('error', () => {});
      stream.resume();
      stream.end(JSON.stringify(validReport()));
    });
    try {
      await waitOnline(busy.uuid);
      const ids: number[] = [];
      for (let i = 0; i < 52; i++) {
        const answer = await api('POST', `/api/v1/devices/${busy.uuid}/diagnostics`, operator.token);
        expect(answer.status, JSON.stringify(answer.body)).toBe(201);
        ids.push(answer.body.id);
      }
      const page1 = await api('GET', `/api/v1/devices/${busy.uuid}/diagnostics?limit=20`, operator.token);
      expect(page1.body.total).toBe(50);
      expect(page1.body.items.map((r: { id: number }) => r.id)).toEqual(ids.slice(-20).reverse());
      const last = await api(
        'GET',
        `/api/v1/devices/${busy.uuid}/diagnostics?limit=20&page=3`,
        operator.token,
      );
      expect(last.body.items.map((r: { id: number }) => r.id)).toEqual(ids.slice(2, 12).reverse());
      const dropped = await api('GET', `/api/v1/devices/${busy.uuid}/diagnostics/${ids[0]}`, operator.token);
      expect(dropped.status).toBe(404);
    } finally {
      fake.close();
    }
  }, 60_000);
});
