import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiFrom, check } from '../api/helpers.ts';
import { seedTwoOrgs, startTestServer, type TestServer } from '../harness.ts';
import {
  basic,
  bearer,
  createProvisioningKey,
  deviceSelf,
  newDeviceIdentity,
  register,
  registerNewDevice,
} from './helpers.ts';

/** Provisioning keys and `POST /api/v1/devices/register` (balena's contract). */
let server: TestServer;
let seed: Awaited<ReturnType<typeof seedTwoOrgs>>;

beforeAll(async () => {
  server = await startTestServer();
  seed = await seedTwoOrgs(server);
});

afterAll(async () => {
  await server?.close();
});

describe('provisioning keys', () => {
  it('are shown once, listed without the key, revoked, and audited', async () => {
    const fleetId = seed.alpha.fleet.id;
    const created = await createProvisioningKey(server, fleetId, { maxUses: 5, expiresInDays: 30 });
    expect(created.key).toMatch(/^fgp_[\w-]{43}$/);
    expect(created).toMatchObject({ fleetId, maxUses: 5, uses: 0, revokedAt: null });

    const listed = check(
      await server.api('GET', `/api/v1/fleets/${fleetId}/provisioning-keys`, { token: server.adminToken }),
      200,
    );
    const row = listed.items.find((k: { id: number }) => k.id === created.id);
    expect(row).toMatchObject({ name: 'factory line 1', prefix: created.key.slice(0, 10), uses: 0 });
    expect(JSON.stringify(listed)).not.toContain(created.key);
    const stored = await server.database.db.selectFrom('provisioning_keys').selectAll().execute();
    expect(JSON.stringify(stored)).not.toContain(created.key);

    check(
      await server.api('DELETE', `/api/v1/provisioning-keys/${created.id}`, { token: server.adminToken }),
      204,
    );
    const after = check(
      await server.api('GET', `/api/v1/fleets/${fleetId}/provisioning-keys`, { token: server.adminToken }),
      200,
    );
    expect(after.items.find((k: { id: number }) => k.id === created.id).revokedAt).not.toBeNull();

    const audit = check(await server.api('GET', '/api/v1/audit?orgId=1', { token: server.adminToken }), 200);
    const actions = audit.items.map((e: { action: string }) => e.action);
    expect(actions).toContain('provisioning_key.create');
    expect(actions).toContain('provisioning_key.revoke');
  });

  it('are for admins of the fleet: viewers and operators 403, other organizations 404', async () => {
    const fleetId = seed.alpha.fleet.id;
    const { alphaViewer, alphaOperator, alphaAdmin, betaOwner } = seed.people;
    const path = `/api/v1/fleets/${fleetId}/provisioning-keys`;
    check(await server.api('POST', path, { token: alphaViewer.token, body: { name: 'x' } }), 403);
    check(await server.api('POST', path, { token: alphaOperator.token, body: { name: 'x' } }), 403);
    check(await server.api('GET', path, { token: alphaViewer.token }), 403);
    check(await server.api('POST', path, { token: betaOwner.token, body: { name: 'x' } }), 404);
    check(await server.api('GET', path, { token: betaOwner.token }), 404);
    const key = await createProvisioningKey(server, fleetId, {}, alphaAdmin.token);
    check(await server.api('DELETE', `/api/v1/provisioning-keys/${key.id}`, { token: betaOwner.token }), 404);
    check(
      await server.api('DELETE', `/api/v1/provisioning-keys/${key.id}`, { token: alphaViewer.token }),
      403,
    );
    check(await server.api('POST', path, { body: { name: 'x' } }), 401);
  });
});

