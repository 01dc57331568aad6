import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DeviceTokens, openDeviceTokens } from '../../src/infra/device-tokens/index.ts';
import { apiFrom, check, createUser } from '../api/helpers.ts';
import { seedTwoOrgs, startTestServer, type TestServer } from '../harness.ts';
import {
  basic,
  bearer,
  createProvisioningKey,
  deviceSelf,
  newDeviceIdentity,
  registerNewDevice,
} from './helpers.ts';

/** Fixes a user would notice: device credentials, guessing, device limits, audit filters, import across orgs. */
let server: TestServer;
let seed: Awaited<ReturnType<typeof seedTwoOrgs>>;
let provisioningKey: string;
/** The server's own token signer: the same key file under its data directory. */
let tokens: DeviceTokens;

beforeAll(async () => {
  server = await startTestServer();
  seed = await seedTwoOrgs(server);
  provisioningKey = (await createProvisioningKey(server, seed.alpha.fleet.id)).key;
  tokens = await openDeviceTokens({ dataDir: server.config.dataDir, ttlSeconds: 3600 });
});

afterAll(async () => {
  await server?.close();
});

/** A fresh device key of the accepted shape (16-512 printable characters). */
const freshKey = (label: string) => `${label}-${randomBytes(12).toString('hex')}`;

function rotateKey(headers: Record<string, string>, key?: string) {
  return server.api('POST', '/api/v1/device/self/key', {
    headers,
    body: key === undefined ? {} : { key },
  });
}

async function keyRowsOf(deviceId: number) {
  return server.database.db
    .selectFrom('device_keys')
    .select(['id', 'revoked_at'])
    .where('device_id', '=', deviceId)
    .execute();
}

describe('POST /api/v1/device/self/key', () => {
  it('refuses a device token (403): only the current device key may mint a new key', async () => {
    const device = await registerNewDevice(server, provisioningKey);
    const { token } = await tokens.issue({ id: device.id, uuid: device.uuid, orgId: seed.alpha.orgId });
    // The token itself is good: the device reads its own record with it.
    expect(check(await deviceSelf(server, bearer(token)), 200)).toMatchObject({
      id: device.id,
      credential: 'device_token',
    });

    const refused = await rotateKey(bearer(token), freshKey('from-a-token'));
    expect(refused.status, JSON.stringify(refused.body)).toBe(403);
    expect(refused.body.error.code).toBe('forbidden');
    const generated = await rotateKey(bearer(token));
    expect(generated.status).toBe(403);
    expect(generated.body.key).toBeUndefined();
    // Nothing changed: still the one key from registration, and it still works.
    expect(await keyRowsOf(device.id)).toEqual([expect.objectContaining({ revoked_at: null })]);
    check(await deviceSelf(server, basic(device.uuid, device.apiKey)), 200);

    // With its device key the same request works.
    const newKey = freshKey('from-the-key');
    check(await rotateKey(basic(device.uuid, device.apiKey), newKey), 201);
    check(await deviceSelf(server, basic(device.uuid, newKey)), 200);
    check(await deviceSelf(server, basic(device.uuid, device.apiKey)), 401);
  });

  it('keeps the key history bounded: after 15 rotations, 1 live key and at most 10 revoked ones', async () => {
    const device = await registerNewDevice(server, provisioningKey);
    let current = device.apiKey;
    for (let i = 0; i < 15; i++) {
      const next = freshKey(`rotation-${i}`);
      check(await rotateKey(basic(device.uuid, current), next), 201);
      current = next;
    }
    const rows = await keyRowsOf(device.id);
    expect(rows.length).toBeLessThanOrEqual(11);
    expect(rows.filter((r) => r.revoked_at === null)).toHaveLength(1);
    expect(rows.filter((r) => r.revoked_at !== null)).toHaveLength(10);
    // The admin's key list says the same, and the newest key is the one that works.
    const listed = check(
      await server.api('GET', `/api/v1/devices/${device.uuid}/keys`, { token: server.adminToken }),
      200,
    );
    expect(listed.items).toHaveLength(rows.length);
    expect(listed.items[0]).toMatchObject({ origin: 'rotate', revokedAt: null });
    check(await deviceSelf(server, basic(device.uuid, current)), 200);
    check(await deviceSelf(server, basic(device.uuid, device.apiKey)), 401);
  });
});

