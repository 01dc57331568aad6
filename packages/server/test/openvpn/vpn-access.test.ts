/**
 * People reaching balenaOS devices behind fleetgate's OpenVPN backend through the same doors as agent devices:
 * the CONNECT proxy (by name, as `<name>.devices`) and the SSH gateway (`ssh -J` to the device's own sshd), with
 * the same authorization (another organization's person is refused as for any device) and the same session
 * records. Real `fleetgate serve` with the VPN on, a real `openvpn` client with the served configuration in a
 * network namespace of its own running a web server and sshd (netns.ts), real `curl` and OpenSSH `ssh`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { waitFor } from '@fleetgate/agent/test/helpers.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newDeviceIdentity } from '../enrollment/helpers.ts';
import { type ListeningServer, requestJson, startListeningServer } from '../listening.ts';
import { api as callApi, clientOptions, keygen, run, sshJump } from '../ssh/openssh-tools.ts';
import {
  BRIDGE_ADDRESS,
  createNamespaces,
  destroyAll,
  type Namespace,
  serveHttp,
  startOpenvpnClient,
  startSshd,
  workerNetwork,
} from './netns.ts';
import { openvpnPrerequisites } from './prerequisites.ts';

const missing = openvpnPrerequisites('OpenVPN access tests');

const WEB_PORT = 80;
const SSH_PORT = 22;

describe.skipIf(missing)('people reach a VPN device through the CONNECT proxy and the SSH gateway', () => {
  let server: ListeningServer;
  let namespace: Namespace;
  let dir: string;
  let uuid: string;
  let adminKey: string;
  let betaKey: string;
  const apiKeys = { admin: '', beta: '' };
  const api = (method: string, url: string, body?: unknown, token?: string) =>
    callApi(server, method, url, body, token);

  const viaProxy = (login: string, key: string, url: string) =>
    run('curl', [
      '-sS',
      '-m',
      '20',
      '-o',
      '-',
      '-w',
      '\n%{http_code}',
      '-x',
      `http://${BRIDGE_ADDRESS}:${server.server.proxyPort}`,
      '-U',
      `${login}:${key}`,
      url,
    ]);
  /** `ssh -J <login>@gateway root@<target>` to the device's own sshd, as a person writes it. */
  const jump = (key: string, login: string, target: string, command: string[]) =>
    sshJump(
      dir,
      { key, login, gateway: `${BRIDGE_ADDRESS}:${server.server.sshPort}`, target, port: SSH_PORT },
      command,
    );

  beforeAll(async () => {
    const network = await workerNetwork();
    dir = fs.mkdtempSync(path.join(network.dir, 'access-'));
    server = await startListeningServer({
      flags: {
        listen: BRIDGE_ADDRESS,
        vpn: 'on',
        // 0: a free port, which the served configuration names.
        vpnPort: 0,
        vpnInstances: 1,
        // This process's own subnet and ports (another test file of this process's slot uses the first /17).
        vpnBaseSubnet: `${network.vpnSubnet.replace(/\.0\.0$/, '.128.0')}/17`,
        vpnInstanceSubnetBitmask: 20,
        vpnBasePort: 31_000 + network.slot * 16,
        presenceFlushMs: 50,
      },
    });
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'balena-access',
      defaultDeviceType: 'raspberrypi4-64',
    });
    await api('PUT', `/api/v1/fleets/${fleet.id}/allowed-ports`, { ports: [SSH_PORT, WEB_PORT] });
    const { key: provisioningKey } = await api('POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, {
      name: 'access',
    });
    const identity = newDeviceIdentity();
    uuid = identity.uuid;
    const registered = await requestJson(`${server.url}/device/register`, {
      method: 'POST',
      headers: { authorization: `Bearer ${provisioningKey}` },
      body: { uuid, device_type: 'raspberrypi4-64', api_key: identity.apiKey },
    });
    expect(registered.status).toBe(201);
    await api('PATCH', `/api/v1/devices/${uuid}`, { name: 'kiosk-vpn' });

    // People: the admin (owner of the default organization) and beta, owner of an organization of their own.
    adminKey = await keygen(dir, 'id_admin');
    await api('POST', '/api/v1/ssh-keys', { publicKey: fs.readFileSync(`${adminKey}.pub`, 'utf8') });
    apiKeys.admin = (await api('POST', '/api/v1/api-keys', { name: 'proxy' })).key;
    await api('POST', '/api/v1/users', { email: 'beta@example.test', password: 'beta owner password' });
    const betaToken = (
      await requestJson(`${server.url}/api/v1/auth/login`, {
        method: 'POST',
        body: { email: 'beta@example.test', password: 'beta owner password' },
      })
    ).body.token as string;
    await api('POST', '/api/v1/orgs', { name: 'Beta' }, betaToken);
    betaKey = await keygen(dir, 'id_beta');
    await api(
      'POST',
      '/api/v1/ssh-keys',
      { publicKey: fs.readFileSync(`${betaKey}.pub`, 'utf8') },
      betaToken,
    );
    apiKeys.beta = (await api('POST', '/api/v1/api-keys', { name: 'proxy' }, betaToken)).key;

    // The device: its web server and its own sshd (trusting the admin's key), and its OpenVPN client.
    [namespace] = (await createNamespaces(1, 'acc')) as [Namespace];
    await serveHttp(namespace, WEB_PORT);
    fs.copyFileSync(`${adminKey}.pub`, path.join(dir, 'authorized_keys'));
    await startSshd(namespace, SSH_PORT, path.join(dir, 'authorized_keys'));
    const served = (await api('GET', '/os/v1/config')).services.openvpn;
    const client = await startOpenvpnClient(namespace, {
      config: served.config,
      ca: served.ca,
      username: uuid,
      password: identity.apiKey,
    });
    const address = await client.connected();
    await waitFor(
      async () => {
        const view = await api('GET', `/api/v1/devices/${uuid}`);
        return view.status === 'online' && view.vpnAddress === address;
      },
      30_000,
      'the device online through the VPN',
    );
  }, 90_000);

  afterAll(async () => {
    await destroyAll();
    await server?.close();
  });

  it("reaches the device's web server by its name through the CONNECT proxy, recorded as a session", async () => {
    const answer = await viaProxy(
      'admin@example.test',
      apiKeys.admin,
      `http://kiosk-vpn.devices:${WEB_PORT}/`,
    );
    expect(answer.stdout).toBe(`hello from ${namespace.name}\n200`);
    const sessions = await api('GET', `/api/v1/sessions?device=${uuid}`);
    expect(sessions.items).toContainEqual(
      expect.objectContaining({
        surface: 'connect',
        port: WEB_PORT,
        device: expect.objectContaining({ uuid }),
      }),
    );
  });

  it("reaches the device's own sshd with ssh -J through the gateway, the person authenticating to the device", async () => {
    const answer = await jump(adminKey, 'admin', uuid, ['ip netns identify; echo $((6*7))']);
    expect(answer.code).toBe(0);
    expect(answer.stdout).toBe(`${namespace.name}\n42\n`);
  });

  it("refuses another organization's person at the proxy and at the gateway, as for any device", async () => {
    const proxied = await viaProxy('beta@example.test', apiKeys.beta, `http://${uuid}.balena:${WEB_PORT}/`);
    expect(proxied.stdout).not.toContain('hello from');
    expect(proxied.stdout.split('\n').at(-1)).toBe('407');
    const jumped = await jump(betaKey, 'beta', uuid, ['true']);
    expect(jumped.code).toBe(255);
    expect(jumped.stdout).toBe('');
    // The same words as for a device that does not exist: nothing tells it exists.
    expect(jumped.stderr).toContain(`no device "${uuid}" among your devices`);
  });

  it("says why a shell through the gateway's agent channel cannot open on a device without fleetgate-agent", async () => {
    const answer = await run('ssh', [
      ...clientOptions(adminKey),
      '-p',
      String(server.server.sshPort),
      `admin+${uuid}@${BRIDGE_ADDRESS}`,
      'true',
    ]);
    expect(answer.code).not.toBe(0);
    expect(answer.stderr).toContain('only its TCP ports can be opened');
  });
});
