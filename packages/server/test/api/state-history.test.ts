import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PresenceRecorder, type StateReport } from '../../src/features/presence/service.ts';
import { seedTwoOrgs, startTestServer, type TestServer } from '../harness.ts';
import { check } from './helpers.ts';

/** A device's state history: the numbers of its state reports over time, bounded, read like the device. */
let server: TestServer;
let seed: Awaited<ReturnType<typeof seedTwoOrgs>>;
let presence: PresenceRecorder;

interface History {
  since: string;
  items: {
    at: string;
    cpuPercent: number | null;
    memory: { usedBytes: number; totalBytes: number } | null;
    disk: { usedBytes: number; totalBytes: number } | null;
    temperatureCelsius: number | null;
  }[];
}

const report = (cpuPercent: number): StateReport => ({
  hostname: 'h',
  os: 'Debian',
  kernel: '6.1',
  agentVersion: 'test',
  uptimeSeconds: 10,
  cpuPercent,
  memory: { totalBytes: 8 * 2 ** 30, usedBytes: 2 * 2 ** 30 },
  disk: { totalBytes: 64 * 2 ** 30, usedBytes: 16 * 2 ** 30 },
  temperatureCelsius: 51.5,
  ipAddresses: [],
});

beforeAll(async () => {
  server = await startTestServer();
  seed = await seedTwoOrgs(server);
  presence = new PresenceRecorder(server.app.deps, { flushMs: 60_000, staleAfterMs: 3_600_000 });
});

afterAll(async () => {
  await server?.close();
});

async function history(device: number | string, token: string, query = '', status = 200): Promise<History> {
  return check(await server.api('GET', `/api/v1/devices/${device}/state-history${query}`, { token }), status);
}

describe("a device's state history", () => {
  it('keeps the numbers of its state reports, at most one sample a minute, oldest first', async () => {
    const deviceId = seed.alpha.device.id;
    presence.stateReported(deviceId, report(12.5));
    await presence.flush();
    // A report within the same minute (e.g. the next batch a second later) adds no sample.
    presence.stateReported(deviceId, report(99));
    await presence.flush();
    const { items } = await history(deviceId, server.adminToken);
    // Two reports a few milliseconds apart may straddle a minute's end: then each minute keeps its first.
    expect(items.length).toBeGreaterThanOrEqual(1);
    expect(items.length).toBeLessThanOrEqual(2);
    expect(items[0]).toMatchObject({
      cpuPercent: 12.5,
      memory: { totalBytes: 8 * 2 ** 30, usedBytes: 2 * 2 ** 30 },
      disk: { totalBytes: 64 * 2 ** 30, usedBytes: 16 * 2 ** 30 },
      temperatureCelsius: 51.5,
    });
    expect(Date.now() - Date.parse(items[0]!.at)).toBeLessThan(60_000);
    // The device's own view still shows the last report.
    const device = check(
      await server.api('GET', `/api/v1/devices/${deviceId}`, { token: server.adminToken }),
      200,
    );
    expect(device.state.cpuPercent).toBe(99);
  });

  it('answers only samples since the time asked, and drops those older than 7 days', async () => {
    const deviceId = seed.alpha.device.id;
    const old = Date.now() - 8 * 24 * 3600 * 1000;
    const hourAgo = Date.now() - 3600 * 1000;
    await server.app.deps.db
      .insertInto('device_state_samples')
      .values(
        [old, hourAgo].map((at) => ({
          device_id: deviceId,
          minute: Math.floor(at / 60_000),
          at,
          cpu_percent: 1,
          memory_used_bytes: null,
          memory_total_bytes: null,
          disk_used_bytes: null,
          disk_total_bytes: null,
          temperature_celsius: null,
        })),
      )
      .execute();
    const all = await history(deviceId, server.adminToken, `?since=${new Date(old - 1000).toISOString()}`);
    expect(all.items[0]).toMatchObject({ cpuPercent: 1, memory: null, temperatureCelsius: null });
    const recent = await history(
      deviceId,
      server.adminToken,
      `?since=${encodeURIComponent(new Date(hourAgo + 1000).toISOString())}`,
    );
    expect(recent.items.every((s) => Date.parse(s.at) > hourAgo)).toBe(true);
    // The default is the last 24 hours.
    expect((await history(deviceId, server.adminToken)).items.map((s) => s.cpuPercent)[0]).toBe(1);

    // Presence's minute sweep (the first flush of a recorder runs one) prunes what is older than 7 days.
    const sweeping = new PresenceRecorder(server.app.deps, { flushMs: 60_000, staleAfterMs: 3_600_000 });
    await sweeping.flush();
    const after = await history(deviceId, server.adminToken, `?since=${new Date(old - 1000).toISOString()}`);
    expect(after.items.some((s) => Date.parse(s.at) === old)).toBe(false);
    expect(after.items.some((s) => Date.parse(s.at) === hourAgo)).toBe(true);
  });

  it('is read as the device is: viewers and fleet-narrowed members of its fleet; 404 for everyone else', async () => {
    const deviceId = seed.alpha.device.id;
    expect((await history(deviceId, seed.people.alphaViewer.token)).items.length).toBeGreaterThan(0);
    expect((await history(deviceId, seed.people.alphaFleetOperator.token)).items.length).toBeGreaterThan(0);
    await history(seed.alpha.device2.id, seed.people.alphaFleetOperator.token, '', 404);
    await history(deviceId, seed.people.betaOwner.token, '', 404);
    await history(seed.alpha.device.uuid, seed.people.betaViewer.token, '', 404);
    check(await server.api('GET', `/api/v1/devices/${deviceId}/state-history`), 401);
  });

  it('refuses a since that is no time with a clear 400', async () => {
    const answer = await server.api(
      'GET',
      `/api/v1/devices/${seed.alpha.device.id}/state-history?since=yesterday`,
      {
        token: server.adminToken,
      },
    );
    expect(answer.status).toBe(400);
    expect(JSON.stringify(answer.body)).toContain('since');
  });
});
