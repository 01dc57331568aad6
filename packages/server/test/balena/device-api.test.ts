import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiFrom, check } from '../api/helpers.ts';
import {
  basic,
  bearer,
  createProvisioningKey,
  deviceSelf,
  newDeviceIdentity,
} from '../enrollment/helpers.ts';
import { type ApiAnswer, seedTwoOrgs, startTestServer, type TestServer } from '../harness.ts';
import { ed25519Line } from '../openapi-cases.ts';

/**
 * The balena device API a stock balenaOS device calls (os-config and the supervisor), at balena's own paths:
 * `GET /os/v1/config`, `POST /device/register`, `POST /api-key/device/:deviceId/device-key` and the supervisor's
 * `GET /v7/device` lookup before a key exchange.
 */
let server: TestServer;
let seed: Awaited<ReturnType<typeof seedTwoOrgs>>;
/** Each person's registered SSH public key (`<algorithm> <base64>`, as served). */
const sshKeyOf: Record<string, string> = {};

beforeAll(async () => {
  server = await startTestServer({ vpn: 'on', vpnPort: 443 });
  seed = await seedTwoOrgs(server);
  for (const [who, person] of Object.entries(seed.people)) {
    const line = ed25519Line(`${who}@laptop`);
    check(
      await server.api('POST', '/api/v1/ssh-keys', { token: person.token, body: { publicKey: line } }),
      201,
    );
    sshKeyOf[who] = line.split(' ').slice(0, 2).join(' ');
  }
});

afterAll(async () => {
  await server?.close();
});

/** `POST /device/register` as balena-register-device sends it (lib/register.ts), from `source`. */
function balenaRegister(provisioningKey: string | undefined, body: unknown, source = '127.0.0.1') {
  return apiFrom(server, source, 'POST', '/device/register', {
    body,
    headers: provisioningKey === undefined ? {} : bearer(provisioningKey),
  });
}

function supervisorBody(identity: { uuid: string; apiKey?: string }) {
  return {
    application: 1234,
    uuid: identity.uuid,
    device_type: 'raspberrypi4-64',
    ...(identity.apiKey ? { api_key: identity.apiKey } : {}),
    supervisor_version: '17.0.3',
    os_version: 'balenaOS 6.5.24',
    os_variant: 'prod',
    mac_address: '02:12:61:13:6c:42 02:12:61:13:6c:43',
  };
}

/** The key exchange as balena-supervisor src/lib/api-helper.ts sends it. */
function exchange(
  deviceId: number | string,
  provisioningKey: string | undefined,
  body: unknown,
  source?: string,
) {
  return apiFrom(server, source ?? '127.0.0.1', 'POST', `/api-key/device/${deviceId}/device-key`, {
    body,
    headers: provisioningKey === undefined ? {} : bearer(provisioningKey),
  });
}

function osConfig(headers: Record<string, string> = {}): Promise<ApiAnswer> {
  return server.api('GET', '/os/v1/config', { headers: { host: 'api.fleet.example.test:8443', ...headers } });
}

