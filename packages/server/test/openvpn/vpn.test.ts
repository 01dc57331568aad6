/**
 * fleetgate's OpenVPN backend with real balenaOS-style devices: the real `fleetgate serve` (`FLEETGATE_VPN=on`,
 * its supervised OpenVPN 2.6 instances behind its public VPN port) and real `openvpn` clients, each in a network
 * namespace of its own (netns.ts), running the configuration `GET /os/v1/config` serves with the device's uuid and
 * key, as balenaOS does. On SQLite, and on PostgreSQL with DATABASE_URL.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newDeviceIdentity } from '../enrollment/helpers.ts';
import { ADMIN_EMAIL } from '../harness.ts';
import { type ListeningServer, requestJson, startListeningServer } from '../listening.ts';
import { clientOptions, keygen, run, sshJump } from '../ssh/openssh-tools.ts';
import {
  BRIDGE_ADDRESS,
  createNamespaces,
  destroyAll,
  freePortOn,
  type Namespace,
  type OpenvpnClient,
  serveHttp,
  startOpenvpnClient,
  startSshd,
  workerNetwork,
} from './netns.ts';
import { openvpnPrerequisites } from './prerequisites.ts';

const missing = openvpnPrerequisites('OpenVPN backend tests');

/** The port each device's web server listens on, in its namespace (openBalena's `<uuid>.balena:80`). */
const WEB_PORT = 80;
/** balenaOS's host sshd. */
const HOST_SSH_PORT = 22222;
const RECONNECTS = 25;

interface Device {
  id: number;
  uuid: string;
  apiKey: string;
}

