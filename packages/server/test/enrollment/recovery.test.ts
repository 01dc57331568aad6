import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/schema.ts';
import {
  RECOVERY_CANDIDATES_MAX,
  RECOVERY_CANDIDATES_PER_SOURCE,
} from '../../src/features/device-auth/authenticate.ts';
import { apiFrom, check } from '../api/helpers.ts';
import { signedAuthRequest, testKey } from '../auth-sets/signing.ts';
import { seedTwoOrgs, startTestServer, type TestServer } from '../harness.ts';
import {
  basic,
  createProvisioningKey,
  deviceSelf,
  newDeviceIdentity,
  register,
  registerNewDevice,
} from './helpers.ts';

/** Surviving a database loss (seed 000): recovery candidates, adoption, and the balena config.json import. */
let server: TestServer;
let seed: Awaited<ReturnType<typeof seedTwoOrgs>>;

beforeAll(async () => {
  server = await startTestServer();
  seed = await seedTwoOrgs(server);
});

afterAll(async () => {
  await server?.close();
});

const tables: (keyof Database)[] = [
  'organizations',
  'users',
  'sessions',
  'fleets',
  'devices',
  'provisioning_keys',
  'device_keys',
  'auth_sets',
  'recovery_candidates',
  'audit_events',
];

/** Every row of every table that could hold a credential, as one text. */
async function everythingStored(): Promise<string> {
  const parts: string[] = [];
  for (const table of tables)
    parts.push(JSON.stringify(await server.database.db.selectFrom(table).selectAll().execute()));
  return parts.join('\n');
}

/** What a database loss does to a device: its rows are gone, the device in the field still has its key. */
async function loseDevice(deviceId: number): Promise<void> {
  await server.database.db.deleteFrom('device_keys').where('device_id', '=', deviceId).execute();
  await server.database.db.deleteFrom('devices').where('id', '=', deviceId).execute();
}

async function candidates(token = server.adminToken) {
  return check(await server.api('GET', '/api/v1/recovery-candidates?limit=500', { token }), 200) as {
    items: { id: number; uuid: string; attempts: number; sourceIp: string | null }[];
    total: number;
  };
}

