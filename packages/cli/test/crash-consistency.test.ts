/**
 * Crash consistency (issue 18): a real `fleetgate serve` process takes concurrent writes through the API from
 * several clients, is killed with SIGKILL in the middle of them, and is started again on the same data. Every
 * write it acknowledged (a 2xx answer) must be there after the restart, with its value, and nothing may be
 * half-written: every device and variable found has its audit event (they are written in one transaction).
 * Several rounds, each checking the writes of all earlier rounds too. SQLite, or PostgreSQL with DATABASE_URL.
 */
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callApi, eventually, freePort, Processes, type Running } from './processes.ts';

const ADMIN = { email: 'admin@consistency.test', password: 'consistency-test-password' };
const ROUNDS = 3;
const CLIENTS = 8;

let processes: Processes;
let port: number;
let base: string;
let session: string;
let serverEnv: NodeJS.ProcessEnv;

const api = (method: string, url: string, body?: unknown) => callApi(base, session, method, url, body);

beforeAll(async () => {
  processes = new Processes();
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  // A stand-in for the web UI: building the real one would only slow each start down.
  const webRoot = path.join(processes.dir, 'web');
  fs.mkdirSync(webRoot);
  fs.writeFileSync(path.join(webRoot, 'index.html'), '<!doctype html><title>fleetgate</title>');
  serverEnv = { FLEETGATE_WEB_ROOT: webRoot };
});

afterAll(async () => {
  await processes?.cleanUp();
});

/** What the server acknowledged, to be found again after every restart. */
interface Acknowledged {
  devices: { id: number; uuid: string; name: string }[];
  fleetVariables: { name: string; value: string; secret: boolean }[];
  deviceVariables: { uuid: string; name: string; value: string }[];
}

/** One client writing until `stop()`: a device, a fleet variable (every other one secret), a device variable. */
async function writeUntilStopped(
  client: number,
  round: number,
  fleetId: number,
  stopped: () => boolean,
  acknowledged: Acknowledged,
): Promise<void> {
  for (let i = 0; !stopped(); i++) {
    const tag = `r${round}-c${client}-${i}`;
    try {
      const device = await api('POST', '/api/v1/devices', { fleetId, name: `crash-${tag}` });
      acknowledged.devices.push({ id: device.id, uuid: device.uuid, name: `crash-${tag}` });
      const name = `V_${tag.replaceAll('-', '_').toUpperCase()}`;
      const secret = i % 2 === 1;
      await api('PUT', `/api/v1/fleets/${fleetId}/variables/${name}`, { value: `value of ${tag}`, secret });
      acknowledged.fleetVariables.push({ name, value: `value of ${tag}`, secret });
      await api('PUT', `/api/v1/devices/${device.uuid}/variables/NOTE`, { value: `note of ${tag}` });
      acknowledged.deviceVariables.push({ uuid: device.uuid, name: 'NOTE', value: `note of ${tag}` });
    } catch {
      // Refused or cut by the kill: not acknowledged, so nothing to find.
      if (stopped()) return;
      throw new Error(`a write failed while the server was up (${tag})`);
    }
  }
}

/** Every item of a paged listing (`url` has a query already). */
// biome-ignore lint/suspicious/noExplicitAny: tests read answers loosely and check what they use.
async function allPages(url: string): Promise<any[]> {
  const out = [];
  for (let page = 1; ; page++) {
    const answer = await api('GET', `${url}&limit=500&page=${page}`);
    out.push(...answer.items);
    if (answer.items.length < 500) return out;
  }
}

async function startServer(): Promise<Running> {
  const server = processes.serve(port, ADMIN, serverEnv);
  await eventually(
    'the server to answer',
    async () => (await fetch(`${base}/readyz`)).ok || undefined,
    20_000,
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}\n${server.output()}`);
  });
  return server;
}

describe('a server killed with SIGKILL under concurrent writes', () => {
  it('keeps every acknowledged write after the restart, each with its audit event, round after round', async () => {
    let server = await startServer();
    ({ token: session } = await api('POST', '/api/v1/auth/login', ADMIN));
    const org = (await api('GET', '/api/v1/orgs')).items[0];
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: org.id,
      name: 'crash-consistency',
      defaultDeviceType: 'generic-amd64',
    });
    const acknowledged: Acknowledged = { devices: [], fleetVariables: [], deviceVariables: [] };

    for (let round = 1; round <= ROUNDS; round++) {
      let stopped = false;
      const before = acknowledged.devices.length;
      const clients = Array.from({ length: CLIENTS }, (_, client) =>
        writeUntilStopped(client, round, fleet.id, () => stopped, acknowledged),
      );
      // Killed while the writes run: after some have been acknowledged, at a moment that differs each round.
      await eventually(
        'writes to be acknowledged',
        () => acknowledged.devices.length >= before + 20 || undefined,
      );
      await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 400));
      const exited = once(server.child, 'exit');
      stopped = true;
      server.child.kill('SIGKILL');
      await exited;
      await Promise.all(clients);

      server = await startServer();
      const devices = await Promise.all(
        acknowledged.devices.map(async (d) => api('GET', `/api/v1/devices/${d.uuid}`)),
      );
      expect(devices.map((d) => ({ id: d.id, uuid: d.uuid, name: d.name }))).toEqual(acknowledged.devices);
      const fleetVariables = new Map<string, { value: string | null; secret: boolean }>(
        (await api('GET', `/api/v1/fleets/${fleet.id}/variables`)).items.map(
          (v: { name: string; value: string | null; secret: boolean }) => [v.name, v],
        ),
      );
      for (const v of acknowledged.fleetVariables) {
        // A secret's value is never shown: it is there, sealed (the delivery of secrets is tested elsewhere).
        expect(fleetVariables.get(v.name), v.name).toEqual(
          expect.objectContaining({ secret: v.secret, value: v.secret ? null : v.value }),
        );
      }
      for (const v of acknowledged.deviceVariables) {
        const own = (await api('GET', `/api/v1/devices/${v.uuid}/variables`)).items.find(
          (item: { name: string; source: string }) => item.name === v.name && item.source === 'device',
        );
        expect(own?.value, `${v.uuid} ${v.name}`).toBe(v.value);
      }

      // Nothing half-written: whatever is there (acknowledged or cut before its answer) has its audit event.
      const allDevices = await allPages(`/api/v1/devices?fleetId=${fleet.id}`);
      const created = new Set(
        (await allPages('/api/v1/audit?action=device.create')).map((e) => e.resourceId),
      );
      for (const d of allDevices) expect(created.has(d.uuid), `audit of device ${d.uuid}`).toBe(true);
      const set = new Set(
        (await allPages('/api/v1/audit?action=fleet.variable.set')).map((e) => e.details?.name),
      );
      for (const name of fleetVariables.keys()) expect(set.has(name), `audit of ${name}`).toBe(true);
      expect(allDevices.length).toBeGreaterThanOrEqual(acknowledged.devices.length);
    }
    expect(acknowledged.devices.length).toBeGreaterThanOrEqual(ROUNDS * 20);
    console.log(
      `crash consistency: ${acknowledged.devices.length} devices, ${acknowledged.fleetVariables.length} fleet and ` +
        `${acknowledged.deviceVariables.length} device variables acknowledged over ${ROUNDS} kills, all found`,
    );
    server.child.kill('SIGKILL');
  }, 120_000);
});
