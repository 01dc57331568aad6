/**
 * Devices' OpenVPN and people's HTTPS on one port, as openBalena serves both on 443 (`FLEETGATE_VPN_PORT` =
 * `FLEETGATE_HTTP_PORT`): fleetgate tells them apart by the first byte. A real `fleetgate serve` with HTTPS, a real
 * `openvpn` client and `curl`, each in a network namespace of its own (netns.ts): the device connects and shows
 * online, HTTPS answers on the same port, and fleetgate sees the person's own address (the audit of a refused
 * sign-in), not the pipe's.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from '@fleetgate/agent/test/helpers.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../src/index.ts';
import { dropPostgresSchema } from '../../src/infra/db/index.ts';
import { initTls } from '../../src/infra/tls/index.ts';
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

const missing = openvpnPrerequisites('OpenVPN shared port tests');

describe.skipIf(missing)('OpenVPN and HTTPS on one port', () => {
  const databaseUrl = process.env.DATABASE_URL;
  const schema = `fg_vpnshare_${process.pid}`;
  let dataDir: string;
  let server: RunningServer;
  let ca: Buffer;
  let port: number;
  let namespaces: Namespace[];
  const api = async (method: string, url: string, token?: string, body?: unknown) => {
    const answer = await requestJson(`https://${BRIDGE_ADDRESS}:${port}${url}`, {
      method,
      ca,
      ...(token ? { token } : {}),
      ...(body === undefined ? {} : { body }),
    });
    if (answer.status >= 300) throw new Error(`${method} ${url}: ${answer.status} ${answer.text}`);
    return answer.body;
  };

  beforeAll(async () => {
    const network = await workerNetwork();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-vpn-share-'));
    await initTls({ dataDir, hosts: [BRIDGE_ADDRESS] });
    ca = fs.readFileSync(path.join(dataDir, 'tls', 'ca.crt'));
    port = await freePortOn(BRIDGE_ADDRESS);
    server = await startServer({
      env: {},
      print: () => {},
      flags: {
        dataDir,
        listen: BRIDGE_ADDRESS,
        httpPort: port,
        vpnPort: port,
        sshPort: 0,
        proxyPort: 0,
        adminEmail: ADMIN_EMAIL,
        adminPassword: ADMIN_PASSWORD,
        logLevel: 'silent',
        presenceFlushMs: 50,
        vpn: 'on',
        vpnInstances: 1,
        // This process's own subnet and ports (the other files of its slot take the rest of its /16).
        vpnBaseSubnet: `${network.vpnSubnet.replace(/\.0\.0$/, '.96.0')}/19`,
        vpnInstanceSubnetBitmask: 20,
        vpnBasePort: 35_000 + network.slot * 16,
        ...(databaseUrl ? { databaseUrl, dbSchema: schema } : {}),
      },
    });
    namespaces = (await createNamespaces(2, 'share')) as Namespace[];
  }, 60_000);

  afterAll(async () => {
    await destroyAll();
    await server?.close();
    if (databaseUrl) await dropPostgresSchema(databaseUrl, schema);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('serves HTTPS, and the device connects with the served configuration, on the same port', async () => {
    expect(server.url).toBe(`https://${BRIDGE_ADDRESS}:${port}`);
    const ready = await api('GET', '/readyz');
    expect(ready.vpn.port).toBe(port);
    const token = (
      await api('POST', '/api/v1/auth/login', undefined, { email: ADMIN_EMAIL, password: ADMIN_PASSWORD })
    ).token as string;
    const fleet = await api('POST', '/api/v1/fleets', token, {
      orgId: 1,
      name: 'one-port',
      defaultDeviceType: 'raspberrypi4-64',
    });
    const { key } = await api('POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, token, {
      name: 'image',
    });
    const device = newDeviceIdentity();
    const registered = await requestJson(`https://${BRIDGE_ADDRESS}:${port}/device/register`, {
      method: 'POST',
      ca,
      headers: { authorization: `Bearer ${key}` },
      body: { uuid: device.uuid, device_type: 'raspberrypi4-64', api_key: device.apiKey },
    });
    expect(registered.status).toBe(201);
    const served = (await api('GET', '/os/v1/config')).services.openvpn;
    expect(served.config).toContain(`remote ${BRIDGE_ADDRESS} ${port}\n`);

    const client = await startOpenvpnClient(namespaces[0]!, {
      config: served.config,
      ca: served.ca,
      username: device.uuid,
      password: device.apiKey,
    });
    const address = await client.connected();
    await waitFor(
      async () => {
        const view = await api('GET', `/api/v1/devices/${device.uuid}`, token);
        return view.status === 'online' && view.vpnAddress === address;
      },
      30_000,
      'the device online through the VPN on the shared port',
    );
  });

  it("sees a person's own address through the shared port: a refused sign-in is audited with it", async () => {
    const [, person] = namespaces as [Namespace, Namespace];
    const status = await new Promise<string>((resolve) =>
      execFile(
        'ip',
        [
          'netns',
          'exec',
          person.name,
          'curl',
          '-sk',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '-H',
          'content-type: application/json',
          '-d',
          JSON.stringify({ email: ADMIN_EMAIL, password: 'not the password' }),
          `https://${BRIDGE_ADDRESS}:${port}/api/v1/auth/login`,
        ],
        (_err, stdout) => resolve(stdout),
      ),
    );
    expect(status).toBe('401');
    const token = (
      await api('POST', '/api/v1/auth/login', undefined, { email: ADMIN_EMAIL, password: ADMIN_PASSWORD })
    ).token as string;
    const audit = await api('GET', '/api/v1/audit?scope=server&limit=20', token);
    const refused = audit.items.find(
      (e: { action: string; outcome: string }) => e.action === 'auth.login' && e.outcome !== 'success',
    );
    expect(refused?.sourceIp).toBe(person.address);
  });
});