describe('recovery after a database loss', () => {
  it('remembers the lost device (hash only) and adopting it makes its own key work again', async () => {
    const { key } = await createProvisioningKey(server, seed.alpha.fleet.id);
    const device = await registerNewDevice(server, key);
    await loseDevice(device.id);

    // The device keeps trying: refused, but remembered once, with its attempts counted.
    for (let i = 0; i < 3; i++) check(await deviceSelf(server, basic(device.uuid, device.apiKey)), 401);
    const queued = (await candidates()).items.filter((c) => c.uuid === device.uuid);
    expect(queued).toHaveLength(1);
    expect(queued[0]).toMatchObject({ attempts: 3, sourceIp: '127.0.0.1' });
    expect(await everythingStored()).not.toContain(device.apiKey);

    // Only server administrators see or act on candidates.
    check(
      await server.api('GET', '/api/v1/recovery-candidates', { token: seed.people.alphaAdmin.token }),
      403,
    );
    check(
      await server.api('POST', '/api/v1/recovery-candidates/adopt', {
        token: seed.people.alphaAdmin.token,
        body: { ids: [queued[0]!.id], fleetId: seed.alpha.fleet.id },
      }),
      403,
    );

    const adopted = check(
      await server.api('POST', '/api/v1/recovery-candidates/adopt', {
        token: server.adminToken,
        body: { ids: [queued[0]!.id, 999_999], fleetId: seed.alpha.fleet2.id, deviceType: 'raspberrypi3' },
      }),
      200,
    );
    expect(adopted.items).toEqual([
      { id: queued[0]!.id, uuid: device.uuid, outcome: 'adopted', deviceId: expect.any(Number) },
      { id: 999_999, uuid: null, outcome: 'not-found', reason: expect.any(String) },
    ]);
    const self = check(await deviceSelf(server, basic(device.uuid, device.apiKey)), 200);
    expect(self).toMatchObject({
      uuid: device.uuid,
      fleetId: seed.alpha.fleet2.id,
      deviceType: 'raspberrypi3',
    });
    expect((await candidates()).items.map((c) => c.uuid)).not.toContain(device.uuid);
    const keys = check(
      await server.api('GET', `/api/v1/devices/${device.uuid}/keys`, { token: server.adminToken }),
      200,
    );
    expect(keys.items.map((k: { origin: string }) => k.origin)).toEqual(['recovery']);
    const audit = check(await server.api('GET', '/api/v1/audit?orgId=1', { token: server.adminToken }), 200);
    expect(audit.items.map((e: { action: string }) => e.action)).toContain('recovery.adopt');
  });

  it('does not adopt into a fleet of an organization the admin is not in, nor a taken uuid', async () => {
    const identity = newDeviceIdentity();
    check(await deviceSelf(server, basic(identity.uuid, identity.apiKey)), 401);
    const [candidate] = (await candidates()).items.filter((c) => c.uuid === identity.uuid);
    check(
      await server.api('POST', '/api/v1/recovery-candidates/adopt', {
        token: server.adminToken,
        body: { ids: [candidate!.id], fleetId: seed.beta.fleet.id },
      }),
      404,
    );
    // Meanwhile an admin created a device with that uuid by hand: adoption leaves it alone.
    await server.database.db
      .updateTable('recovery_candidates')
      .set({ uuid: seed.alpha.device.uuid })
      .where('id', '=', candidate!.id)
      .execute();
    const answer = check(
      await server.api('POST', '/api/v1/recovery-candidates/adopt', {
        token: server.adminToken,
        body: { ids: [candidate!.id], fleetId: seed.alpha.fleet.id },
      }),
      200,
    );
    expect(answer.items[0]).toMatchObject({ outcome: 'conflict' });
  });

  it('discards candidates', async () => {
    const a = newDeviceIdentity();
    const b = newDeviceIdentity();
    check(await deviceSelf(server, basic(a.uuid, a.apiKey)), 401);
    check(await deviceSelf(server, basic(b.uuid, b.apiKey)), 401);
    const ids = (await candidates()).items.filter((c) => [a.uuid, b.uuid].includes(c.uuid)).map((c) => c.id);
    expect(ids).toHaveLength(2);
    const one = check(
      await server.api('DELETE', `/api/v1/recovery-candidates/${ids[0]}`, { token: server.adminToken }),
      200,
    );
    expect(one.discarded).toBe(1);
    const both = check(
      await server.api('POST', '/api/v1/recovery-candidates/discard', {
        token: server.adminToken,
        body: { ids },
      }),
      200,
    );
    expect(both.discarded).toBe(1);
    expect((await candidates()).items.map((c) => c.uuid)).not.toContain(b.uuid);
  });

  it('a flood of made-up credentials from one address adds only a few candidates', async () => {
    const before = (await candidates()).total;
    for (let i = 0; i < RECOVERY_CANDIDATES_PER_SOURCE + 30; i++) {
      const made = newDeviceIdentity();
      const answer = await apiFrom(server, '10.9.9.9', 'GET', '/api/v1/device/self', {
        headers: basic(made.uuid, made.apiKey),
      });
      expect(answer.status).toBe(401);
    }
    const added = (await candidates()).total - before;
    expect(added).toBe(RECOVERY_CANDIDATES_PER_SOURCE);
    expect(RECOVERY_CANDIDATES_MAX).toBeGreaterThan(RECOVERY_CANDIDATES_PER_SOURCE);
    // Another address is still heard.
    const other = newDeviceIdentity();
    await apiFrom(server, '10.9.9.10', 'GET', '/api/v1/device/self', {
      headers: basic(other.uuid, other.apiKey),
    });
    expect((await candidates()).items.map((c) => c.uuid)).toContain(other.uuid);
  });
});