describe('GET /os/v1/config', () => {
  it("serves os-config's JSON: the OpenVPN client configuration for this host and the CA of the VPN's certificate", async () => {
    const body = check(await osConfig(), 200);
    expect(Object.keys(body).sort()).toEqual(['config', 'schema_version', 'services']);
    expect(body.schema_version).toBe('1.0.0');
    expect(body.config).toEqual({ overrides: {} });
    expect(Object.keys(body.services).sort()).toEqual(['openvpn', 'ssh']);
    const { config, ca } = body.services.openvpn;
    const lines: string[] = config.trimEnd().split('\n');
    // The host the device asked, without the API's port; the VPN's own port.
    expect(lines.filter((l) => l.startsWith('remote '))).toEqual(['remote api.fleet.example.test 443']);
    for (const line of [
      'client',
      'proto tcp',
      'comp-lzo',
      'auth-user-pass /var/volatile/vpn-auth',
      'ca /etc/openvpn/ca.crt',
    ])
      expect(lines).toContain(line);
    expect(lines.some((l) => l.startsWith('cert ') || l.startsWith('key '))).toBe(false);

    expect(ca).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n?$/);
    const vpnDir = path.join(server.config.dataDir, 'vpn');
    const caFile = path.join(server.config.dataDir, 'served-ca.crt');
    fs.writeFileSync(caFile, ca);
    const verified = execFileSync('openssl', ['verify', '-CAfile', caFile, path.join(vpnDir, 'server.crt')], {
      encoding: 'utf8',
    });
    expect(verified).toContain(': OK');
    // Served at balena's path with its trailing slash too (open-balena-api registers '/os/v1/config/').
    expect(check(await server.api('GET', '/os/v1/config/'), 200).services.openvpn.ca).toBe(ca);
  });

  it('fills authorized_keys only for an authenticated device, with the keys of the people who may SSH to it', async () => {
    const provisioning = await createProvisioningKey(server, seed.alpha.fleet.id);
    const device = newDeviceIdentity();
    check(await balenaRegister(provisioning.key, supervisorBody(device)), 201);

    const keysFor = async (headers: Record<string, string>) => {
      const text: string = check(await osConfig(headers), 200).services.ssh.authorized_keys;
      return text.split('\n').filter(Boolean);
    };
    // os-config sends the device key alone as Bearer (balena-os/os-config src/remote.rs).
    const keys = await keysFor(bearer(device.apiKey));
    expect(keys).toEqual(
      expect.arrayContaining([sshKeyOf.alphaAdmin, sshKeyOf.alphaOperator, sshKeyOf.alphaFleetOperator]),
    );
    expect(keys).not.toContain(sshKeyOf.alphaViewer);
    expect(keys).not.toContain(sshKeyOf.betaOwner);
    expect(keys).not.toContain(sshKeyOf.betaViewer);
    // fleetgate's own device credential gives the same answer.
    expect(await keysFor(basic(device.uuid, device.apiKey))).toEqual(keys);

    // A device of the other fleet: the operator narrowed to the first fleet may not reach it.
    const provisioning2 = await createProvisioningKey(server, seed.alpha.fleet2.id);
    const device2 = newDeviceIdentity();
    check(await balenaRegister(provisioning2.key, supervisorBody(device2)), 201);
    const keys2 = await keysFor(bearer(device2.apiKey));
    expect(keys2).toContain(sshKeyOf.alphaOperator);
    expect(keys2).not.toContain(sshKeyOf.alphaFleetOperator);

    // Everyone else gets the VPN configuration and no keys: no header, os-config's empty token, a wrong key,
    // the provisioning key, a revoked key.
    for (const headers of [
      {},
      { authorization: 'Bearer ' },
      bearer(newDeviceIdentity().apiKey),
      bearer(provisioning.key),
      basic(device.uuid, newDeviceIdentity().apiKey),
    ])
      expect(await keysFor(headers)).toEqual([]);
    check(
      await server.api('DELETE', `/api/v1/devices/${device.uuid}/keys`, { token: server.adminToken }),
      200,
    );
    expect(await keysFor(bearer(device.apiKey))).toEqual([]);
  });

  it('answers 404 saying the VPN is off when it is, so os-config keeps the files the device has', async () => {
    const off = await startTestServer();
    try {
      const answer = await off.api('GET', '/os/v1/config');
      expect(answer.status).toBe(404);
      expect(answer.body.error.message).toMatch(/FLEETGATE_VPN=off/);
      expect(fs.existsSync(path.join(off.config.dataDir, 'vpn'))).toBe(false);
    } finally {
      await off.close();
    }
  });
});

