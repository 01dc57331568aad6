/**
 * fleetgate stopped and started again on the same data directory, with a real balenaOS-configured OpenVPN client
 * connected (netns.ts): the device goes offline with the server and comes back by itself, with the VPN's CA and
 * port unchanged, without anyone touching it.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../src/index.ts';
import { dropPostgresSchema } from '../../src/infra/db/index.ts';
import { newDeviceIdentity } from '../enrollment/helpers.ts';
import { ADMIN_EMAIL, ADMIN_PASSWORD } from '../harness.ts';
import { requestJson } from '../listening.ts';
import {
  BRIDGE_ADDRESS,
  createNamespaces,
  destroyAll,
  freePortOn,
  type Namespace,
  startOpenvpnClient,
  workerNetwork,
} from './netns.ts';
import { openvpnPrerequisites } from './prerequisites.ts';

const missing = openvpnPrerequisites('OpenVPN restart tests');

describe.skipIf(missing)('fleetgate restarted with OpenVPN devices connected', () => {
  let dataDir: string;
  let flags: Record<string, string | number>;
  let server: RunningServer | undefined;
  let token: string;
  let namespace: Namespace;

  /** `fleetgate serve` on the same data directory (and PostgreSQL schema) each time, signed in as the admin. */
  const start = async () => {
    server = await startServer({ env: process.env, print: () => {}, flags });
    const login = await requestJson(`${server.url}/api/v1/auth/login`, {
      method: 'POST',
      body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
    });
    token = login.body.token;
    return server;
  };
  const api = async (method: string, url: string, body?: unknown) => {
    const answer = await requestJson(`${server?.url}${url}`, {
      method,
      token,
      ...(body === undefined ? {} : { body }),
    });
    if (answer.status >= 300) throw new Error(`${method} ${url}: ${answer.status} ${answer.text}`);
    return answer.body;
  };

  beforeAll(async () => {
    const network = await workerNetwork();
    dataDir = fs.mkdtempSync(path.join(network.dir, 'fleetgate-'));
    flags = {
      dataDir,
      adminEmail: ADMIN_EMAIL,
      adminPassword: ADMIN_PASSWORD,
      logLevel: process.env.FLEETGATE_TEST_LOG_LEVEL ?? 'silent',
      httpPort: 0,
      proxyPort: 0,
      sshPort: 0,
      dbSchema: process.env.DATABASE_URL ? `fg_test_${randomBytes(6).toString('hex')}` : 'public',
      // As in vpn.test.ts: the bridge's address, and this process's own subnet and instance ports.
      listen: BRIDGE_ADDRESS,
      vpn: 'on',
      vpnPort: await freePortOn(BRIDGE_ADDRESS),
      vpnInstances: 1,
      vpnBaseSubnet: `${network.vpnSubnet}/16`,
      vpnInstanceSubnetBitmask: 20,
      vpnBasePort: 30_000 + network.slot * 16,
      presenceFlushMs: 50,
    };
    [namespace] = (await createNamespaces(1, 'restart')) as [Namespace];
    await start();
  }, 60_000);

  afterAll(async () => {
    await destroyAll();
    await server?.close();
    // Also when the test stopped while the server was down.
    if (process.env.DATABASE_URL) await dropPostgresSchema(process.env.DATABASE_URL, String(flags.dbSchema));
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('a connected device goes offline with the server and comes back online by itself when it starts again', async () => {
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'restart',
      defaultDeviceType: 'raspberrypi4-64',
    });
    const { key: provisioningKey } = await api('POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, {
      name: 'restart',
    });
    const device = newDeviceIdentity();
    const registered = await requestJson(`${server?.url}/device/register`, {
      method: 'POST',
      headers: { authorization: `Bearer ${provisioningKey}` },
      body: { uuid: device.uuid, device_type: 'raspberrypi4-64', api_key: device.apiKey },
    });
    expect(registered.status).toBe(201);
    const served = (await api('GET', '/os/v1/config')).services.openvpn;
    const client = await startOpenvpnClient(namespace, {
      config: served.config,
      ca: served.ca,
      username: device.uuid,
      password: device.apiKey,
    });
    await untilOnline(await client.connected());

    await server?.close();
    server = undefined;
    await client.disconnected();
    await start();
    // The device's files are what os-config wrote before: the same CA and port must still be right.
    expect((await api('GET', '/os/v1/config')).services.openvpn).toEqual(served);
    // OpenVPN's own retry (1 s, doubling) brings it back, within a few of its attempts.
    await untilOnline(await client.connected(60_000));

    async function untilOnline(address: string) {
      const deadline = performance.now() + 15_000;
      for (;;) {
        const view = await api('GET', `/api/v1/devices/${device.uuid}`);
        if (view.status === 'online' && view.vpnAddress === address) return;
        if (performance.now() > deadline)
          throw new Error(`not online at ${address}: ${JSON.stringify(view)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }, 120_000);
});
