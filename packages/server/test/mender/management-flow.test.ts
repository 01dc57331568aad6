import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedAuthRequest, type TestKey, testKey } from '../auth-sets/signing.ts';
import { ADMIN_EMAIL, ADMIN_PASSWORD, dialectUnderTest } from '../harness.ts';
import { type ListeningServer, requestJson, startListeningServer } from '../listening.ts';

/**
 * Mender's device management flow as Mender's documentation runs it with curl, on a fresh fleetgate (no fleet, no
 * fleetgate-specific step): sign in with Basic auth at useradm, list pending devices, accept, reject,
 * preauthorize, page through and filter the list, read the device limit, decommission. A device accepted without
 * a fleet goes to the organization's default fleet, made then, audited and listed like any other fleet.
 */

const DEVAUTH = '/api/management/v2/devauth';

describe(`Mender's management flow on a fresh server (${dialectUnderTest})`, () => {
  let server: ListeningServer;
  let jwt: string;
  let serial = 0;

  /** A request as `curl -H "Authorization: Bearer $JWT"` sends it. */
  const curl = (method: string, path: string, body?: unknown) =>
    requestJson(`${server.url}${path}`, { method, token: jwt, ...(body === undefined ? {} : { body }) });
  /** A device's auth request, signed as mender-client signs it. */
  const deviceAsks = async (key: TestKey, identity: Record<string, string>) => {
    const { payload, headers } = signedAuthRequest(key, identity);
    const answer = await fetch(`${server.url}/api/devices/v1/authentication/auth_requests`, {
      method: 'POST',
      headers,
      body: new Uint8Array(payload),
    });
    return { status: answer.status, text: await answer.text() };
  };
  const newDevice = () => ({
    key: testKey('ec256'),
    identity: { mac: `02:f1:00:00:00:${(++serial).toString(16).padStart(2, '0')}` },
  });
  type MenderDevice = {
    id: string;
    status: string;
    identity_data: Record<string, string>;
    auth_sets: { id: string; status: string }[];
  };
  const listed = async (query: string) => {
    const answer = await curl('GET', `${DEVAUTH}/devices?${query}`);
    expect(answer.status, answer.text).toBe(200);
    return { devices: answer.body as MenderDevice[], total: Number(answer.headers['x-total-count']) };
  };
  const pendingOf = async (identity: Record<string, string>) =>
    (await listed('status=pending&per_page=500')).devices.find((d) => d.identity_data.mac === identity.mac)!;

  beforeAll(async () => {
    server = await startListeningServer();
  }, 60_000);
  afterAll(async () => {
    await server?.close();
  });

  it('signs in as Mender users do: Basic auth at useradm answers a token as text; wrong passwords 401', async () => {
    const basic = (user: string, password: string) =>
      requestJson(`${server.url}/api/management/v1/useradm/auth/login`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
      });
    const wrong = await basic(ADMIN_EMAIL, 'not the password');
    expect(wrong.status).toBe(401);
    expect((await basic('', '')).status).toBe(401);
    const answer = await basic(ADMIN_EMAIL, ADMIN_PASSWORD);
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/application\/jwt/);
    jwt = answer.text;
    expect(jwt.length).toBeGreaterThan(20);
    expect((await curl('GET', '/api/v1/fleets')).body.items).toEqual([]);
  });

  it('accepts a pending device with no fleet anywhere: it goes to the default fleet, made and audited then', async () => {
    const device = newDevice();
    expect((await deviceAsks(device.key, device.identity)).status).toBe(401);
    const pending = await pendingOf(device.identity);
    expect(pending).toMatchObject({ status: 'pending', auth_sets: [{ status: 'pending' }] });
    const accepted = await curl(
      'PUT',
      `${DEVAUTH}/devices/${pending.id}/auth/${pending.auth_sets[0]!.id}/status`,
      {
        status: 'accepted',
      },
    );
    expect(accepted.status, accepted.text).toBe(204);
    const token = await deviceAsks(device.key, device.identity);
    expect(token.status).toBe(200);
    expect(token.text.split('.')).toHaveLength(3);

    const fleets = (await curl('GET', '/api/v1/fleets')).body.items as {
      id: number;
      name: string;
      deviceCount: number;
    }[];
    expect(fleets).toEqual([expect.objectContaining({ name: 'default', deviceCount: 1 })]);
    const audit = await curl('GET', '/api/v1/audit?action=fleet.create&limit=10');
    expect(audit.status, audit.text).toBe(200);
    expect(audit.body.items).toEqual([
      expect.objectContaining({ action: 'fleet.create', outcome: 'success' }),
    ]);

    // A second device goes to the same default fleet; no second fleet is made.
    const other = newDevice();
    await deviceAsks(other.key, other.identity);
    const second = await pendingOf(other.identity);
    expect(
      (
        await curl('PUT', `${DEVAUTH}/devices/${second.id}/auth/${second.auth_sets[0]!.id}/status`, {
          status: 'accepted',
        })
      ).status,
    ).toBe(204);
    const after = (await curl('GET', '/api/v1/fleets')).body.items as { name: string; deviceCount: number }[];
    expect(after).toEqual([expect.objectContaining({ name: 'default', deviceCount: 2 })]);
  });

  it('rejects, preauthorizes, pages, filters by status, tells the limit and decommissions', async () => {
    const rejectedDevice = newDevice();
    await deviceAsks(rejectedDevice.key, rejectedDevice.identity);
    const toReject = await pendingOf(rejectedDevice.identity);
    expect(
      (
        await curl('PUT', `${DEVAUTH}/devices/${toReject.id}/auth/${toReject.auth_sets[0]!.id}/status`, {
          status: 'rejected',
        })
      ).status,
    ).toBe(204);
    expect((await deviceAsks(rejectedDevice.key, rejectedDevice.identity)).status).toBe(401);

    const preauthorized = newDevice();
    const pre = await curl('POST', `${DEVAUTH}/devices`, {
      identity_data: preauthorized.identity,
      pubkey: preauthorized.key.publicPem,
    });
    expect(pre.status, pre.text).toBe(201);
    expect(pre.headers.location).toMatch(/\/api\/management\/v2\/devauth\/devices\/[0-9a-f]{32}$/);
    const again = await curl('POST', `${DEVAUTH}/devices`, {
      identity_data: preauthorized.identity,
      pubkey: preauthorized.key.publicPem,
    });
    expect(again.status).toBe(409);
    expect((await deviceAsks(preauthorized.key, preauthorized.identity)).status).toBe(200);

    // Three accepted (two from the test before), one rejected; paged one by one.
    const accepted = await listed('status=accepted&per_page=500');
    expect(accepted.total).toBe(3);
    expect((await listed('status=rejected')).total).toBe(1);
    const pages = await Promise.all([1, 2, 3, 4].map((page) => listed(`per_page=1&page=${page}`)));
    expect(pages.map((p) => p.devices.length)).toEqual([1, 1, 1, 1]);
    expect(new Set(pages.map((p) => p.devices[0]!.id)).size).toBe(4);
    expect(pages[0]!.total).toBe(4);
    expect((await listed('per_page=1&page=5')).devices).toEqual([]);
    expect((await curl('GET', `${DEVAUTH}/devices?status=sideways`)).status).toBe(400);

    const limit = await curl('GET', `${DEVAUTH}/limits/max_devices`);
    expect(limit.body).toMatchObject({ limit: 0, unlimited: true, accepted: 3 });

    const uuid = String(pre.headers.location).split('/').pop()!;
    expect((await curl('DELETE', `${DEVAUTH}/devices/${uuid}`)).status).toBe(204);
    expect((await deviceAsks(preauthorized.key, preauthorized.identity)).status).toBe(401);
    // Gone from Mender's device list, as Mender deletes a decommissioned device.
    expect((await curl('GET', `${DEVAUTH}/devices/${uuid}`)).status).toBe(404);
  });

  it('refuses an accept over the device limit with 422, as Mender does', async () => {
    const org = (await curl('GET', '/api/v1/orgs')).body.items[0];
    const limited = await curl('PUT', `/api/v1/orgs/${org.id}/device-limit`, { limit: 2 });
    expect(limited.status, limited.text).toBe(200);
    const device = newDevice();
    await deviceAsks(device.key, device.identity);
    const pending = await pendingOf(device.identity);
    const over = await curl(
      'PUT',
      `${DEVAUTH}/devices/${pending.id}/auth/${pending.auth_sets[0]!.id}/status`,
      {
        status: 'accepted',
      },
    );
    expect(over.status).toBe(422);
    expect((await curl('GET', `${DEVAUTH}/limits/max_devices`)).body).toMatchObject({
      limit: 2,
      unlimited: false,
    });
  });
});