describe.skipIf(missing)('OpenVPN backend with balenaOS devices', () => {
  let server: ListeningServer;
  let namespaces: Namespace[];
  let fleetId: number;
  let provisioningKey: string;
  /** `services.openvpn` of `GET /os/v1/config`, as os-config writes it on the device. */
  let served: { config: string; ca: string };

  const api = async (method: string, url: string, body?: unknown) => {
    const answer = await requestJson(`${server.url}${url}`, {
      method,
      token: server.adminToken,
      ...(body === undefined ? {} : { body }),
    });
    if (answer.status >= 300) throw new Error(`${method} ${url}: ${answer.status} ${answer.text}`);
    return answer.body;
  };
  /** Registers a device as balena-register-device does, with the fleet's provisioning key and its own new key. */
  const register = async (): Promise<Device> => {
    const identity = newDeviceIdentity();
    const answer = await requestJson(`${server.url}/device/register`, {
      method: 'POST',
      headers: { authorization: `Bearer ${provisioningKey}` },
      body: { uuid: identity.uuid, device_type: 'raspberrypi4-64', api_key: identity.apiKey },
    });
    if (answer.status !== 201) throw new Error(`register: ${answer.status} ${answer.text}`);
    return { id: answer.body.id, ...identity };
  };
  const connect = (namespace: Namespace, username: string, password: string) =>
    startOpenvpnClient(namespace, { config: served.config, ca: served.ca, username, password });
  const deviceView = (device: Device) => api('GET', `/api/v1/devices/${device.uuid}`);
  /** Waits until the API shows the device online through the VPN at `address`; answers its view. */
  const untilOnlineAt = (device: Device, address: string) =>
    waitFor(async () => {
      const view = await deviceView(device);
      return (
        view.status === 'online' && view.onlineVia.includes('vpn') && view.vpnAddress === address && view
      );
    }, `${device.uuid} online at ${address}`);

  beforeAll(async () => {
    const network = await workerNetwork();
    server = await startListeningServer({
      flags: {
        // The namespaces reach the root namespace at the bridge's address only.
        listen: BRIDGE_ADDRESS,
        vpn: 'on',
        // A port the served configuration can name (with 0 it would name 0: see the report).
        vpnPort: await freePortOn(BRIDGE_ADDRESS),
        vpnInstances: 2,
        // This process's own subnet and instance ports: parallel test files share the root namespace's routes.
        vpnBaseSubnet: `${network.vpnSubnet}/16`,
        vpnInstanceSubnetBitmask: 20,
        vpnBasePort: 30_000 + network.slot * 16,
        presenceFlushMs: 50,
      },
    });
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'balena-vpn',
      defaultDeviceType: 'raspberrypi4-64',
    });
    fleetId = fleet.id;
    await api('PUT', `/api/v1/fleets/${fleetId}/allowed-ports`, { ports: [WEB_PORT, HOST_SSH_PORT] });
    provisioningKey = (await api('POST', `/api/v1/fleets/${fleetId}/provisioning-keys`, { name: 'vpn' })).key;
    // What os-config fetches (served to anyone: the VPN itself refuses whoever has no device key).
    served = (await api('GET', '/os/v1/config')).services.openvpn;
    namespaces = await createNamespaces(13, 'vpn');
  }, 60_000);

  afterAll(async () => {
    await destroyAll();
    await server?.close();
  });

  it("a device registered with the fleet's provisioning key connects with its uuid and key, from the served configuration, and shows online", async () => {
    const device = await register();
    // os-config's request: its key as a bearer token, from the host name it was configured with.
    const answer = await requestJson(`${server.url}/os/v1/config`, {
      headers: { authorization: `Bearer ${device.apiKey}` },
    });
    expect(answer.status).toBe(200);
    expect(answer.body.services.openvpn).toEqual(served);
    expect(served.config).toContain(`remote ${BRIDGE_ADDRESS} ${server.config.vpnPort}`);

    const client = await connect(namespaces[0] as Namespace, device.uuid, device.apiKey);
    const address = await client.connected();
    const view = await untilOnlineAt(device, address);
    expect(view.onlineVia).toEqual(['vpn']);
  });

  it('refuses a wrong key, an unknown uuid and a decommissioned device: each client ends with AUTH_FAILED', async () => {
    const [wrongKey, decommissioned] = [await register(), await register()];
    await api('POST', `/api/v1/devices/${decommissioned.uuid}/decommission`);
    const unknown = newDeviceIdentity();
    const refused = await Promise.all([
      connect(namespaces[1] as Namespace, wrongKey.uuid, newDeviceIdentity().apiKey),
      connect(namespaces[2] as Namespace, unknown.uuid, unknown.apiKey),
      connect(namespaces[3] as Namespace, decommissioned.uuid, decommissioned.apiKey),
    ]);
    for (const client of refused) {
      const { log } = await client.exited;
      expect(log).toContain('AUTH_FAILED');
      expect(log).not.toContain('Initialization Sequence Completed');
    }
    for (const device of [wrongKey, decommissioned])
      expect((await deviceView(device)).status).not.toBe('online');
  });

  it('decommissioning a connected device cuts its VPN connection at once, and it shows offline', async () => {
    const device = await register();
    const client = await connect(namespaces[4] as Namespace, device.uuid, device.apiKey);
    await untilOnlineAt(device, await client.connected());
    await api('POST', `/api/v1/devices/${device.uuid}/decommission`);
    // At once: well before OpenVPN's own timeouts (pings every 10 s, given up after 60 s) could have noticed.
    await client.disconnected(5000);
    await waitFor(async () => (await deviceView(device)).status !== 'online', `${device.uuid} offline`);
    // Told to halt, the client stops trying (the device's service manager would start it again, to be refused).
    const { log } = await client.exited;
    expect(log).toContain('Halt command was pushed by server');
  });

  it(`a device killed and reconnecting at once, ${RECONNECTS} times, is never left offline`, async () => {
    const device = await register();
    const client = await connect(namespaces[5] as Namespace, device.uuid, device.apiKey);
    await untilOnlineAt(device, await client.connected());
    let address = '';
    for (let i = 0; i < RECONNECTS; i++) {
      // SIGKILL: a power cut, the old connection's end reaching the server while the new one comes in.
      await client.restart('SIGKILL');
      address = await client.connected();
      await untilOnlineAt(device, address);
    }
    // A late disconnect of an earlier connection would land within a few presence flushes (50 ms each).
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const view = await deviceView(device);
    expect(view.status).toBe('online');
    expect(view.vpnAddress).toBe(address);
  });

  it("a device whose old connection the server still holds (a power cut) comes back: the old connection's end does not take it offline", async () => {
    const device = await register();
    const [before, after] = [namespaces[7] as Namespace, namespaces[8] as Namespace];
    const old = await connect(before, device.uuid, device.apiKey);
    await untilOnlineAt(device, await old.connected());
    // The power goes: the client dies without a word reaching the server, which holds the connection open.
    await before.unplug();
    await old.kill('SIGKILL');
    const again = await connect(after, device.uuid, device.apiKey);
    const address = await again.connected();
    await untilOnlineAt(device, address);
    // The old connection ends now (the server dropped it for the new one; its client's last packets arrive).
    await before.plug();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const view = await deviceView(device);
    expect(view.status).toBe('online');
    expect(view.vpnAddress).toBe(address);
    await again.kill();
  });

  it("a device without a key of its own connects with the fleet's provisioning key, as balenaOS does until its key exchange; after it, only with its own key", async () => {
    const namespace = namespaces[11] as Namespace;
    // Made by a person beforehand (balena device register): no key until its supervisor exchanges one.
    const made = await api('POST', '/api/v1/devices', { fleetId, name: 'preregistered' });
    const device: Device = { id: made.id, uuid: made.uuid, apiKey: newDeviceIdentity().apiKey };
    const before = await connect(namespace, device.uuid, provisioningKey);
    await untilOnlineAt(device, await before.connected());

    const exchanged = await requestJson(`${server.url}/api-key/device/${device.id}/device-key`, {
      method: 'POST',
      headers: { authorization: `Bearer ${provisioningKey}` },
      body: { apiKey: device.apiKey },
    });
    expect(exchanged.status).toBe(200);
    await before.kill();
    const withProvisioningKey = await connect(namespace, device.uuid, provisioningKey);
    expect((await withProvisioningKey.exited).log).toContain('AUTH_FAILED');
    const withOwnKey = await connect(namespace, device.uuid, device.apiKey);
    await untilOnlineAt(device, await withOwnKey.connected());
  });

  it("revoking a connected device's keys cuts its VPN connection, and its client, coming back with the old key, is refused", async () => {
    const device = await register();
    const client = await connect(namespaces[9] as Namespace, device.uuid, device.apiKey);
    await untilOnlineAt(device, await client.connected());
    await api('DELETE', `/api/v1/devices/${device.uuid}/keys`);
    // Told to reconnect, it does, with the key it has: auth-retry none ends it on the refusal.
    const { log } = await client.exited;
    expect(log).toContain('AUTH_FAILED');
    await waitFor(async () => (await deviceView(device)).status !== 'online', `${device.uuid} offline`);
  });

  it('an OpenVPN instance that dies: its devices reconnect and show online again, and the instance is started again', async () => {
    const device = await register();
    const client = await connect(namespaces[10] as Namespace, device.uuid, device.apiKey);
    const address = await client.connected();
    await untilOnlineAt(device, address);
    const instances = async (): Promise<
      { id: number; subnet: string; pid: number | null; restarts: number }[]
    > => (await requestJson(`${server.url}/readyz`)).body.vpn.instances;
    // The instance holding the device: the one whose subnet its address is in.
    const holding = (await instances()).find((instance) => inSubnet(address, instance.subnet));
    expect(holding?.pid).toBeTypeOf('number');
    // The process fleetgate started for the instance, dying as OpenVPN would of a crash.
    process.kill(holding?.pid as number, 'SIGKILL');
    await client.disconnected();
    await untilOnlineAt(device, await client.connected());
    await waitFor(async () => {
      const again = (await instances()).find((instance) => instance.id === holding?.id);
      return again !== undefined && again.restarts > 0 && again.pid !== null && again.pid !== holding?.pid;
    }, `instance ${holding?.id} started again`);
  });

  it('curl through the CONNECT proxy reaches the web server in the device at <uuid>.balena:80', async () => {
    const device = await register();
    const namespace = namespaces[6] as Namespace;
    await serveHttp(namespace, WEB_PORT);
    const client: OpenvpnClient = await connect(namespace, device.uuid, device.apiKey);
    await untilOnlineAt(device, await client.connected());
    const { key } = await api('POST', '/api/v1/api-keys', { name: 'curl' });
    const answer = await curl([
      '-x',
      `http://${BRIDGE_ADDRESS}:${server.server.proxyPort}`,
      '-U',
      `${ADMIN_EMAIL}:${key}`,
      `http://${device.uuid}.balena:${WEB_PORT}/`,
    ]);
    expect(answer.stderr).toBe('');
    expect(answer.stdout).toBe(`hello from ${namespace.name}`);
  });

  it("ssh -J through fleetgate's SSH gateway reaches the device's host sshd at <uuid>.balena, with the keys os-config gave it", async () => {
    const device = await register();
    const namespace = namespaces[12] as Namespace;
    const dir = fs.mkdtempSync(path.join((await workerNetwork()).dir, 'ssh-'));
    const key = await keygen(dir, 'admin');
    await api('POST', '/api/v1/ssh-keys', { publicKey: fs.readFileSync(`${key}.pub`, 'utf8') });
    // os-config, with the device's key, writes root's authorized_keys for balenaOS's host sshd.
    const config = await requestJson(`${server.url}/os/v1/config`, {
      headers: { authorization: `Bearer ${device.apiKey}` },
    });
    const authorizedKeys = path.join(dir, 'authorized_keys');
    fs.writeFileSync(authorizedKeys, config.body.services.ssh.authorized_keys);
    await startSshd(namespace, HOST_SSH_PORT, authorizedKeys);
    const client = await connect(namespace, device.uuid, device.apiKey);
    await untilOnlineAt(device, await client.connected());

    const session = await sshJump(
      dir,
      {
        key,
        login: ADMIN_EMAIL,
        gateway: `${BRIDGE_ADDRESS}:${server.server.sshPort}`,
        target: `${device.uuid}.balena`,
        port: HOST_SSH_PORT,
      },
      ['ip netns identify'],
    );
    expect(session.code, session.stderr).toBe(0);
    expect(session.stdout.trim()).toBe(namespace.name);

    // A command run by the gateway itself needs fleetgate-agent on the device: refused, saying why.
    const exec = await run('ssh', [
      ...clientOptions(key),
      '-p',
      String(server.server.sshPort),
      `admin+${device.uuid}@${BRIDGE_ADDRESS}`,
      'true',
    ]);
    expect(exec.code).not.toBe(0);
    expect(exec.stderr).toMatch(/reached over OpenVPN, without fleetgate-agent/);
  });
});

/** What `curl` printed; never throws on curl's own failure (the caller checks stderr). */
function curl(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '10', ...args], (_error, stdout, stderr) =>
      resolve({ stdout, stderr }),
    );
  });
}

/** Whether the IPv4 `address` is in `subnet` (CIDR). */
function inSubnet(address: string, subnet: string): boolean {
  const toNumber = (text: string) => text.split('.').reduce((n, part) => n * 256 + Number(part), 0);
  const [network = '', bits = '32'] = subnet.split('/');
  const size = 2 ** (32 - Number(bits));
  return Math.floor(toNumber(address) / size) === Math.floor(toNumber(network) / size);
}

/** Polls `check` every 50 ms until it answers something truthy; throws after 15 s naming `what`. */
async function waitFor<T>(check: () => Promise<T | false>, what: string): Promise<T> {
  const deadline = performance.now() + 15_000;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