describe('POST /api/v1/devices/import', () => {
  it('restores devices with their own keys; running it again finds them present', async () => {
    const lost = [newDeviceIdentity(), newDeviceIdentity()];
    const items = lost.map((d) => ({ uuid: d.uuid, apiKey: d.apiKey, fleetId: seed.alpha.fleet.id }));
    const first = check(
      await server.api('POST', '/api/v1/devices/import', { token: server.adminToken, body: { items } }),
      200,
    );
    expect(first.items.map((r: { outcome: string }) => r.outcome)).toEqual(['created', 'created']);
    for (const d of lost) check(await deviceSelf(server, basic(d.uuid, d.apiKey)), 200);

    const again = check(
      await server.api('POST', '/api/v1/devices/import', {
        token: server.adminToken,
        body: {
          items: [
            ...items,
            { uuid: lost[0]!.uuid, apiKey: 'another-key-entirely-0001', fleetId: seed.alpha.fleet.id },
            { ...newDeviceIdentity(), fleetId: seed.beta.fleet.id },
            { ...newDeviceIdentity(), fleetId: seed.alpha.fleet.id, deviceType: 'toaster-9000' },
          ],
        },
      }),
      200,
    );
    expect(again.items.map((r: { outcome: string }) => r.outcome)).toEqual([
      'present',
      'present',
      'failed',
      'failed',
      'failed',
    ]);
    expect(again.items[2].reason).toContain('uuid');
    expect(again.items[3].reason).toContain('fleet');
    expect(again.items[4].reason).toContain('toaster-9000');
  });

  it('is for people who may add devices to the fleet, and validates its input', async () => {
    const item = { ...newDeviceIdentity(), fleetId: seed.alpha.fleet.id };
    const viewer = await server.api('POST', '/api/v1/devices/import', {
      token: seed.people.alphaViewer.token,
      body: { items: [item] },
    });
    expect(viewer.status).toBe(403);
    check(await deviceSelf(server, basic(item.uuid, item.apiKey)), 401);
    for (const items of [
      [],
      [{ ...item, uuid: 'g'.repeat(32) }],
      [{ ...item, apiKey: 'short' }],
      [{ ...item, fleetId: '1' }],
      Array.from({ length: 501 }, () => ({ ...newDeviceIdentity(), fleetId: seed.alpha.fleet.id })),
    ]) {
      const answer = await server.api('POST', '/api/v1/devices/import', {
        token: server.adminToken,
        body: { items },
      });
      expect(answer.status).toBe(400);
    }
  });
});