describe('guessing device keys', () => {
  /** `GET /api/v1/device/self` from `source`, as a device behind that address would ask it. */
  const selfFrom = (source: string, headers: Record<string, string>) =>
    apiFrom(server, source, 'GET', '/api/v1/device/self', { headers });

  it('answers 429 after 30 wrong keys for a uuid from one address, yet the right key still gets in from anywhere', async () => {
    const target = await registerNewDevice(server, provisioningKey);
    const attacker = '198.51.100.77';
    for (let i = 0; i < 30; i++) {
      const wrong = await selfFrom(attacker, basic(target.uuid, freshKey(`guess-${i}`)));
      expect(wrong.status, `guess ${i}: ${JSON.stringify(wrong.body)}`).toBe(401);
    }
    const limited = await selfFrom(attacker, basic(target.uuid, freshKey('guess-31')));
    expect(limited.status, JSON.stringify(limited.body)).toBe(429);
    expect(limited.body.error.code).toBe('rate_limited');
    const retryAfter = limited.body.error.details.retryAfterSeconds;
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(600);
    expect(limited.headers['retry-after']).toBe(String(retryAfter));

    // The device's own key is never refused for someone else's guesses: not from its usual address, not from
    // the attacker's (a NAT both are behind), in a Basic or a Bearer pair.
    expect(check(await selfFrom('192.0.2.10', basic(target.uuid, target.apiKey)), 200).id).toBe(target.id);
    expect(check(await selfFrom(attacker, basic(target.uuid, target.apiKey)), 200).id).toBe(target.id);
    check(await selfFrom(attacker, bearer(`${target.uuid}:${target.apiKey}`)), 200);
    // A device token of the attacked device works as well.
    const { token } = await tokens.issue({ id: target.id, uuid: target.uuid, orgId: seed.alpha.orgId });
    check(await selfFrom(attacker, bearer(token)), 200);
  });

  it('answers 429 to an address after 300 wrong keys over many uuids; the devices behind it still get in', async () => {
    const neighbour = await registerNewDevice(server, provisioningKey);
    const nat = '198.51.100.88';
    for (let i = 0; i < 300; i++) {
      const uuid = randomBytes(16).toString('hex');
      expect((await selfFrom(nat, basic(uuid, freshKey(`scan-${i}`)))).status).toBe(401);
    }
    const limited = await selfFrom(nat, basic(neighbour.uuid, freshKey('scan-301')));
    expect(limited.status).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    // The scanner's unknown pairs stopped filling the recovery queue with its first 50 (RECOVERY_CANDIDATES_PER_SOURCE).
    const candidates = await server.database.db
      .selectFrom('recovery_candidates')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('source_ip', '=', nat)
      .executeTakeFirstOrThrow();
    expect(Number(candidates.n)).toBe(50);
    // A device behind the same address, with its right key, is served.
    expect(check(await selfFrom(nat, basic(neighbour.uuid, neighbour.apiKey)), 200).id).toBe(neighbour.id);
  });
});

describe('organization device limit on POST /api/v1/devices', () => {
  it('refuses a device over the limit (422) and makes room when a device is decommissioned', async () => {
    const spare = check(
      await server.api('POST', '/api/v1/devices', {
        token: server.adminToken,
        body: { fleetId: seed.alpha.fleet.id, name: 'limit-spare' },
      }),
      201,
    );
    const { n } = await server.database.db
      .selectFrom('devices')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('org_id', '=', seed.alpha.orgId)
      .where('decommissioned_at', 'is', null)
      .executeTakeFirstOrThrow();
    await server.database.db
      .updateTable('organizations')
      .set({ device_limit: Number(n) })
      .where('id', '=', seed.alpha.orgId)
      .execute();
    try {
      const over = await server.api('POST', '/api/v1/devices', {
        token: server.adminToken,
        body: { fleetId: seed.alpha.fleet.id, name: 'over-the-limit' },
      });
      expect(over.status, JSON.stringify(over.body)).toBe(422);
      expect(over.body.error.code).toBe('unprocessable');
      const named = check(
        await server.api('GET', '/api/v1/devices?q=over-the-limit', { token: server.adminToken }),
        200,
      );
      expect(named.items).toHaveLength(0);
      // Another organization is not counted against this one.
      check(
        await server.api('POST', '/api/v1/devices', {
          token: seed.people.betaOwner.token,
          body: { fleetId: seed.beta.fleet.id, name: 'beta-unlimited' },
        }),
        201,
      );

      check(
        await server.api('POST', `/api/v1/devices/${spare.uuid}/decommission`, { token: server.adminToken }),
        200,
      );
      const fits = check(
        await server.api('POST', '/api/v1/devices', {
          token: server.adminToken,
          body: { fleetId: seed.alpha.fleet.id, name: 'over-the-limit' },
        }),
        201,
      );
      expect(fits.orgId).toBe(seed.alpha.orgId);
      // Full again.
      check(
        await server.api('POST', '/api/v1/devices', {
          token: server.adminToken,
          body: { fleetId: seed.alpha.fleet.id, name: 'one-too-many' },
        }),
        422,
      );
    } finally {
      await server.database.db
        .updateTable('organizations')
        .set({ device_limit: null })
        .where('id', '=', seed.alpha.orgId)
        .execute();
    }
  });
});

