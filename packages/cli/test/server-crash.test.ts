/**
 * A server that dies without closing anything (`kill -9`) while a real agent is connected, and whose agent
 * never comes back: the restarted server shows the device offline from its first answer, with the lost
 * connection in its history, instead of `online` until the stale sweep finds it minutes later. SQLite, or
 * PostgreSQL with DATABASE_URL.
 */
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentBin, callApi, eventually, freePort, Processes } from './processes.ts';

const ADMIN = { email: 'admin@crash.test', password: 'crash-test-password' };
// Presence reaches the database within a fifth of a second. The ping interval stays at its default (30 s), so
// the stale sweep would need over two minutes to close the lost link: only the start can do it in time.
const SERVER_ENV = { FLEETGATE_PRESENCE_FLUSH_MS: '200' };

let processes: Processes;
let port: number;
let base: string;
let session: string;

const api = (method: string, url: string, body?: unknown) => callApi(base, session, method, url, body);

beforeAll(async () => {
  processes = new Processes();
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await processes?.cleanUp();
});

describe('a server killed with SIGKILL', () => {
  it('shows, once restarted, the device whose agent never reconnected offline at once, its connection lost', async () => {
    const first = processes.serve(port, ADMIN, SERVER_ENV);
    await eventually('the server to answer', async () => (await fetch(`${base}/readyz`)).ok || undefined);
    ({ token: session } = await api('POST', '/api/v1/auth/login', ADMIN));
    const org = (await api('GET', '/api/v1/orgs')).items[0];
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: org.id,
      name: 'crash',
      defaultDeviceType: 'generic-amd64',
    });
    const { key } = await api('POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, { name: 'line 1' });
    const agentConfig = path.join(processes.dir, 'agent.json');
    fs.writeFileSync(
      agentConfig,
      JSON.stringify({
        server: base,
        dataDir: path.join(processes.dir, 'agent'),
        deviceType: 'generic-amd64',
        name: 'kiosk-crash',
        provisioningKey: key,
        logLevel: 'warn',
      }),
    );
    const agent = processes.start(agentBin, ['run', '--config', agentConfig]);
    const uuid: string = await eventually('the agent to enroll and come online', async () => {
      const page = await api('GET', `/api/v1/devices?fleetId=${fleet.id}&status=online`);
      return page.items[0]?.uuid;
    });
    // The open connection is in the history before the crash.
    await eventually('the open connection in the history', async () => {
      const history = await api('GET', `/api/v1/devices/${uuid}/connections`);
      return (history.items.length === 1 && history.items[0].disconnectedAt === null) || undefined;
    });

    // The server dies without a word; the agent (the device) is gone as well, for good.
    const killedAt = Date.now();
    first.child.kill('SIGKILL');
    await once(first.child, 'exit');
    agent.child.kill('SIGKILL');
    await once(agent.child, 'exit');

    const restarted = processes.serve(port, ADMIN, SERVER_ENV);
    await eventually(
      'the restarted server to answer',
      async () => (await fetch(`${base}/readyz`)).ok || undefined,
    );
    // Its first answers, not eventually: it marked the device offline before it listened.
    const shown = await api('GET', `/api/v1/devices/${uuid}`);
    expect(shown.status).toBe('offline');
    expect((await api('GET', `/api/v1/devices?fleetId=${fleet.id}&status=online`)).total).toBe(0);
    const history = await api('GET', `/api/v1/devices/${uuid}/connections`);
    expect(history.items).toHaveLength(1);
    expect(history.items[0]).toMatchObject({
      disconnectedAt: expect.any(String),
      closeReason: expect.stringMatching(/^lost: /),
    });
    expect(history.items[0].durationMs).toBeGreaterThanOrEqual(0);
    // It went offline as of its last sign of life, before the crash, not at the restart.
    expect(Date.parse(history.items[0].disconnectedAt)).toBeLessThanOrEqual(killedAt);
    expect(shown.disconnectedAt).toBe(history.items[0].disconnectedAt);
    expect(restarted.output()).toMatch(
      /1 device\(s\) still showed online through an instance that stopped without closing their links/,
    );

    restarted.child.kill('SIGTERM');
    await once(restarted.child, 'exit');
  }, 120_000);
});
