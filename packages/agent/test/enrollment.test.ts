/**
 * Enrollment against the REAL fleetgate server (started in this process on a free port, HTTPS with its
 * own CA): a provisioning key registers the device; a key pair waits as a pending auth set until an admin
 * accepts it, then gets a device JWT.
 */
import fs from 'node:fs';
import path from 'node:path';
import { type ListeningServer, requestJson, startListeningServer } from '@fleetgate/server/test/listening.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../src/agent.ts';
import { credentialsFile, readCredentials } from '../src/credentials.ts';
import type { KeyPairAuthenticator } from '../src/enroll.ts';
import { createLogger } from '../src/log.ts';
import { removeTemporaryDirs, testConfig, waitFor } from './helpers.ts';

describe('enrollment against the fleetgate server', () => {
  let server: ListeningServer;
  let ca: Buffer;
  let fleetId: number;
  const api = async (method: string, url: string, body?: unknown, expected = 200) => {
    const answer = await requestJson(`${server.url}${url}`, {
      method,
      ...(body === undefined ? {} : { body }),
      token: server.adminToken,
      ca,
    });
    if (answer.status !== expected) throw new Error(`${method} ${url}: ${answer.status} ${answer.text}`);
    return answer.body;
  };
  const logLines: string[] = [];
  const agentFor = (file: Record<string, unknown>) => {
    const config = testConfig(server.url, { caFile: server.caFile, ...file });
    const agent = new Agent({
      ...config,
      agentVersion: '0.1.0-test',
      log: createLogger('debug', (line) => logLines.push(line)),
    });
    return { agent, config };
  };

  beforeAll(async () => {
    server = await startListeningServer({ tls: true });
    ca = fs.readFileSync(server.caFile!);
    const fleet = await api(
      'POST',
      '/api/v1/fleets',
      { orgId: 1, name: 'agents', defaultDeviceType: 'generic-amd64' },
      201,
    );
    fleetId = fleet.id;
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    removeTemporaryDirs();
  });

  it('registers with a provisioning key: the device appears, and its uuid + key authenticate', async () => {
    const provisioningKey = await api(
      'POST',
      `/api/v1/fleets/${fleetId}/provisioning-keys`,
      { name: 'line 1' },
      201,
    );
    const { agent, config } = agentFor({
      enrollment: { provisioningKey: provisioningKey.key },
      name: 'sensor-1',
    });
    const credentials = await agent.enroll();
    if (credentials.type !== 'device-key') throw new Error('expected device-key credentials');
    expect(credentials.registered).toBe(true);

    // Stored 0600 in a 0700 directory.
    expect(fs.statSync(credentialsFile(config.dataDir)).mode & 0o777).toBe(0o600);
    expect(fs.statSync(config.dataDir).mode & 0o777).toBe(0o700);
    expect(readCredentials(config.dataDir)).toEqual(credentials);

    const device = await api('GET', `/api/v1/devices/${credentials.uuid}`);
    expect(device).toMatchObject({
      uuid: credentials.uuid,
      name: 'sensor-1',
      fleetId,
      deviceType: 'generic-amd64',
    });

    const basic = `Basic ${Buffer.from(`${credentials.uuid}:${credentials.deviceKey}`).toString('base64')}`;
    const self = await requestJson(`${server.url}/api/v1/device/self`, {
      headers: { authorization: basic },
      ca,
    });
    expect(self.status).toBe(200);
    expect(self.body).toMatchObject({
      uuid: credentials.uuid,
      agentVersion: '0.1.0-test',
      credential: 'device_key',
    });

    // A second start uses the stored credentials: no second registration.
    const again = agentFor({ dataDir: config.dataDir, enrollment: { provisioningKey: provisioningKey.key } });
    expect(await again.agent.enroll()).toEqual(credentials);
    const keys = await api('GET', `/api/v1/fleets/${fleetId}/provisioning-keys`);
    expect(keys.items.find((k: { id: number }) => k.id === provisioningKey.id).uses).toBe(1);
  });

  it('refuses a wrong provisioning key with a clear error, without retrying forever', async () => {
    const { agent } = agentFor({ enrollment: { provisioningKey: 'not-a-real-key-0123456789' } });
    await expect(agent.enroll()).rejects.toThrow(/registration refused \(401\)/);
  });

  it('enrolls with a key pair: pending until an admin accepts, then a device JWT', async () => {
    const mac = `02:00:00:${[1, 2, 3]
      .map(() =>
        Math.floor(Math.random() * 256)
          .toString(16)
          .padStart(2, '0'),
      )
      .join(':')}`;
    const { agent, config } = agentFor({ enrollment: { keyPair: { identity: { mac } } } });
    const credentials = await agent.enroll();
    if (credentials.type !== 'key-pair') throw new Error('expected key-pair credentials');
    // The generated private key is as secret as the credentials.
    expect(fs.statSync(path.join(config.dataDir, 'device-key.pem')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(credentialsFile(config.dataDir)).mode & 0o777).toBe(0o600);

    const authenticator = agent.authenticator(credentials) as KeyPairAuthenticator;
    const header = authenticator.authorization();
    // The server now holds a pending auth set for this identity; the agent keeps asking.
    const pending = await waitFor(
      async () => {
        const list = await api('GET', '/api/v1/auth-sets?status=pending&limit=500');
        return list.items.find((set: { identity: Record<string, string> }) => set.identity.mac === mac);
      },
      10_000,
      'the pending auth set',
    );
    expect(pending).toMatchObject({ status: 'pending', keyType: 'ed25519' });
    expect(logLines.some((line) => /waiting for an admin to accept this device/.test(line))).toBe(true);

    const accepted = await api('POST', '/api/v1/auth-sets/accept', { ids: [pending.id], fleetId });
    expect(accepted.items[0]).toMatchObject({ outcome: 'accepted' });

    const authorization = await header;
    expect(authorization).toMatch(/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    const self = await requestJson(`${server.url}/api/v1/device/self`, { headers: { authorization }, ca });
    expect(self.status).toBe(200);
    expect(self.body).toMatchObject({ id: accepted.items[0].deviceId, fleetId, credential: 'device_token' });

    // Cached until it is about to expire; a refused token (4004 / 401) makes the agent ask again.
    expect(await authenticator.authorization()).toBe(authorization);
    authenticator.invalidate();
    expect(await authenticator.authorization()).toMatch(/^Bearer /);
  });
});