describe('POST /device/register', () => {
  it("registers with balena's body and answer, and the device then authenticates with uuid + key", async () => {
    const provisioning = await createProvisioningKey(server, seed.alpha.fleet.id);
    const device = newDeviceIdentity();
    const answer = check(await balenaRegister(provisioning.key, supervisorBody(device)), 201);
    expect(answer).toEqual({ id: expect.any(Number), uuid: device.uuid, api_key: device.apiKey });
    const self = check(await deviceSelf(server, basic(device.uuid, device.apiKey)), 200);
    expect(self).toMatchObject({
      id: answer.id,
      fleetId: seed.alpha.fleet.id,
      deviceType: 'raspberrypi4-64',
      osVersion: 'balenaOS 6.5.24',
      agentVersion: '17.0.3',
    });

    // The same uuid again: 409, which the supervisor answers with a key exchange.
    const again = await balenaRegister(
      provisioning.key,
      supervisorBody({ uuid: device.uuid, apiKey: newDeviceIdentity().apiKey }),
    );
    expect(again.status).toBe(409);

    // Without api_key, balena makes one and answers it.
    const keyless = newDeviceIdentity();
    const made = check(await balenaRegister(provisioning.key, supervisorBody({ uuid: keyless.uuid })), 201);
    expect(made.api_key).toMatch(/^\S{32,}$/);
    check(await deviceSelf(server, basic(keyless.uuid, made.api_key)), 200);
  });

  it('refuses a bad provisioning key with 401 and malformed bodies with a clear 400', async () => {
    const provisioning = await createProvisioningKey(server, seed.alpha.fleet.id);
    const source = '192.0.2.10';
    expect((await balenaRegister(undefined, supervisorBody(newDeviceIdentity()), source)).status).toBe(401);
    expect((await balenaRegister('fgp_not-a-key', supervisorBody(newDeviceIdentity()), source)).status).toBe(
      401,
    );
    for (const [body, field] of [
      [{ ...supervisorBody(newDeviceIdentity()), uuid: 'not-hex' }, 'uuid'],
      [{ ...supervisorBody(newDeviceIdentity()), device_type: undefined }, 'device_type'],
      [{ ...supervisorBody(newDeviceIdentity()), api_key: 'short' }, 'api_key'],
      [{ ...supervisorBody(newDeviceIdentity()), application: { id: 1 } }, 'application'],
    ] as const) {
      const answer = await balenaRegister(provisioning.key, body);
      expect(answer.status, JSON.stringify(answer.body)).toBe(400);
      expect(answer.body.error.message).toContain(field);
    }
    const notJson = await server.app.inject({
      method: 'POST',
      url: '/device/register',
      headers: { ...bearer(provisioning.key), 'content-type': 'application/json' },
      payload: '{"uuid":',
    });
    expect(notJson.statusCode).toBe(400);
  });
});

