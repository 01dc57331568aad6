import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../harness.ts';
import { check } from './helpers.ts';

/**
 * A device's status with three links (its agent's tunnel, OpenVPN, mender-connect): the one status rule, in a device's view
 * (`deviceStatus`), in the list's status filter (`statusCondition`, SQL) and in the dashboard's counts
 * (`statusExpression`), agree for every combination. Presence
 * is what the tunnel hub and the OpenVPN backend write (their own tests connect real clients); here it is set
 * directly, to reach each combination.
 */
let server: TestServer;
const now = Date.now();
/**
 * Name → tunnel, VPN and mender-connect links (each connected, disconnected), and the status and links expected.
 */
type Link = [number | null, number | null];
const none: Link = [null, null];
const cases: [string, Link, Link, Link, string, string[]][] = [
  ['tunnel-only', [now - 1000, null], none, none, 'online', ['tunnel']],
  ['vpn-only', none, [now - 1000, null], none, 'online', ['vpn']],
  ['mender-only', none, none, [now - 1000, null], 'online', ['mender-connect']],
  ['both', [now - 2000, null], [now - 1000, null], none, 'online', ['tunnel', 'vpn']],
  ['vpn-gone-tunnel-up', [now - 1000, null], [now - 5000, now - 3000], none, 'online', ['tunnel']],
  ['vpn-gone', none, [now - 5000, now - 3000], none, 'offline', []],
  ['mender-gone', none, none, [now - 5000, now - 3000], 'offline', []],
  ['tunnel-gone-vpn-gone', [now - 9000, now - 8000], [now - 5000, now - 3000], none, 'offline', []],
  ['never', none, none, none, 'never-connected', []],
];

beforeAll(async () => {
  server = await startTestServer();
  const fleet = check(
    await server.api('POST', '/api/v1/fleets', {
      token: server.adminToken,
      body: { orgId: 1, name: 'links', defaultDeviceType: 'raspberrypi4-64' },
    }),
    201,
  );
  for (const [
    name,
    [connected, disconnected],
    [vpnConnected, vpnDisconnected],
    [menderConnected, menderDisconnected],
  ] of cases) {
    const { id } = check(
      await server.api('POST', '/api/v1/devices', {
        token: server.adminToken,
        body: { fleetId: fleet.id, name },
      }),
      201,
    );
    await server.database.db
      .updateTable('devices')
      .set({
        connected_at: connected,
        disconnected_at: disconnected,
        vpn_connected_at: vpnConnected,
        vpn_disconnected_at: vpnDisconnected,
        mender_connected_at: menderConnected,
        mender_disconnected_at: menderDisconnected,
        vpn_address: vpnConnected !== null && vpnDisconnected === null ? '10.240.0.7' : null,
      })
      .where('id', '=', id)
      .execute();
  }
});

afterAll(async () => {
  await server?.close();
});

describe('a device online through its tunnel, OpenVPN, mender-connect or several', () => {
  it('shows the same status in its view and in the status filter, with the links and VPN address', async () => {
    const all = check(
      await server.api('GET', '/api/v1/devices?limit=100', { token: server.adminToken }),
      200,
    );
    for (const [name, , , , status, links] of cases) {
      const view = all.items.find((d: { name: string }) => d.name === name);
      expect({ name, status: view.status, onlineVia: view.onlineVia }).toEqual({
        name,
        status,
        onlineVia: links,
      });
      expect(view.vpnAddress).toBe(links.includes('vpn') ? '10.240.0.7' : null);
    }
    for (const status of ['online', 'offline', 'never-connected']) {
      const listed = check(
        await server.api('GET', `/api/v1/devices?status=${status}&limit=100`, { token: server.adminToken }),
        200,
      );
      expect(listed.items.map((d: { name: string }) => d.name).sort()).toEqual(
        cases
          .filter(([, , , , s]) => s === status)
          .map(([name]) => name)
          .sort(),
      );
    }
    // The dashboard's counts (`statusExpression`, one SQL value) agree as well.
    const dashboard = check(
      await server.api('GET', '/api/v1/orgs/1/dashboard', { token: server.adminToken }),
      200,
    );
    for (const status of ['online', 'offline', 'never-connected'])
      expect({ status, n: dashboard.devices.total[status] }).toEqual({
        status,
        n: cases.filter(([, , , , s]) => s === status).length,
      });
  });
});
