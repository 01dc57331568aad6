/**
 * The database-loss drill of seed 000 for balenaOS devices behind fleetgate's OpenVPN backend: two devices
 * connected through the VPN, the database deleted (the data directory, with the VPN's CA and certificate, kept),
 * fleetgate started again, and only the operator's work brings both back online through the VPN with nothing
 * done on either device: one comes back through the recovery queue (its own uuid and key, adopted), the other
 * from its saved `config.json` (imported). The devices' OpenVPN clients run as balenaOS runs them: `auth-retry
 * none` ends the client on a refusal and its service manager starts it again (`Restart=always`; 10 s on
 * balenaOS, 1 s here).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from '@fleetgate/agent/test/helpers.ts';
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
  type OpenvpnClient,
  startOpenvpnClient,
  workerNetwork,
} from './netns.ts';
import { openvpnPrerequisites } from './prerequisites.ts';

const missing = openvpnPrerequisites('OpenVPN recovery tests');

describe.skipIf(missing)('a database loss with balenaOS devices on the VPN', () => {
  const databaseUrl = process.env.DATABASE_URL;
  const schema = `fg_vpnloss_${process.pid}`;
  let dataDir: string;
  let flags: Record<string, string | number>;
  let server: RunningServer | undefined;
  let stopped = false;
  const clients: OpenvpnClient[] = [];

  const login = async () =>
    (
      await requestJson(`${server!.url}/api/v1/auth/login`, {
        method: 'POST',
        body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
      })
    ).body.token as string;
  const api = async (token: string, method: string, url: string, body?: unknown) => {
    const answer = await requestJson(`${server!.url}${url}`, {
      method,
      token,
      ...(body === undefined ? {} : { body }),
    });
    if (answer.status >= 300) throw new Error(`${method} ${url}: ${answer.status} ${answer.text}`);
    return answer.body;
  };
  /** balenaOS's service manager: the client ended (a refusal ends it) → started again a moment later. */
  const supervise = async (client: OpenvpnClient) => {
    while (!stopped) {
      await client.exited;
      if (stopped) return;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      if (!stopped) await client.restart();
    }
  };
  const onlineVia = (token: string, uuid: string) =>
    waitFor(
      async () => {
        const view = await api(token, 'GET', `/api/v1/devices/${uuid}`);
        return view.status === 'online' && view.onlineVia.includes('vpn') && view.vpnAddress !== null;
      },
      60_000,
      `${uuid} online through the VPN`,
    );

  beforeAll(async () => {
    const network = await workerNetwork();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-vpn-loss-'));
    flags = {
      dataDir,
      listen: BRIDGE_ADDRESS,
      httpPort: 0,
      sshPort: 0,
      proxyPort: 0,
      adminEmail: ADMIN_EMAIL,
      adminPassword: ADMIN_PASSWORD,
      logLevel: 'silent',
      presenceFlushMs: 50,
      vpn: 'on',
      // The VPN's port stays the same across the restart: the devices keep it in their configuration.
      vpnPort: await freePortOn(BRIDGE_ADDRESS),
      vpnInstances: 1,
      // This process's own subnet and ports (vpn.test.ts and vpn-access.test.ts take the others of its slot).
      vpnBaseSubnet: `${network.vpnSubnet.replace(/\.0\.0$/, '.192.0')}/18`,
      vpnInstanceSubnetBitmask: 20,
      vpnBasePort: 32_000 + network.slot * 16,
      ...(databaseUrl ? { databaseUrl, dbSchema: schema } : {}),
    };
    server = await startServer({ flags, env: {}, print: () => {} });
  }, 60_000);

  afterAll(async () => {
    stopped = true;
    await destroyAll();
    await server?.close();
    if (databaseUrl) await dropPostgresSchema(databaseUrl, schema);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('brings both devices back online through the VPN by adoption and config.json import, nothing done on them', async () => {
    let token = await login();
    const fleet = await api(token, 'POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'field',
      defaultDeviceType: 'raspberrypi4-64',
    });
    const { key } = await api(token, 'POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, {
      name: 'image',
    });
    const devices = [newDeviceIdentity(), newDeviceIdentity()] as const;
    for (const device of devices) {
      const registered = await requestJson(`${server!.url}/device/register`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}` },
        body: { uuid: device.uuid, device_type: 'raspberrypi4-64', api_key: device.apiKey },
      });
      expect(registered.status).toBe(201);
    }
    // What os-config wrote on the devices, once: they keep these files through everything below.
    const served = (await api(token, 'GET', '/os/v1/config')).services.openvpn;
    const namespaces = (await createNamespaces(2, 'loss')) as Namespace[];
    for (const [i, device] of devices.entries()) {
      const client = await startOpenvpnClient(namespaces[i]!, {
        config: served.config,
        ca: served.ca,
        username: device.uuid,
        password: device.apiKey,
      });
      clients.push(client);
      void supervise(client);
    }
    for (const device of devices) await onlineVia(token, device.uuid);

    // The loss: fleetgate stops, its database is gone; the data directory (the VPN's CA and keys) is kept.
    await server!.close();
    server = undefined;
    if (databaseUrl) await dropPostgresSchema(databaseUrl, schema);
    else
      for (const file of fs.readdirSync(dataDir).filter((f) => f.startsWith('fleetgate.db')))
        fs.rmSync(path.join(dataDir, file));
    const restartedAt = Date.now();
    server = await startServer({ flags, env: {}, print: () => {} });
    token = await login();
    expect((await api(token, 'GET', '/api/v1/devices')).items).toEqual([]);

    // The operator: the fleet again, the saved config.json of the second device, and the recovery queue for the
    // first, whose refused connections put it there.
    const again = await api(token, 'POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'field',
      defaultDeviceType: 'raspberrypi4-64',
    });
    const [adopted, imported] = devices;
    await api(token, 'POST', '/api/v1/devices/import', {
      items: [{ uuid: imported.uuid, apiKey: imported.apiKey, fleetId: again.id }],
    });
    const candidate = await waitFor(
      async () =>
        (await api(token, 'GET', '/api/v1/recovery-candidates')).items.find(
          (c: { uuid: string }) => c.uuid === adopted.uuid,
        ),
      30_000,
      'the first device in the recovery queue',
    );
    const adoption = await api(token, 'POST', '/api/v1/recovery-candidates/adopt', {
      ids: [candidate.id],
      fleetId: again.id,
    });
    expect(adoption.items).toEqual([expect.objectContaining({ uuid: adopted.uuid, outcome: 'adopted' })]);

    for (const device of devices) await onlineVia(token, device.uuid);
    console.log(
      `VPN devices back online ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after the restart`,
    );
    // Nothing done on the devices: the same clients with the same files; the adopted one was refused until then.
    expect(clients[0]?.log()).toContain('AUTH_FAILED');
    const audit = await api(token, 'GET', '/api/v1/audit?limit=100');
    const actions = audit.items.map((e: { action: string }) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['device.import', 'recovery.adopt']));
  }, 180_000);
});

describe.skipIf(missing)('an OpenVPN instance that cannot start', () => {
  it('fails the start at once with what OpenVPN said and the setting to change, leaving nothing running', async () => {
    const network = await workerNetwork();
    const basePort = 34_000 + network.slot * 16;
    // Another program on instance 1's port.
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(basePort + 1, '127.0.0.1', resolve));
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-vpn-taken-'));
    try {
      const started = Date.now();
      await expect(
        startServer({
          flags: {
            dataDir,
            listen: BRIDGE_ADDRESS,
            httpPort: 0,
            sshPort: 0,
            proxyPort: 0,
            adminPassword: ADMIN_PASSWORD,
            logLevel: 'silent',
            vpn: 'on',
            vpnPort: 0,
            vpnInstances: 1,
            vpnBaseSubnet: `${network.vpnSubnet.replace(/\.0\.0$/, '.160.0')}/19`,
            vpnInstanceSubnetBitmask: 20,
            vpnBasePort: basePort,
            ...(process.env.DATABASE_URL
              ? { databaseUrl: process.env.DATABASE_URL, dbSchema: `fg_vpntaken_${process.pid}` }
              : {}),
          },
          env: {},
          print: () => {},
        }),
      ).rejects.toThrow(
        /OpenVPN instance 1 exited with code 1 as it started: another program holds its port; choose other ports with FLEETGATE_VPN_BASE_PORT[\s\S]*Address already in use/,
      );
      // At once, not after the instance's start timeout or its restarts.
      expect(Date.now() - started).toBeLessThan(10_000);
      const openvpns = await new Promise<string>((resolve) =>
        execFile('pgrep', ['-f', `openvpn .*--port ${basePort + 1} `], (_err, stdout) => resolve(stdout)),
      );
      expect(openvpns.trim()).toBe('');
    } finally {
      holder.close();
      if (process.env.DATABASE_URL)
        await dropPostgresSchema(process.env.DATABASE_URL, `fg_vpntaken_${process.pid}`);
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