describe('POST /api-key/device/:deviceId/device-key', () => {
  it('gives a pre-registered device without a key its own key, once, and audits it', async () => {
    const provisioning = await createProvisioningKey(server, seed.alpha.fleet.id);
    // Created by an admin, with no credential yet: the supervisor's registration gets 409, then it exchanges.
    const device = seed.alpha.device as { id: number; uuid: string };
    const { apiKey } = newDeviceIdentity();

    // The supervisor's lookup first (pinejs-client's `$filter: { uuid }`), with the provisioning key.
    const filter = encodeURIComponent(`uuid eq '${device.uuid}'`);
    const lookup = (token: string) =>
      server.api('GET', `/v7/device?$select=id&$filter=${filter}`, { headers: bearer(token) });
    expect(check(await lookup(provisioning.key), 200)).toEqual({ d: [{ id: device.id }] });
    expect(check(await lookup(apiKey), 401)).toBeTruthy();

    const answer = await exchange(device.id, provisioning.key, { apiKey });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body).toBe(apiKey);
    check(await deviceSelf(server, basic(device.uuid, apiKey)), 200);
    // Now the device finds itself with its own key, as the supervisor checks first.
    expect(check(await lookup(apiKey), 200)).toEqual({ d: [{ id: device.id }] });
    const keys = check(
      await server.api('GET', `/api/v1/devices/${device.uuid}/keys`, { token: server.adminToken }),
      200,
    );
    expect(keys.items).toEqual([expect.objectContaining({ origin: 'exchange', revokedAt: null })]);
    const listed = check(
      await server.api('GET', `/api/v1/fleets/${seed.alpha.fleet.id}/provisioning-keys`, {
        token: server.adminToken,
      }),
      200,
    );
    expect(listed.items.find((k: { id: number }) => k.id === provisioning.id).uses).toBe(1);

    // The same key again (a retry whose answer was lost): a success that changes nothing.
    expect((await exchange(device.id, provisioning.key, { apiKey })).status).toBe(200);
    // Another key for a device that has one: refused, whoever holds the fleet's provisioning key.
    const takeover = await exchange(device.id, provisioning.key, { apiKey: newDeviceIdentity().apiKey });
    expect(takeover.status).toBe(409);
    check(await deviceSelf(server, basic(device.uuid, apiKey)), 200);

    const audit = await server.database.db
      .selectFrom('audit_events')
      .select(['action', 'outcome', 'resource_id', 'details'])
      .where('action', '=', 'device.key.exchange')
      .orderBy('id')
      .execute();
    expect(audit.map((e) => [e.outcome, e.resource_id])).toEqual([
      ['success', device.uuid],
      ['denied', device.uuid],
    ]);
    expect(JSON.stringify(audit)).not.toContain(apiKey);
    expect(JSON.stringify(audit)).not.toContain(provisioning.key);
  });

  it('refuses a foreign, revoked or used-up provisioning key, a registered device, and malformed input', async () => {
    const device = seed.alpha.device2 as { id: number; uuid: string };
    const { apiKey } = newDeviceIdentity();
    const source = '192.0.2.20';
    // alpha-device-2 lives in the second fleet: the first fleet's key does not see it.
    const foreign = await createProvisioningKey(server, seed.alpha.fleet.id);
    const filter = encodeURIComponent(`uuid eq '${device.uuid}'`);
    const lookup = await server.api('GET', `/v7/device?$select=id&$filter=${filter}`, {
      headers: bearer(foreign.key),
    });
    expect(check(lookup, 200)).toEqual({ d: [] });
    expect(
      (await server.api('GET', '/v7/device?$filter=name%20eq%20%27x%27', { headers: bearer(foreign.key) }))
        .status,
    ).toBe(400);
    expect((await exchange(device.id, foreign.key, { apiKey }, source)).status).toBe(404);
    const beta = await createProvisioningKey(server, seed.beta.fleet.id, {}, seed.people.betaOwner.token);
    expect((await exchange(device.id, beta.key, { apiKey }, source)).status).toBe(404);

    const revoked = await createProvisioningKey(server, seed.alpha.fleet2.id);
    check(
      await server.api('DELETE', `/api/v1/provisioning-keys/${revoked.id}`, { token: server.adminToken }),
      204,
    );
    expect((await exchange(device.id, revoked.key, { apiKey }, source)).status).toBe(401);

    const single = await createProvisioningKey(server, seed.alpha.fleet2.id, { maxUses: 1 });
    check(await balenaRegister(single.key, supervisorBody(newDeviceIdentity())), 201);
    expect((await exchange(device.id, single.key, { apiKey }, source)).status).toBe(401);
    expect((await exchange(device.id, undefined, { apiKey }, source)).status).toBe(401);

    // A device registered with its own key: a provisioning key may not add another.
    const fleetKey = await createProvisioningKey(server, seed.alpha.fleet2.id);
    const registered = newDeviceIdentity();
    const { id } = check(await balenaRegister(fleetKey.key, supervisorBody(registered)), 201);
    expect((await exchange(id, fleetKey.key, { apiKey })).status).toBe(409);
    expect((await exchange(id, fleetKey.key, { apiKey: registered.apiKey })).status).toBe(200);

    for (const [deviceId, body] of [
      ['not-a-number', { apiKey }],
      [device.id, { apiKey: 'short' }],
      [device.id, { apiKey: 42 }],
      [device.id, { apiKey, api_key: newDeviceIdentity().apiKey }],
    ] as const) {
      const answer = await exchange(deviceId, fleetKey.key, body);
      expect(answer.status, JSON.stringify(answer.body)).toBe(400);
    }
    // None of the refusals gave the device a key; the right key of its fleet still can.
    const keys = check(
      await server.api('GET', `/api/v1/devices/${device.uuid}/keys`, { token: server.adminToken }),
      200,
    );
    expect(keys.items).toEqual([]);
    expect((await exchange(device.id, fleetKey.key, { apiKey })).status).toBe(200);
  });
});
