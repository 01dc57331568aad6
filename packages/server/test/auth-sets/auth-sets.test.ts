import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { check } from '../api/helpers.ts';
import {
  type ApiAnswer,
  dialectUnderTest,
  seedTwoOrgs,
  startTestServer,
  type TestServer,
} from '../harness.ts';
import { signedAuthRequest, type TestKey, testKey } from './signing.ts';

const NATIVE = '/api/v1/device-auth/auth_requests';
const MENDER = '/api/devices/v1/authentication/auth_requests';
const DEVAUTH = '/api/management/v2/devauth';

describe(`auth sets and signed auth requests (${dialectUnderTest})`, () => {
  let server: TestServer;
  let seed: Awaited<ReturnType<typeof seedTwoOrgs>>;
  let serial = 0;
  const nextIdentity = () => ({
    mac: `02:00:00:00:${(++serial)
      .toString(16)
      .padStart(4, '0')
      .replace(/(..)(..)/, '$1:$2')}`,
  });

  const send = async (
    payload: Buffer | string,
    headers: Record<string, string>,
    url = MENDER,
    remoteAddress = '127.0.0.1',
  ): Promise<ApiAnswer> => {
    const r = await server.app.inject({ method: 'POST', url, payload, headers, remoteAddress });
    const isJson = (r.headers['content-type'] ?? '').toString().includes('json');
    return { status: r.statusCode, body: isJson && r.body ? JSON.parse(r.body) : r.body, headers: r.headers };
  };
  const authRequest = (
    key: TestKey,
    identity: Record<string, string>,
    options: { tenantToken?: string } = {},
  ) => {
    const { payload, headers } = signedAuthRequest(key, identity, options);
    return send(payload, headers);
  };
  const pendingSetOf = async (identity: Record<string, string>) => {
    const list = check(
      await server.api('GET', '/api/v1/auth-sets?status=pending&limit=500', { token: server.adminToken }),
      200,
    );
    return list.items.find((s: { identity: Record<string, string> }) => s.identity.mac === identity.mac);
  };

  beforeAll(async () => {
    server = await startTestServer();
    seed = await seedTwoOrgs(server);
  }, 60_000);
  afterAll(async () => server?.close());

  it('puts an unknown device in the pending queue once, and an admin accepts it into a fleet', async () => {
    const key = testKey('ec256');
    const identity = nextIdentity();
    const first = await authRequest(key, identity);
    expect(first.status).toBe(401);
    expect(first.body.error.details.reason).toBe('pending');
    expect((await authRequest(key, identity)).status).toBe(401);
    const set = await pendingSetOf(identity);
    expect(set).toMatchObject({ status: 'pending', deviceId: null, keyType: 'ecdsa-p256', requestCount: 2 });

    // A viewer may see the queue but not accept.
    const viewer = seed.people.alphaViewer.token;
    check(await server.api('GET', '/api/v1/auth-sets?status=pending', { token: viewer }), 200);
    const denied = check(
      await server.api('POST', '/api/v1/auth-sets/accept', { token: viewer, body: { ids: [set.id] } }),
      200,
    );
    expect(denied.items[0].outcome).toBe('error');
    // Another organization does not even see it.
    const beta = check(
      await server.api('GET', '/api/v1/auth-sets', { token: seed.people.betaOwner.token }),
      200,
    );
    expect(beta.items.some((s: { id: number }) => s.id === set.id)).toBe(false);

    const accepted = check(
      await server.api('POST', '/api/v1/auth-sets/accept', {
        token: seed.people.alphaAdmin.token,
        body: { ids: [set.id], fleetId: seed.alpha.fleet2.id },
      }),
      200,
    );
    expect(accepted.items[0]).toMatchObject({ id: set.id, outcome: 'accepted' });
    const deviceId = accepted.items[0].deviceId;

    const ok = await authRequest(key, identity);
    expect(ok.status).toBe(200);
    expect(ok.headers['content-type']).toMatch(/^application\/jwt/);
    const token = ok.body as string;
    expect(token.split('.')).toHaveLength(3);

    // Inventory: PUT replaces, PATCH merges; shown on the device.
    const put = await server.api('PUT', '/api/devices/v1/inventory/device/attributes', {
      token,
      body: [
        { name: 'device_type', value: 'qemux86-64' },
        { name: 'ipv4_eth0', value: ['10.0.0.2/24'] },
      ],
    });
    expect(put.status).toBe(200);
    check(
      await server.api('PATCH', '/api/devices/v1/inventory/device/attributes', {
        token,
        body: [{ name: 'kernel', value: '6.1' }],
      }),
      200,
    );
    const device = check(
      await server.api('GET', `/api/v1/devices/${deviceId}`, { token: server.adminToken }),
      200,
    );
    expect(device.fleetId).toBe(seed.alpha.fleet2.id);
    expect(device.name).toBe(identity.mac);
    expect(device.attributes).toEqual({
      device_type: 'qemux86-64',
      ipv4_eth0: ['10.0.0.2/24'],
      kernel: '6.1',
    });
    check(
      await server.api('PUT', '/api/devices/v1/inventory/device/attributes', {
        token,
        body: [{ name: 'kernel', value: '6.2' }],
      }),
      200,
    );
    const replaced = check(
      await server.api('GET', `/api/v1/devices/${deviceId}`, { token: server.adminToken }),
      200,
    );
    expect(replaced.attributes).toEqual({ kernel: '6.2' });

    expect(
      (await server.api('POST', '/api/devices/v2/deployments/device/deployments/next', { token, body: {} }))
        .status,
    ).toBe(204);
    expect(
      (await server.api('GET', '/api/devices/v1/deployments/device/deployments/next', { token })).status,
    ).toBe(204);
    expect((await server.api('GET', '/api/devices/v1/deployments/device/deployments/next')).status).toBe(401);
    // Bad inventory: not a list, names with control characters → 400.
    expect(
      (await server.api('PUT', '/api/devices/v1/inventory/device/attributes', { token, body: { a: 1 } }))
        .status,
    ).toBe(400);
    expect(
      (
        await server.api('PUT', '/api/devices/v1/inventory/device/attributes', {
          token,
          body: [{ name: 'a\u0001', value: 'x' }],
        })
      ).status,
    ).toBe(400);
    // A reserved name is refused with its reason; names like constructor are attributes like any other.
    const proto = await server.api('PATCH', '/api/devices/v1/inventory/device/attributes', {
      token,
      body: [{ name: '__proto__', value: ['x'] }],
    });
    expect(proto.status).toBe(400);
    expect(proto.body.error.message).toMatch(/"__proto__" is a reserved name/);
    check(
      await server.api('PATCH', '/api/devices/v1/inventory/device/attributes', {
        token,
        body: [{ name: 'constructor', value: 'c' }],
      }),
      200,
    );
    expect(
      check(await server.api('GET', `/api/v1/devices/${deviceId}`, { token: server.adminToken }), 200)
        .attributes,
    ).toEqual({ kernel: '6.2', constructor: 'c' });

    // Rejecting it: the next request and the token already issued are refused.
    check(
      await server.api('POST', '/api/v1/auth-sets/reject', {
        token: server.adminToken,
        body: { ids: [set.id] },
      }),
      200,
    );
    const refused = await authRequest(key, identity);
    expect(refused.status).toBe(401);
    expect(refused.body.error.details.reason).toBe('rejected');
    expect(
      (await server.api('GET', '/api/devices/v1/deployments/device/deployments/next', { token })).status,
    ).toBe(401);
  });

  it('accepts preauthorized RSA, ECDSA P-256/P-384 and Ed25519 keys on the first request, on both routes', async () => {
    for (const [type, url] of [
      ['rsa', MENDER],
      ['ec256', NATIVE],
      ['ec384', MENDER],
      ['ed25519', NATIVE],
    ] as const) {
      const key = testKey(type);
      const identity = nextIdentity();
      const pre = check(
        await server.api('POST', '/api/v1/auth-sets/preauthorize', {
          token: server.adminToken,
          body: { fleetId: seed.alpha.fleet.id, devices: [{ identity, publicKey: key.publicPem }] },
        }),
        200,
      );
      expect(pre.created, JSON.stringify(pre)).toBe(1);
      const { payload, headers } = signedAuthRequest(key, identity);
      const answer = await send(payload, headers, url);
      expect(answer.status, `${type}: ${JSON.stringify(answer.body)}`).toBe(200);
      const sets = check(
        await server.api('GET', `/api/v1/auth-sets?deviceId=${pre.items[0].device.id}`, {
          token: server.adminToken,
        }),
        200,
      );
      expect(sets.items[0].status).toBe('accepted');
    }
  });

  it('answers 409 with the existing device for a known identity, unless force; rows report one by one', async () => {
    const key = testKey('ed25519');
    const identity = nextIdentity();
    const body = {
      fleetId: seed.alpha.fleet.id,
      devices: [{ identity, publicKey: key.publicPem, name: 'pre-1' }],
    };
    const created = check(
      await server.api('POST', '/api/v1/auth-sets/preauthorize', { token: server.adminToken, body }),
      200,
    );
    expect(created.items[0].device.name).toBe('pre-1');
    const again = check(
      await server.api('POST', '/api/v1/auth-sets/preauthorize', { token: server.adminToken, body }),
      200,
    );
    expect(again.items[0]).toMatchObject({ outcome: 'conflict', device: { id: created.items[0].device.id } });
    const bad = check(
      await server.api('POST', '/api/v1/auth-sets/preauthorize', {
        token: server.adminToken,
        body: {
          fleetId: seed.alpha.fleet.id,
          devices: [
            { identity: nextIdentity(), publicKey: testKey('rsa1024').publicPem },
            { identity: nextIdentity(), publicKey: 'not a key' },
          ],
        },
      }),
      200,
    );
    expect(bad.items.map((i: { outcome: string }) => i.outcome)).toEqual(['invalid', 'invalid']);
    expect(bad.items[0].reason).toMatch(/2048/);
    const forced = check(
      await server.api('POST', '/api/v1/auth-sets/preauthorize', {
        token: server.adminToken,
        body: { ...body, force: true },
      }),
      200,
    );
    expect(forced.items[0]).toMatchObject({ outcome: 'created', device: { id: created.items[0].device.id } });

    // Mender management API: 201 + Location, then 409 with the device.
    const mKey = testKey('ec256');
    const mIdentity = nextIdentity();
    const m = await server.api('POST', `${DEVAUTH}/devices`, {
      token: server.adminToken,
      body: { identity_data: mIdentity, pubkey: mKey.publicPem },
    });
    expect(m.status, JSON.stringify(m.body)).toBe(201);
    expect(m.headers.location).toMatch(/^\/api\/management\/v2\/devauth\/devices\/[0-9a-f]{32}$/);
    const conflict = await server.api('POST', `${DEVAUTH}/devices`, {
      token: server.adminToken,
      body: { identity_data: mIdentity, pubkey: testKey('ec256').publicPem },
    });
    expect(conflict.status).toBe(409);
    expect(conflict.body.error.details.device.uuid).toBe(String(m.headers.location).split('/').pop());
    // A viewer may not preauthorize.
    const viewer = await server.api('POST', `${DEVAUTH}/devices`, {
      token: seed.people.alphaViewer.token,
      body: { identity_data: nextIdentity(), pubkey: mKey.publicPem },
    });
    expect(viewer.status).toBe(403);
    expect((await server.api('GET', `${DEVAUTH}/devices`)).status).toBe(401);
  });

  it('serves the Mender management API: list, show, status, delete, decommission, limits', async () => {
    const key = testKey('rsa');
    const identity = nextIdentity();
    expect((await authRequest(key, identity)).status).toBe(401);
    const list = await server.api('GET', `${DEVAUTH}/devices?status=pending&per_page=500`, {
      token: server.adminToken,
    });
    expect(list.status).toBe(200);
    expect(Number(list.headers['x-total-count'])).toBeGreaterThan(0);
    const dev = list.body.find(
      (d: { identity_data: Record<string, string> }) => d.identity_data.mac === identity.mac,
    );
    expect(dev).toMatchObject({ status: 'pending', auth_sets: [{ status: 'pending' }] });
    expect(dev.id).toMatch(/^[0-9a-f]{64}$/);
    check(await server.api('GET', `${DEVAUTH}/devices/${dev.id}`, { token: server.adminToken }), 200);
    expect(
      (await server.api('GET', `${DEVAUTH}/devices/${'0'.repeat(32)}`, { token: server.adminToken })).status,
    ).toBe(404);

    const aid = dev.auth_sets[0].id;
    const put = await server.api('PUT', `${DEVAUTH}/devices/${dev.id}/auth/${aid}/status`, {
      token: server.adminToken,
      body: { status: 'accepted' },
    });
    expect(put.status, JSON.stringify(put.body)).toBe(204);
    expect((await authRequest(key, identity)).status).toBe(200);
    const accepted = check(
      await server.api('GET', `${DEVAUTH}/devices?status=accepted&per_page=500`, {
        token: server.adminToken,
      }),
      200,
    );
    const acceptedDev = accepted.find(
      (d: { identity_data: Record<string, string> }) => d.identity_data.mac === identity.mac,
    );
    expect(acceptedDev.id).toMatch(/^[0-9a-f]{32}$/);
    expect(
      (
        await server.api('PUT', `${DEVAUTH}/devices/${acceptedDev.id}/auth/${aid}/status`, {
          token: server.adminToken,
          body: { status: 'bogus' },
        })
      ).status,
    ).toBe(400);

    // Decommission: the replayed request is refused from now on.
    expect(
      (await server.api('DELETE', `${DEVAUTH}/devices/${acceptedDev.id}`, { token: server.adminToken }))
        .status,
    ).toBe(204);
    const replay = await authRequest(key, identity);
    expect(replay.status).toBe(401);
    expect(replay.body.error.details.reason).toBe('decommissioned');

    // A pending identity deleted through its auth set.
    const k2 = testKey('ec256');
    const id2 = nextIdentity();
    await authRequest(k2, id2);
    const set2 = await pendingSetOf(id2);
    expect(
      (
        await server.api('DELETE', `${DEVAUTH}/devices/${set2.identityHash}/auth/${set2.id}`, {
          token: server.adminToken,
        })
      ).status,
    ).toBe(204);
    expect(await pendingSetOf(id2)).toBeUndefined();

    const limits = check(
      await server.api('GET', `${DEVAUTH}/limits/max_devices`, { token: server.adminToken }),
      200,
    );
    expect(limits).toMatchObject({ limit: 0, unlimited: true });
  });

  it('enforces the device limit: 422 on accept, 401 on a preauthorized auth request', async () => {
    const betaToken = seed.people.betaOwner.token;
    const orgId = seed.beta.orgId;
    expect(
      (
        await server.api('PUT', `/api/v1/orgs/${orgId}/device-limit`, {
          token: seed.people.betaViewer.token,
          body: { limit: 0 },
        })
      ).status,
    ).toBe(403);
    check(
      await server.api('PUT', `/api/v1/orgs/${orgId}/device-limit`, { token: betaToken, body: { limit: 0 } }),
      200,
    );
    // Preauthorized in beta: found without a tenant token, refused over the limit.
    const key = testKey('ed25519');
    const identity = nextIdentity();
    check(
      await server.api('POST', '/api/v1/auth-sets/preauthorize', {
        token: betaToken,
        body: { fleetId: seed.beta.fleet.id, devices: [{ identity, publicKey: key.publicPem }] },
      }),
      200,
    );
    const over = await authRequest(key, identity);
    expect(over.status).toBe(401);
    expect(over.body.error.details.reason).toBe('device_limit');
    // A pending set in beta (through a provisioning key) cannot be accepted at 0.
    const pk = check(
      await server.api('POST', `/api/v1/fleets/${seed.beta.fleet.id}/provisioning-keys`, {
        token: betaToken,
        body: { name: 'k' },
      }),
      201,
    );
    const k2 = testKey('ec256');
    const id2 = nextIdentity();
    const pending = await authRequest(k2, id2, { tenantToken: pk.key });
    expect(pending.status).toBe(401);
    const sets = check(
      await server.api('GET', `/api/v1/auth-sets?status=pending&orgId=${orgId}`, { token: betaToken }),
      200,
    );
    expect(sets.items[0]).toMatchObject({ fleetId: seed.beta.fleet.id, orgId });
    const refused = await server.api('PUT', `/api/v1/auth-sets/${sets.items[0].id}/status`, {
      token: betaToken,
      body: { status: 'accepted' },
    });
    expect(refused.status).toBe(422);
    // One limit for every device: beta's device made through the API holds a place, the preauthorized one
    // waits outside the limit until it is accepted. Room for one more:
    const room = check(
      await server.api('PUT', `/api/v1/orgs/${orgId}/device-limit`, { token: betaToken, body: { limit: 2 } }),
      200,
    );
    expect(room).toMatchObject({ limit: 2, accepted: 1 });
    check(
      await server.api('PUT', `/api/v1/auth-sets/${sets.items[0].id}/status`, {
        token: betaToken,
        body: { status: 'accepted' },
      }),
      200,
    );
    // The limit is now reached by that device: the preauthorized one is still refused.
    expect((await authRequest(key, identity)).status).toBe(401);
    check(
      await server.api('PUT', `/api/v1/orgs/${orgId}/device-limit`, {
        token: betaToken,
        body: { limit: null },
      }),
      200,
    );
    expect((await authRequest(key, identity)).status).toBe(200);
  });

  it('answers bad input with a clear 4xx, never a 5xx', async () => {
    const key = testKey('ec256');
    const identity = nextIdentity();
    const good = signedAuthRequest(key, identity);
    const expectStatus = async (answer: Promise<ApiAnswer>, status: number, message?: RegExp) => {
      const a = await answer;
      expect(a.status, JSON.stringify(a.body)).toBe(status);
      if (message) expect(a.body.error.message).toMatch(message);
      return a;
    };
    // Signature over other bytes; missing and non-base64 signatures.
    const other = signedAuthRequest(key, { mac: 'ff:ff' });
    await expectStatus(
      send(good.payload, { ...good.headers, 'x-men-signature': other.headers['x-men-signature']! }),
      401,
      /signature/,
    );
    await expectStatus(send(Buffer.concat([good.payload, Buffer.from(' ')]), good.headers), 401, /signature/);
    const { 'x-men-signature': _drop, ...noSignature } = good.headers;
    await expectStatus(send(good.payload, noSignature), 400, /X-MEN-Signature/);
    await expectStatus(
      send(good.payload, { ...good.headers, 'x-men-signature': 'not base64!!' }),
      400,
      /X-MEN-Signature/,
    );
    // Malformed bodies.
    const sig = (body: string) => signedAuthRequest(key, identity, { rawBody: body });
    const notJson = sig('{"id_data": ');
    await expectStatus(send(notJson.payload, notJson.headers), 400, /JSON/);
    const idNotJson = sig(JSON.stringify({ id_data: 'mac=1', pubkey: key.publicPem }));
    await expectStatus(send(idNotJson.payload, idNotJson.headers), 400, /id_data/);
    const idNotObject = sig(JSON.stringify({ id_data: '[1]', pubkey: key.publicPem }));
    await expectStatus(send(idNotObject.payload, idNotObject.headers), 400);
    const idNumber = sig(JSON.stringify({ id_data: '{"mac":1}', pubkey: key.publicPem }));
    await expectStatus(send(idNumber.payload, idNumber.headers), 400);
    // JSON.parse keeps "__proto__" as a key; an identity holding it is refused, never quietly read without it.
    for (const idData of ['{"__proto__":"x"}', '{"__proto__":["x"]}', '{"__proto__":"x","mac":"a"}']) {
      const proto = sig(JSON.stringify({ id_data: idData, pubkey: key.publicPem }));
      await expectStatus(send(proto.payload, proto.headers), 400, /"__proto__" is a reserved name/);
    }
    const dup = sig(JSON.stringify({ id_data: '{"mac":"a","mac":"b"}', pubkey: key.publicPem }));
    await expectStatus(send(dup.payload, dup.headers), 400, /twice/);
    const outerDup = sig(
      `{"id_data":"{\\"mac\\":\\"a\\"}","id_data":"{\\"mac\\":\\"b\\"}","pubkey":${JSON.stringify(key.publicPem)}}`,
    );
    await expectStatus(send(outerDup.payload, outerDup.headers), 400, /twice/);
    const huge = sig(
      JSON.stringify({ id_data: JSON.stringify({ mac: 'x'.repeat(70_000) }), pubkey: key.publicPem }),
    );
    await expectStatus(send(huge.payload, huge.headers), 413);
    const bigValue = sig(
      JSON.stringify({ id_data: JSON.stringify({ mac: 'x'.repeat(5000) }), pubkey: key.publicPem }),
    );
    await expectStatus(send(bigValue.payload, bigValue.headers), 400);
    const arr = sig('[]');
    await expectStatus(send(arr.payload, arr.headers), 400);
    await expectStatus(send(Buffer.from([0xff, 0xfe, 0x00]), good.headers), 400);
    await expectStatus(send(Buffer.alloc(0), good.headers), 400);
    // Keys that are refused, each with its reason.
    for (const [type, reason] of [
      ['dsa', /DSA/],
      ['rsa1024', /2048/],
      ['secp256k1', /P-256/],
    ] as const) {
      const weak = signedAuthRequest(testKey(type), nextIdentity());
      await expectStatus(send(weak.payload, weak.headers), 400, reason);
    }
    const garbageKey = sig(
      JSON.stringify({
        id_data: '{"mac":"a"}',
        pubkey: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n',
      }),
    );
    await expectStatus(send(garbageKey.payload, garbageKey.headers), 400);
    // Provisioning keys as tenant token: unknown, expired, used up → 401.
    await expectStatus(
      authRequest(key, nextIdentity(), { tenantToken: 'fgp_nope' }),
      401,
      /provisioning key/,
    );
    const pk = check(
      await server.api('POST', `/api/v1/fleets/${seed.alpha.fleet.id}/provisioning-keys`, {
        token: server.adminToken,
        body: { name: 'tenant', maxUses: 5 },
      }),
      201,
    );
    await server.database.db
      .updateTable('provisioning_keys')
      .set({ expires_at: Date.now() - 1000 })
      .where('id', '=', pk.id)
      .execute();
    await expectStatus(authRequest(key, nextIdentity(), { tenantToken: pk.key }), 401, /provisioning key/);
    await server.database.db
      .updateTable('provisioning_keys')
      .set({ expires_at: null, uses: 5 })
      .where('id', '=', pk.id)
      .execute();
    await expectStatus(authRequest(key, nextIdentity(), { tenantToken: pk.key }), 401, /provisioning key/);
    // Management API input.
    await expectStatus(server.api('GET', `${DEVAUTH}/devices/not-an-id`, { token: server.adminToken }), 400);
    await expectStatus(
      server.api('POST', `${DEVAUTH}/devices`, {
        token: server.adminToken,
        body: { identity_data: {}, pubkey: key.publicPem },
      }),
      400,
    );
    await expectStatus(
      server.api('POST', `${DEVAUTH}/devices`, {
        token: server.adminToken,
        body: { identity_data: { a: 'b' }, pubkey: testKey('dsa').publicPem },
      }),
      400,
    );
  });

  it('rate-limits new pending sets per source address and deduplicates repeats', async () => {
    const key = testKey('ed25519');
    let limited: ApiAnswer | undefined;
    for (let i = 0; i < 110 && !limited; i++) {
      const { payload, headers } = signedAuthRequest(key, { serial: `flood-${i}` });
      const a = await send(payload, headers, MENDER, '10.9.9.9');
      if (a.status === 429) limited = a;
      else expect(a.status).toBe(401);
    }
    expect(limited?.body.error.code).toBe('rate_limited');
    // Known pending sets still answer (deduplicated, no new row).
    const { payload, headers } = signedAuthRequest(key, { serial: 'flood-0' });
    expect((await send(payload, headers, MENDER, '10.9.9.9')).status).toBe(401);
  });
});
