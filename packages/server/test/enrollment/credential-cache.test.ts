import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { check } from '../api/helpers.ts';
import { signedAuthRequest, testKey } from '../auth-sets/signing.ts';
import { dialectUnderTest, seedTwoOrgs, startTestServer, type TestServer } from '../harness.ts';
import { basic, createProvisioningKey, deviceSelf, registerNewDevice } from './helpers.ts';

/**
 * Device keys are cached for a short while once verified, and a device's request counts are written in
 * batches. Whatever an admin or the device changes is in force from the very next request: each case below
 * first makes sure the credential is cached (two checks in a row), then changes it, then tries again.
 */
let server: TestServer;
let seed: Awaited<ReturnType<typeof seedTwoOrgs>>;
let provisioningKey: string;

beforeAll(async () => {
  server = await startTestServer();
  seed = await seedTwoOrgs(server);
  provisioningKey = (await createProvisioningKey(server, seed.alpha.fleet.id)).key;
});

afterAll(async () => {
  await server?.close();
});

/** Registers a device and uses its key twice, so that the second check came from the cache. */
async function cachedDevice() {
  const device = await registerNewDevice(server, provisioningKey);
  check(await deviceSelf(server, basic(device.uuid, device.apiKey)), 200);
  check(await deviceSelf(server, basic(device.uuid, device.apiKey)), 200);
  return device;
}

const admin = (method: string, url: string, body?: unknown) =>
  server.api(method, url, { token: server.adminToken, ...(body === undefined ? {} : { body }) });

describe(`a cached device key (${dialectUnderTest})`, () => {
  it('is refused at once after an admin revokes all keys of the device', async () => {
    const device = await cachedDevice();
    check(await admin('DELETE', `/api/v1/devices/${device.uuid}/keys`), 200);
    expect((await deviceSelf(server, basic(device.uuid, device.apiKey))).status).toBe(401);
  });

  it('is refused at once after an admin revokes that one key', async () => {
    const device = await cachedDevice();
    const [key] = check(await admin('GET', `/api/v1/devices/${device.uuid}/keys`), 200).items;
    check(await admin('DELETE', `/api/v1/devices/${device.uuid}/keys/${key.id}`), 200);
    expect((await deviceSelf(server, basic(device.uuid, device.apiKey))).status).toBe(401);
  });

  it('is refused at once after the device is decommissioned', async () => {
    const device = await cachedDevice();
    check(await admin('POST', `/api/v1/devices/${device.uuid}/decommission`), 200);
    expect((await deviceSelf(server, basic(device.uuid, device.apiKey))).status).toBe(401);
  });

  it('is refused at once after the device is deleted', async () => {
    const device = await cachedDevice();
    check(await admin('DELETE', `/api/v1/devices/${device.uuid}`), 204);
    expect((await deviceSelf(server, basic(device.uuid, device.apiKey))).status).toBe(401);
  });

  it('is refused at once after the device rotates it; the new key works', async () => {
    const device = await cachedDevice();
    const newKey = 'c'.repeat(40);
    check(
      await server.api('POST', '/api/v1/device/self/key', {
        headers: basic(device.uuid, device.apiKey),
        body: { key: newKey },
      }),
      201,
    );
    expect((await deviceSelf(server, basic(device.uuid, device.apiKey))).status).toBe(401);
    expect(check(await deviceSelf(server, basic(device.uuid, newKey)), 200).uuid).toBe(device.uuid);
  });

  it('works only for its own uuid, cached or not', async () => {
    const device = await cachedDevice();
    const other = await cachedDevice();
    expect((await deviceSelf(server, basic(other.uuid, device.apiKey))).status).toBe(401);
    check(await deviceSelf(server, basic(device.uuid, device.apiKey)), 200);
  });
});

describe(`signed auth requests (${dialectUnderTest})`, () => {
  const MENDER = '/api/devices/v1/authentication/auth_requests';
  let serial = 0;
  const send = async (payload: Buffer, headers: Record<string, string>) => {
    const r = await server.app.inject({ method: 'POST', url: MENDER, payload, headers });
    return r.statusCode;
  };

  /** A preauthorized Ed25519 device that has authenticated twice (its parsed key is cached). */
  async function acceptedDevice() {
    const key = testKey('ed25519');
    const identity = { mac: `02:00:00:cc:00:${(++serial).toString(16).padStart(2, '0')}` };
    const pre = check(
      await admin('POST', '/api/v1/auth-sets/preauthorize', {
        fleetId: seed.alpha.fleet.id,
        devices: [{ identity, publicKey: key.publicPem }],
      }),
      200,
    );
    const request = signedAuthRequest(key, identity);
    expect(await send(request.payload, request.headers)).toBe(200);
    expect(await send(request.payload, request.headers)).toBe(200);
    return { device: pre.items[0].device as { id: number; uuid: string }, request };
  }

  const authSetOf = async (deviceId: number) =>
    check(await admin('GET', `/api/v1/auth-sets?deviceId=${deviceId}`), 200).items[0];

  it('are refused at once after an admin rejects the auth set', async () => {
    const { device, request } = await acceptedDevice();
    const set = await authSetOf(device.id);
    check(await admin('POST', '/api/v1/auth-sets/reject', { ids: [set.id] }), 200);
    expect(await send(request.payload, request.headers)).toBe(401);
  });

  it('are refused at once after the device is decommissioned', async () => {
    const { device, request } = await acceptedDevice();
    check(await admin('POST', `/api/v1/devices/${device.uuid}/decommission`), 200);
    expect(await send(request.payload, request.headers)).toBe(401);
  });

  it('are all counted on the auth set as soon as anyone looks', async () => {
    const { device, request } = await acceptedDevice();
    for (let i = 0; i < 3; i++) expect(await send(request.payload, request.headers)).toBe(200);
    const set = await authSetOf(device.id);
    expect(set.requestCount).toBe(5);
    expect(Date.now() - Date.parse(set.lastRequestAt)).toBeLessThan(60_000);
  });
});