describe('audit filter by actor', () => {
  it('?actor=<user id> answers that user events only, never a device whose id is the same number', async () => {
    const device = await registerNewDevice(server, provisioningKey);
    check(await rotateKey(basic(device.uuid, device.apiKey), freshKey('audited')), 201);

    // The user whose id equals the device's id: a seeded person, or one created until the ids meet.
    const tokensByUserId = new Map(Object.values(seed.people).map((p) => [p.userId, p.token]));
    const maxUserId = async () =>
      Number(
        (
          await server.database.db
            .selectFrom('users')
            .select((eb) => eb.fn.max('id').as('max'))
            .executeTakeFirstOrThrow()
        ).max,
      );
    for (let i = 0; (await maxUserId()) < device.id; i++) {
      expect(i, 'users created to reach the device id').toBeLessThan(100);
      const email = `audit-filler-${i}@example.test`;
      const id = await createUser(server, email, 'filler password 123');
      tokensByUserId.set(id, await server.login(email, 'filler password 123'));
    }
    const userToken = tokensByUserId.get(device.id);
    expect(userToken, `a user with id ${device.id} to filter by`).toBeDefined();

    // The device's own event is there, with the same number as its actor id.
    const deviceEvents = check(
      await server.api('GET', `/api/v1/audit?orgId=1&action=device.key.rotate&resourceId=${device.uuid}`, {
        token: server.adminToken,
      }),
      200,
    );
    expect(deviceEvents.items).toEqual([
      expect.objectContaining({ actor: expect.objectContaining({ type: 'device', id: device.id }) }),
    ]);

    // The organization's owner filters by that user id: no device event, whatever the number.
    const byOwner = check(
      await server.api('GET', `/api/v1/audit?actor=${device.id}&limit=500`, { token: server.adminToken }),
      200,
    );
    for (const event of byOwner.items) expect(event.actor).toMatchObject({ type: 'user', id: device.id });
    expect(byOwner.items.map((e: { action: string }) => e.action)).not.toContain('device.key.rotate');
    const byOwnerInOrg = check(
      await server.api('GET', `/api/v1/audit?orgId=1&actor=${device.id}&limit=500`, {
        token: server.adminToken,
      }),
      200,
    );
    for (const event of byOwnerInOrg.items)
      expect(event.actor).toMatchObject({ type: 'user', id: device.id });

    // The user filtering by their own id sees their own events (at least the sign-in), all of them theirs.
    const own = check(
      await server.api('GET', `/api/v1/audit?actor=${device.id}&limit=500`, { token: userToken }),
      200,
    );
    expect(own.items.map((e: { action: string }) => e.action)).toContain('auth.login');
    for (const event of own.items) expect(event.actor).toMatchObject({ type: 'user', id: device.id });
    expect(own.total).toBe(own.items.length);
  });
});

describe('POST /api/v1/devices/import across organizations', () => {
  it('a uuid or key of another organization fails with the neutral reason and reveals no device id', async () => {
    const member = check(
      await server.api('POST', `/api/v1/orgs/${seed.beta.orgId}/members`, {
        token: seed.people.betaOwner.token,
        body: { email: 'betaadmin-import@example.test', role: 'admin' },
      }),
      201,
    );
    const betaAdmin = await server.login('betaadmin-import@example.test', member.password);
    const alphaRegistered = await registerNewDevice(server, provisioningKey);
    const fresh = newDeviceIdentity();
    const items = [
      // An alpha device's uuid, with a key of its own.
      { uuid: seed.alpha.device.uuid, apiKey: freshKey('beta-import'), fleetId: seed.beta.fleet.id },
      // The same, written in capitals.
      {
        uuid: alphaRegistered.uuid.toUpperCase(),
        apiKey: freshKey('beta-import-2'),
        fleetId: seed.beta.fleet.id,
      },
      // A fresh uuid with an alpha device's key.
      { uuid: fresh.uuid, apiKey: alphaRegistered.apiKey, fleetId: seed.beta.fleet.id },
    ];

    // A viewer of beta may not import at all.
    const viewer = await server.api('POST', '/api/v1/devices/import', {
      token: seed.people.betaViewer.token,
      body: { items },
    });
    expect(viewer.status, JSON.stringify(viewer.body)).toBe(403);
    expect(viewer.body.error.code).toBe('forbidden');

    const answer = check(
      await server.api('POST', '/api/v1/devices/import', { token: betaAdmin, body: { items } }),
      200,
    );
    expect(answer.items).toEqual([
      { uuid: seed.alpha.device.uuid, outcome: 'failed', reason: 'this uuid or key is already in use' },
      { uuid: alphaRegistered.uuid, outcome: 'failed', reason: 'this uuid or key is already in use' },
      { uuid: fresh.uuid, outcome: 'failed', reason: 'this uuid or key is already in use' },
    ]);
    for (const item of answer.items) expect(item).not.toHaveProperty('deviceId');
    expect(JSON.stringify(answer)).not.toContain(`"deviceId":${seed.alpha.device.id}`);

    // Nothing moved or appeared: the alpha devices are where they were, with their keys.
    const alphaDevice = check(
      await server.api('GET', `/api/v1/devices/${seed.alpha.device.uuid}`, { token: server.adminToken }),
      200,
    );
    expect(alphaDevice).toMatchObject({ orgId: seed.alpha.orgId, fleetId: seed.alpha.fleet.id });
    check(await deviceSelf(server, basic(alphaRegistered.uuid, alphaRegistered.apiKey)), 200);
    check(await server.api('GET', `/api/v1/devices/${fresh.uuid}`, { token: server.adminToken }), 404);
    check(await server.api('GET', `/api/v1/devices/${seed.alpha.device.uuid}`, { token: betaAdmin }), 404);
  });
});
