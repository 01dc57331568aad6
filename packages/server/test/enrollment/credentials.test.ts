import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecommissionedDevice } from '../../src/features/devices/decommission.ts';
import { type DeviceTokens, openDeviceTokens } from '../../src/infra/device-tokens/index.ts';
import { check } from '../api/helpers.ts';
import { seedTwoOrgs, startTestServer, type TestServer } from '../harness.ts';
import { basic, bearer, createProvisioningKey, deviceSelf, registerNewDevice } from './helpers.ts';

/** A device's own keys: rotation, an admin's revocation, decommissioning. */
let server: TestServer;
let seed: Awaited<ReturnType<typeof seedTwoOrgs>>;
let provisioningKey: string;
/** The server's own token signer: the same key file under its data directory. */
let tokens: DeviceTokens;

beforeAll(async () => {
  server = await startTestServer();
  seed = await seedTwoOrgs(server);
  provisioningKey = (await createProvisioningKey(server, seed.alpha.fleet.id)).key;
  tokens = await openDeviceTokens({ dataDir: server.config.dataDir, ttlSeconds: 600 });
});

afterAll(async () => {
  await server?.close();
});

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function tokenFor(device: { id: number; uuid: string }): Promise<string> {
  return (await tokens.issue({ id: device.id, uuid: device.uuid, orgId: seed.alpha.orgId })).token;
}

describe('device keys', () => {
  it('a device rotates its key to one it chose: the old key is refused, the new one works', async () => {
    const device = await registerNewDevice(server, provisioningKey);
    const newKey = 'b'.repeat(40);
    const rotated = check(
      await server.api('POST', '/api/v1/device/self/key', {
        headers: basic(device.uuid, device.apiKey),
        body: { key: newKey },
      }),
      201,
    );
    expect(rotated.key).toBeUndefined();
    check(await deviceSelf(server, basic(device.uuid, device.apiKey)), 401);
    expect(check(await deviceSelf(server, basic(device.uuid, newKey)), 200).id).toBe(device.id);
    // The old key of a known uuid is a guess, not a lost device: no recovery candidate.
    const candidates = await server.database.db
      .selectFrom('recovery_candidates')
      .select('id')
      .where('uuid', '=', device.uuid)
      .execute();
    expect(candidates).toHaveLength(0);
  });

  it('a device rotates to a generated key, answered once', async () => {
    const device = await registerNewDevice(server, provisioningKey);
    const rotated = check(
      await server.api('POST', '/api/v1/device/self/key', {
        headers: bearer(`${device.uuid}:${device.apiKey}`),
      }),
      201,
    );
    expect(rotated.key).toMatch(/^[\w-]{43}$/);
    check(await deviceSelf(server, bearer(`${device.uuid}:${device.apiKey}`)), 401);
    check(await deviceSelf(server, bearer(`${device.uuid}:${rotated.key}`)), 200);
    // Too short a key, or a person calling the device route, are refused.
    check(
      await server.api('POST', '/api/v1/device/self/key', {
        headers: basic(device.uuid, rotated.key),
        body: { key: 'short' },
      }),
      400,
    );
    check(await server.api('POST', '/api/v1/device/self/key', { token: server.adminToken, body: {} }), 401);
  });

  it('an admin lists a device keys and revokes them: key and token refused at once', async () => {
    const device = await registerNewDevice(server, provisioningKey);
    const token = await tokenFor(device);
    check(await deviceSelf(server, bearer(token)), 200);
    check(await deviceSelf(server, basic(device.uuid, device.apiKey)), 200);
    const listed = check(
      await server.api('GET', `/api/v1/devices/${device.uuid}/keys`, { token: server.adminToken }),
      200,
    );
    expect(listed.items).toEqual([
      expect.objectContaining({ origin: 'register', revokedAt: null, lastUsedAt: expect.any(String) }),
    ]);

    // Operators and viewers may not; other organizations do not see the device.
    check(
      await server.api('DELETE', `/api/v1/devices/${device.uuid}/keys`, {
        token: seed.people.alphaOperator.token,
      }),
      403,
    );
    check(
      await server.api('DELETE', `/api/v1/devices/${device.uuid}/keys`, {
        token: seed.people.betaOwner.token,
      }),
      404,
    );
    check(await deviceSelf(server, basic(device.uuid, device.apiKey)), 200);

    await pause(2);
    const revoked = check(
      await server.api('DELETE', `/api/v1/devices/${device.uuid}/keys`, {
        token: seed.people.alphaAdmin.token,
      }),
      200,
    );
    expect(revoked.revoked).toBe(1);
    check(await deviceSelf(server, basic(device.uuid, device.apiKey)), 401);
    check(await deviceSelf(server, bearer(token)), 401);
    const after = check(
      await server.api('GET', `/api/v1/devices/${device.id}/keys`, { token: server.adminToken }),
      200,
    );
    expect(after.items[0].revokedAt).not.toBeNull();
  });

  it('an admin revokes one key by id', async () => {
    const device = await registerNewDevice(server, provisioningKey);
    const [key] = check(
      await server.api('GET', `/api/v1/devices/${device.uuid}/keys`, { token: server.adminToken }),
      200,
    ).items;
    check(
      await server.api('DELETE', `/api/v1/devices/${device.uuid}/keys/999999`, { token: server.adminToken }),
      404,
    );
    check(
      await server.api('DELETE', `/api/v1/devices/${device.uuid}/keys/${key.id}`, {
        token: server.adminToken,
      }),
      200,
    );
    check(await deviceSelf(server, basic(device.uuid, device.apiKey)), 401);
  });
});