describe('restoring a provisioning key devices still hold', () => {
  /** A key-pair device's signed auth request with `tenantToken`, as the agent or mender-client sends it. */
  async function askToJoin(mac: string, tenantToken: string) {
    const { payload, headers } = signedAuthRequest(testKey('ed25519'), { mac }, { tenantToken });
    const r = await server.app.inject({
      method: 'POST',
      url: '/api/devices/v1/authentication/auth_requests',
      payload,
      headers,
      remoteAddress: '10.7.0.1',
    });
    return { status: r.statusCode, body: JSON.parse(r.body) };
  }

  it('lets devices register and ask to join with it again, in its fleet; audited, stored as a hash only', async () => {
    // The key was in an OS image and a mender.conf before the database was lost.
    const lostKey = `balena-${newDeviceIdentity().apiKey}`;
    const refused = await askToJoin('02:70:00:00:00:01', lostKey);
    expect(refused).toMatchObject({
      status: 401,
      body: { error: { details: { reason: 'bad_tenant_token' } } },
    });

    const restored = check(
      await server.api('POST', `/api/v1/fleets/${seed.alpha.fleet2.id}/provisioning-keys`, {
        token: seed.people.alphaAdmin.token,
        body: { name: 'image 2026-11', key: lostKey },
      }),
      201,
    );
    expect(restored).toMatchObject({ fleetId: seed.alpha.fleet2.id, prefix: lostKey.slice(0, 6), uses: 0 });
    expect(await everythingStored()).not.toContain(lostKey);

    // A key-pair device sending it as its tenant token waits in the key's fleet; a device key registers.
    expect(await askToJoin('02:70:00:00:00:01', lostKey)).toMatchObject({
      status: 401,
      body: { error: { details: { reason: 'pending' } } },
    });
    const pending = check(
      await server.api('GET', '/api/v1/auth-sets?status=pending&limit=500', { token: server.adminToken }),
      200,
    ).items.find((s: { identity: { mac?: string } }) => s.identity.mac === '02:70:00:00:00:01');
    expect(pending).toMatchObject({ orgId: 1, fleetId: seed.alpha.fleet2.id });
    const fresh = newDeviceIdentity();
    check(
      await register(server, lostKey, {
        uuid: fresh.uuid,
        device_type: 'raspberrypi4-64',
        api_key: fresh.apiKey,
      }),
      201,
    );
    expect(check(await deviceSelf(server, basic(fresh.uuid, fresh.apiKey)), 200).fleetId).toBe(
      seed.alpha.fleet2.id,
    );

    const audit = check(
      await server.api('GET', '/api/v1/audit?action=provisioning_key.restore', { token: server.adminToken }),
      200,
    );
    expect(audit.items).toHaveLength(1);
    expect(audit.items[0]).toMatchObject({
      actor: { label: seed.people.alphaAdmin.email },
      details: { name: 'image 2026-11', fleetId: seed.alpha.fleet2.id, restored: true },
    });
    expect(JSON.stringify(audit.items[0])).not.toContain(lostKey);
  });

  it('refuses a value some key has already, a short one, and people who may not manage keys', async () => {
    const { key } = await createProvisioningKey(server, seed.alpha.fleet.id);
    const again = await server.api('POST', `/api/v1/fleets/${seed.alpha.fleet.id}/provisioning-keys`, {
      token: server.adminToken,
      body: { name: 'twice', key },
    });
    expect(again.status).toBe(409);
    expect(again.body.error.message).toMatch(/exists already/);
    check(
      await server.api('POST', `/api/v1/fleets/${seed.alpha.fleet.id}/provisioning-keys`, {
        token: server.adminToken,
        body: { name: 'short', key: 'too-short' },
      }),
      400,
    );
    check(
      await server.api('POST', `/api/v1/fleets/${seed.alpha.fleet.id}/provisioning-keys`, {
        token: seed.people.alphaViewer.token,
        body: { name: 'viewer', key: `viewer-${newDeviceIdentity().apiKey}` },
      }),
      403,
    );
    check(
      await server.api('POST', `/api/v1/fleets/${seed.alpha.fleet.id}/provisioning-keys`, {
        token: seed.people.betaOwner.token,
        body: { name: 'other org', key: `beta-${newDeviceIdentity().apiKey}` },
      }),
      404,
    );
  });
});

describe('key-pair devices after a database loss', () => {
  it('preauthorized again from the kept CSV rows, a device waiting in the pending queue is accepted at its next request', async () => {
    const key = testKey('ec256');
    const identity = { serial: 'P-lost-0001' };
    const ask = async () => {
      const { payload, headers } = signedAuthRequest(key, identity);
      const r = await server.app.inject({
        method: 'POST',
        url: '/api/devices/v1/authentication/auth_requests',
        payload,
        headers,
        remoteAddress: '10.7.0.2',
      });
      return r.statusCode;
    };
    // Its rows are gone: the device's request is a new pending set.
    expect(await ask()).toBe(401);
    const preauthorized = check(
      await server.api('POST', '/api/v1/auth-sets/preauthorize', {
        token: server.adminToken,
        body: { fleetId: seed.alpha.fleet.id, devices: [{ identity, publicKey: key.publicPem }] },
      }),
      200,
    );
    expect(preauthorized.created).toBe(1);
    expect(await ask()).toBe(200);
    const sets = check(
      await server.api('GET', '/api/v1/auth-sets?limit=500', { token: server.adminToken }),
      200,
    ).items.filter((s: { identity: { serial?: string } }) => s.identity.serial === identity.serial);
    expect(sets.map((s: { status: string }) => s.status)).toEqual(['accepted']);
  });
});
