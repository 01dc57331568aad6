import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PresenceRecorder } from '../../src/features/presence/service.ts';
import { seedTwoOrgs, startTestServer, type TestServer } from '../harness.ts';
import { check } from './helpers.ts';

/** The dashboard: one request for an organization's figures, scoped like the device list. */
let server: TestServer;
let seed: Awaited<ReturnType<typeof seedTwoOrgs>>;

interface Dashboard {
  orgId: number;
  devices: {
    total: Record<string, number>;
    fleets: { fleetId: number; name: string; counts: Record<string, number> }[];
  };
  connections: { start: string; connects: number; disconnects: number }[];
  failedDeviceAuthentications: number | null;
  pendingAuthSets: number;
  liveSessions: number;
}

beforeAll(async () => {
  server = await startTestServer();
  seed = await seedTwoOrgs(server);
  // alpha-device connects and disconnects, alpha-device-2 connects and stays online: written the way the tunnel
  // writes presence.
  const presence = new PresenceRecorder(server.app.deps, { flushMs: 60_000, staleAfterMs: 3_600_000 });
  const now = Date.now();
  const first = {
    deviceId: seed.alpha.device.id,
    connectedAt: now - 5000,
    remoteAddress: '198.51.100.1',
    agentVersion: 'test',
  };
  presence.connected(first);
  presence.connected({ ...first, deviceId: seed.alpha.device2.id, connectedAt: now - 4000 });
  await presence.flush();
  presence.disconnected(first, { code: 1000, reason: 'bye' }, true);
  await presence.flush();
});

afterAll(async () => {
  await server?.close();
});

async function dashboard(orgId: number, token: string, status = 200): Promise<Dashboard> {
  return check(await server.api('GET', `/api/v1/orgs/${orgId}/dashboard`, { token }), status);
}

const sum = (d: Dashboard, key: 'connects' | 'disconnects') =>
  d.connections.reduce((n, bucket) => n + bucket[key], 0);

describe('the dashboard', () => {
  it('counts devices by status per fleet and in total, and the last 24 hours of connects and disconnects', async () => {
    const d = await dashboard(seed.alpha.orgId, server.adminToken);
    expect(d.devices.total).toEqual({
      online: 1,
      offline: 1,
      pending: 0,
      'never-connected': 0,
      decommissioned: 0,
    });
    expect(d.devices.fleets.map((f) => [f.name, f.counts.online, f.counts.offline])).toEqual([
      ['alpha-fleet', 0, 1],
      ['alpha-fleet-2', 1, 0],
    ]);
    expect(d.connections).toHaveLength(24);
    // The current hour is the last bucket: both connects and the one disconnect are in it.
    expect(d.connections.at(-1)).toMatchObject({ connects: 2, disconnects: 1 });
    expect(sum(d, 'connects')).toBe(2);
    expect(Date.parse(d.connections.at(-1)!.start)).toBeLessThanOrEqual(Date.now());
    expect(d).toMatchObject({ pendingAuthSets: 0, liveSessions: 0, failedDeviceAuthentications: 0 });
  });

  it('counts never-connected and decommissioned devices', async () => {
    const fresh = check(
      await server.api('POST', '/api/v1/devices', {
        token: server.adminToken,
        body: { fleetId: seed.alpha.fleet.id, name: 'fresh-device' },
      }),
      201,
    );
    const before = await dashboard(seed.alpha.orgId, server.adminToken);
    expect(before.devices.total['never-connected']).toBe(1);
    check(
      await server.api('POST', `/api/v1/devices/${fresh.id}/decommission`, { token: server.adminToken }),
      200,
    );
    const after = await dashboard(seed.alpha.orgId, server.adminToken);
    expect(after.devices.total).toMatchObject({ 'never-connected': 0, decommissioned: 1 });
  });

  it('counts a refused device credential that the audit log holds', async () => {
    const key = check(
      await server.api('POST', `/api/v1/fleets/${seed.alpha.fleet.id}/provisioning-keys`, {
        token: server.adminToken,
        body: { name: 'dashboard' },
      }),
      201,
    );
    const device = check(
      await server.api('POST', '/api/v1/devices', {
        token: server.adminToken,
        body: { fleetId: seed.alpha.fleet.id, name: 'exchanging-device' },
      }),
      201,
    );
    const exchange = (apiKey: string) =>
      server.api('POST', `/api-key/device/${device.id}/device-key`, {
        headers: { authorization: `Bearer ${key.key}` },
        body: { apiKey },
      });
    expect((await exchange('a'.repeat(32))).status).toBe(200);
    // Another key for a device that has one: refused, and audited as denied.
    expect((await exchange('b'.repeat(32))).status).toBe(409);
    const d = await dashboard(seed.alpha.orgId, server.adminToken);
    expect(d.failedDeviceAuthentications).toBe(1);
    expect((await dashboard(seed.beta.orgId, seed.people.betaOwner.token)).failedDeviceAuthentications).toBe(
      0,
    );
    check(await server.api('DELETE', `/api/v1/devices/${device.id}`, { token: server.adminToken }), 204);
  });

  it('shows a membership narrowed to fleets only its fleets, and no audit figure', async () => {
    const d = await dashboard(seed.alpha.orgId, seed.people.alphaFleetOperator.token);
    expect(d.devices.fleets.map((f) => f.name)).toEqual(['alpha-fleet']);
    expect(d.devices.total.online).toBe(0);
    expect(d.devices.total.offline).toBe(1);
    // Only alpha-device's connection is in its fleets.
    expect(sum(d, 'connects')).toBe(1);
    expect(sum(d, 'disconnects')).toBe(1);
    expect(d.failedDeviceAuthentications).toBeNull();
  });

  it('is read by a viewer, and is not found for people of another organization or none', async () => {
    const viewer = await dashboard(seed.alpha.orgId, seed.people.alphaViewer.token);
    expect(viewer.devices.total.online).toBe(1);
    // The figure comes from the audit log, which viewers may not read.
    expect(viewer.failedDeviceAuthentications).toBeNull();
    await dashboard(seed.alpha.orgId, seed.people.betaOwner.token, 404);
    await dashboard(999_999, server.adminToken, 404);
    const beta = await dashboard(seed.beta.orgId, seed.people.betaViewer.token);
    expect(beta.devices.total['never-connected']).toBe(1);
    expect(sum(beta, 'connects')).toBe(0);
    check(await server.api('GET', `/api/v1/orgs/${seed.alpha.orgId}/dashboard`), 401);
  });
});