describe('decommission', () => {
  it('refuses every credential of the device at once, rejects its auth sets and tells the listeners', async () => {
    const device = await registerNewDevice(server, provisioningKey);
    const token = await tokenFor(device);
    check(await deviceSelf(server, bearer(token)), 200);
    const now = Date.now();
    await server.database.db
      .insertInto('auth_sets')
      .values({
        org_id: seed.alpha.orgId,
        device_id: device.id,
        fleet_id: seed.alpha.fleet.id,
        identity: '{"mac":"02:00:00:00:00:01"}',
        identity_hash: 'a'.repeat(64),
        public_key: 'PEM',
        public_key_hash: 'b'.repeat(64),
        key_type: 'ed25519',
        status: 'accepted',
        source_ip: null,
        created_at: now,
        updated_at: now,
        last_request_at: null,
      })
      .execute();
    const heard: DecommissionedDevice[] = [];
    const stop = server.app.deps.events.on('device.decommissioned', (d) => {
      heard.push(d);
    });
    const failing = server.app.deps.events.on('device.decommissioned', () => {
      throw new Error('a broken listener does not stop the others');
    });
    try {
      check(
        await server.api('POST', `/api/v1/devices/${device.uuid}/decommission`, {
          token: seed.people.alphaOperator.token,
        }),
        403,
      );
      expect(heard).toHaveLength(0);
      await pause(2);
      const answer = check(
        await server.api('POST', `/api/v1/devices/${device.uuid}/decommission`, { token: server.adminToken }),
        200,
      );
      expect(answer.status).toBe('decommissioned');
      expect(heard).toEqual([
        { deviceId: device.id, uuid: device.uuid, orgId: seed.alpha.orgId, fleetId: seed.alpha.fleet.id },
      ]);
    } finally {
      stop();
      failing();
    }
    check(await deviceSelf(server, basic(device.uuid, device.apiKey)), 401);
    check(await deviceSelf(server, bearer(`${device.uuid}:${device.apiKey}`)), 401);
    check(await deviceSelf(server, bearer(token)), 401);
    // A token issued afterwards is refused too: the device is decommissioned, not only its old tokens.
    check(await deviceSelf(server, bearer(await tokenFor(device))), 401);
    const sets = await server.database.db
      .selectFrom('auth_sets')
      .select('status')
      .where('device_id', '=', device.id)
      .execute();
    expect(sets).toEqual([{ status: 'rejected' }]);

    const listed = check(
      await server.api('GET', '/api/v1/devices?status=decommissioned', { token: server.adminToken }),
      200,
    );
    expect(listed.items.map((d: { uuid: string }) => d.uuid)).toEqual([device.uuid]);
    const active = check(
      await server.api('GET', '/api/v1/devices?status=never-connected&limit=500', {
        token: server.adminToken,
      }),
      200,
    );
    expect(active.items.map((d: { uuid: string }) => d.uuid)).not.toContain(device.uuid);

    const audit = check(await server.api('GET', '/api/v1/audit?orgId=1', { token: server.adminToken }), 200);
    expect(audit.items.map((e: { action: string }) => e.action)).toContain('device.decommission');
  });

  it('is not offered to other organizations', async () => {
    check(
      await server.api('POST', `/api/v1/devices/${seed.alpha.device.uuid}/decommission`, {
        token: seed.people.betaOwner.token,
      }),
      404,
    );
    // A name no device has (paths take names too): unknown, like another organization's device.
    check(
      await server.api('POST', '/api/v1/devices/not-a-device/decommission', { token: server.adminToken }),
      404,
    );
  });
});