describe('POST /api/v1/devices/register', () => {
  it('creates the device in the key fleet; the device then authenticates with uuid + key', async () => {
    const { key } = await createProvisioningKey(server, seed.alpha.fleet.id);
    const identity = newDeviceIdentity();
    const answer = check(
      await register(server, key, {
        uuid: identity.uuid.toUpperCase(),
        device_type: 'raspberrypi4-64',
        api_key: identity.apiKey,
        name: 'kiosk-7',
        os_version: 'balenaOS 5.3.1',
        agent_version: '16.4.0',
      }),
      201,
    );
    expect(answer).toEqual({ id: expect.any(Number), uuid: identity.uuid });

    const viaBasic = check(await deviceSelf(server, basic(identity.uuid, identity.apiKey)), 200);
    expect(viaBasic).toMatchObject({
      id: answer.id,
      uuid: identity.uuid,
      name: 'kiosk-7',
      fleetId: seed.alpha.fleet.id,
      deviceType: 'raspberrypi4-64',
      osVersion: 'balenaOS 5.3.1',
      agentVersion: '16.4.0',
      credential: 'device_key',
    });
    const viaBearer = check(await deviceSelf(server, bearer(`${identity.uuid}:${identity.apiKey}`)), 200);
    expect(viaBearer.id).toBe(answer.id);

    // The key is stored as a hash only, and the admin sees the device in the fleet.
    const keys = await server.database.db.selectFrom('device_keys').selectAll().execute();
    expect(JSON.stringify(keys)).not.toContain(identity.apiKey);
    const device = check(
      await server.api('GET', `/api/v1/devices/${identity.uuid}`, { token: server.adminToken }),
      200,
    );
    expect(device).toMatchObject({ fleetId: seed.alpha.fleet.id, name: 'kiosk-7' });
    // The device sees a change the moment it is answered (on SQLite it reads through a second connection).
    check(
      await server.api('PATCH', `/api/v1/devices/${identity.uuid}`, {
        token: server.adminToken,
        body: { name: 'kiosk-8' },
      }),
      200,
    );
    expect(check(await deviceSelf(server, basic(identity.uuid, identity.apiKey)), 200).name).toBe('kiosk-8');

    // Someone else's key (or a wrong one) does not work for this uuid.
    check(await deviceSelf(server, basic(identity.uuid, `${identity.apiKey}x`)), 401);
    check(await server.api('GET', '/api/v1/device/self', { token: server.adminToken }), 401);
  });

  it('answers 409 for a uuid already registered, without using the key up', async () => {
    const { key, id } = await createProvisioningKey(server, seed.alpha.fleet.id, { maxUses: 2 });
    const first = await registerNewDevice(server, key);
    const again = await register(server, key, {
      uuid: first.uuid,
      device_type: 'raspberrypi4-64',
      api_key: newDeviceIdentity().apiKey,
    });
    expect(again.status).toBe(409);
    const row = check(
      await server.api('GET', `/api/v1/fleets/${seed.alpha.fleet.id}/provisioning-keys`, {
        token: server.adminToken,
      }),
      200,
    ).items.find((k: { id: number }) => k.id === id);
    expect(row.uses).toBe(1);
    expect(row.lastUsedAt).not.toBeNull();
  });

  it("answers a uuid of another organization's device as one of its own fleet's, without saying it exists", async () => {
    const { key } = await createProvisioningKey(server, seed.alpha.fleet.id, { maxUses: 5 });
    const answers = [];
    for (const uuid of [seed.alpha.device.uuid, seed.beta.device.uuid]) {
      const answer = await register(server, key, {
        uuid,
        device_type: 'raspberrypi4-64',
        api_key: newDeviceIdentity().apiKey,
      });
      expect(answer.status, uuid).toBe(409);
      answers.push(answer.body);
    }
    expect(answers[0]).toEqual({
      error: {
        code: 'conflict',
        message: 'this uuid cannot be used: choose another',
        details: { reason: 'uuid_unavailable' },
      },
    });
    expect(answers[1]).toEqual(answers[0]);
  });

  it('refuses wrong, expired, revoked and used-up keys with the same 401', async () => {
    const fleetId = seed.alpha.fleet.id;
    const expired = await createProvisioningKey(server, fleetId);
    await server.database.db
      .updateTable('provisioning_keys')
      .set({ expires_at: Date.now() - 1000 })
      .where('id', '=', expired.id)
      .execute();
    const revoked = await createProvisioningKey(server, fleetId);
    check(
      await server.api('DELETE', `/api/v1/provisioning-keys/${revoked.id}`, { token: server.adminToken }),
      204,
    );
    const exhausted = await createProvisioningKey(server, fleetId, { maxUses: 1 });
    await registerNewDevice(server, exhausted.key);

    const messages = new Set<string>();
    for (const key of [`fgp_${'A'.repeat(43)}`, expired.key, revoked.key, exhausted.key, undefined]) {
      const identity = newDeviceIdentity();
      const answer = await register(
        server,
        key,
        { uuid: identity.uuid, device_type: 'raspberrypi4-64', api_key: identity.apiKey },
        '10.1.0.1',
      );
      expect(answer.status, JSON.stringify(answer.body)).toBe(401);
      messages.add(answer.body.error.message);
      const created = await server.database.db
        .selectFrom('devices')
        .select('id')
        .where('uuid', '=', identity.uuid)
        .executeTakeFirst();
      expect(created).toBeUndefined();
    }
    expect(messages.size).toBe(1);
    // A user's session token is not a provisioning key either.
    const identity = newDeviceIdentity();
    const withSession = await register(
      server,
      server.adminToken,
      { uuid: identity.uuid, device_type: 'raspberrypi4-64', api_key: identity.apiKey },
      '10.1.0.1',
    );
    expect(withSession.status).toBe(401);
  });

  it('lets exactly max_uses of many concurrent registrations through', async () => {
    const { key, id } = await createProvisioningKey(server, seed.alpha.fleet2.id, { maxUses: 3 });
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => {
        const identity = newDeviceIdentity();
        return register(
          server,
          key,
          { uuid: identity.uuid, device_type: 'raspberrypi4-64', api_key: identity.apiKey },
          `10.2.0.${i + 1}`,
        );
      }),
    );
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(3);
    expect(statuses.filter((s) => s === 401)).toHaveLength(9);
    const row = await server.database.db
      .selectFrom('provisioning_keys')
      .select('uses')
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    expect(Number(row.uses)).toBe(3);
  });

  it('answers 400 for an unknown device type and does not count the use', async () => {
    const { key, id } = await createProvisioningKey(server, seed.alpha.fleet.id, { maxUses: 1 });
    const identity = newDeviceIdentity();
    const answer = await register(server, key, {
      uuid: identity.uuid,
      device_type: 'toaster-9000',
      api_key: identity.apiKey,
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error.message).toContain('toaster-9000');
    const row = await server.database.db
      .selectFrom('provisioning_keys')
      .select('uses')
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    expect(Number(row.uses)).toBe(0);
    await registerNewDevice(server, key);
  });

  it('answers 400, never 5xx, to malformed registrations', async () => {
    const { key } = await createProvisioningKey(server, seed.alpha.fleet.id);
    const good = { ...newDeviceIdentity() };
    const base = { uuid: good.uuid, device_type: 'raspberrypi4-64', api_key: good.apiKey };
    const bad: unknown[] = [
      {},
      [],
      'null',
      { ...base, uuid: 'z'.repeat(32) },
      { ...base, uuid: `${good.uuid}00` },
      { ...base, uuid: 12345 },
      { ...base, api_key: 'short' },
      { ...base, api_key: 'has spaces in the key, long enough' },
      { ...base, api_key: 'k'.repeat(513) },
      { ...base, name: 'n'.repeat(10_000) },
      { ...base, name: 'bell\u0007' },
      { ...base, os_version: 'v'.repeat(129) },
      { ...base, device_type: 'Not A Slug!' },
      { ...base, device_type: 'd'.repeat(100) },
    ];
    for (const body of bad) {
      const answer = await server.api('POST', '/api/v1/devices/register', {
        headers: bearer(key),
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
      expect(answer.status, `${JSON.stringify(body).slice(0, 80)} → ${answer.status}`).toBe(400);
    }
    const broken = await server.app.inject({
      method: 'POST',
      url: '/api/v1/devices/register',
      headers: { ...bearer(key), 'content-type': 'application/json' },
      payload: '{"uuid": ',
    });
    expect(broken.statusCode).toBe(400);
    const huge = await server.app.inject({
      method: 'POST',
      url: '/api/v1/devices/register',
      headers: { ...bearer(key), 'content-type': 'application/json' },
      payload: JSON.stringify({ ...base, name: 'x'.repeat(5_000_000) }),
    });
    expect(huge.statusCode).toBeGreaterThanOrEqual(400);
    expect(huge.statusCode).toBeLessThan(500);
    // None of them created the device.
    check(await server.api('GET', `/api/v1/devices/${good.uuid}`, { token: server.adminToken }), 404);
  });

  it("stops at the organization's device limit; decommissioned devices do not count", async () => {
    const { key } = await createProvisioningKey(server, seed.beta.fleet.id, {}, seed.people.betaOwner.token);
    await server.database.db
      .updateTable('organizations')
      .set({ device_limit: 2 })
      .where('id', '=', seed.beta.orgId)
      .execute();
    try {
      await registerNewDevice(server, key, 'generic-amd64');
      const identity = newDeviceIdentity();
      const body = { uuid: identity.uuid, device_type: 'generic-amd64', api_key: identity.apiKey };
      const over = await register(server, key, body);
      expect(over.status).toBe(422);
      expect(over.body.error.message).toContain('device limit (2)');
      check(
        await server.api('POST', `/api/v1/devices/${seed.beta.device.uuid}/decommission`, {
          token: seed.people.betaOwner.token,
        }),
        200,
      );
      check(await register(server, key, body), 201);
    } finally {
      await server.database.db
        .updateTable('organizations')
        .set({ device_limit: null })
        .where('id', '=', seed.beta.orgId)
        .execute();
    }
  });

  it('makes a source wait after many refused attempts, even with a good key', async () => {
    const { key } = await createProvisioningKey(server, seed.alpha.fleet.id);
    const source = '10.3.0.1';
    let limited = false;
    for (let i = 0; i < 25 && !limited; i++) {
      const identity = newDeviceIdentity();
      const answer = await register(
        server,
        `fgp_guess${i}`.padEnd(47, 'x'),
        { uuid: identity.uuid, device_type: 'raspberrypi4-64', api_key: identity.apiKey },
        source,
      );
      expect([401, 429]).toContain(answer.status);
      limited = answer.status === 429;
    }
    expect(limited).toBe(true);
    const identity = newDeviceIdentity();
    const body = { uuid: identity.uuid, device_type: 'raspberrypi4-64', api_key: identity.apiKey };
    expect((await register(server, key, body, source)).status).toBe(429);
    // Another source is not affected.
    expect((await register(server, key, body, '10.3.0.2')).status).toBe(201);
  });

  it('is refused to a device or user credential on management routes of other organizations', async () => {
    const { key } = await createProvisioningKey(server, seed.alpha.fleet.id);
    const device = await registerNewDevice(server, key);
    // A device credential is not a user: management routes answer 401/403/404, never data.
    const answer = await apiFrom(server, '127.0.0.1', 'GET', `/api/v1/devices/${device.uuid}`, {
      headers: basic(device.uuid, device.apiKey),
    });
    expect([401, 403, 404]).toContain(answer.status);
  });
});
