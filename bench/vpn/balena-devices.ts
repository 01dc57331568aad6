/**
 * What the OpenVPN benches with real clients share (bench/vpn/storm.ts, bench/vpn/throughput.ts): a fleetgate with
 * its OpenVPN backend on, listening on the namespaces' bridge; devices registered the balena way; the client
 * configuration they fetch; and real `openvpn` clients in network namespaces (the test harness,
 * packages/server/test/openvpn/netns.ts), started as balenaOS starts them.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import {
  BRIDGE_ADDRESS,
  type Namespace,
  type OpenvpnClient,
  startOpenvpnClient,
} from '@fleetgate/server/test/openvpn/netns.ts';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  api,
  type Flags,
  type ServerProcess,
  signInAsAdmin,
  startServerProcess,
} from '../lib/server-process.ts';

/** What balenaOS's `openvpn.service` adds after `--config /etc/openvpn/openvpn.conf` (meta-balena). */
export const BALENAOS_OPENVPN_ARGS = ['--connect-retry', '5', '120'] as const;

/** A device as the bench registered it: its uuid and device API key (OpenVPN's user name and password). */
export interface BalenaDevice {
  uuid: string;
  apiKey: string;
}

export interface VpnServer {
  server: ServerProcess;
  /** `http://172.30.0.1:<port>`: the API as the namespaces (and the bench) reach it. */
  base: string;
  proxyPort: number;
  vpnPort: number;
  session: string;
}

/** A TCP port nothing listens on at `host` now. */
export function freePortOn(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Whether `host`:`port` can be listened on now. */
function isFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, host, () => probe.close(() => resolve(true)));
  });
}

/**
 * A base port whose next `count` ports are free on 127.0.0.1: the instances listen at base + 1 … base + count,
 * and the product's default (10000) may be taken by another run's fleetgate on this shared machine.
 */
async function freeBasePort(count: number): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = (await freePortOn('127.0.0.1')) - 1;
    const free = await Promise.all(
      Array.from({ length: count }, (_, i) => isFree('127.0.0.1', base + 1 + i)),
    );
    if (free.every(Boolean)) return base;
  }
  throw new Error(`found no ${count} free ports in a row on 127.0.0.1`);
}

/**
 * fleetgate (SQLite, in a child process) with `FLEETGATE_VPN=on` and `instances` OpenVPN instances, every listener
 * on the bridge address, so that clients in namespaces reach the VPN port and the bench reaches the API and the
 * proxy; signed in as the admin.
 */
export async function startVpnServer(dataDir: string, instances: number): Promise<VpnServer> {
  const flags: Flags = {
    dataDir: path.join(dataDir, 'data'),
    listen: BRIDGE_ADDRESS,
    httpPort: await freePortOn(BRIDGE_ADDRESS),
    proxyPort: await freePortOn(BRIDGE_ADDRESS),
    sshPort: 0,
    logLevel: 'warn',
    adminEmail: ADMIN_EMAIL,
    adminPassword: ADMIN_PASSWORD,
    vpn: 'on',
    // Not 0: the configuration devices are served names this port (`remote <host> <vpnPort>`).
    vpnPort: await freePortOn(BRIDGE_ADDRESS),
    vpnInstances: instances,
    vpnBasePort: await freeBasePort(instances),
  };
  const server = await startServerProcess(flags);
  const base = server.url;
  return {
    server,
    base,
    proxyPort: flags.proxyPort as number,
    vpnPort: flags.vpnPort as number,
    session: await signInAsAdmin(base),
  };
}

/** A fleet of raspberrypi4-64 devices in the first organization; answers its id. */
export async function createFleet(base: string, session: string, name: string): Promise<number> {
  const org = (await api(base, 'GET', '/api/v1/orgs', session)).items[0];
  const fleet = await api(base, 'POST', '/api/v1/fleets', session, {
    orgId: org.id,
    name,
    defaultDeviceType: 'raspberrypi4-64',
  });
  return fleet.id as number;
}

/**
 * Registers `count` devices as balenaOS does: a provisioning key of the fleet as Bearer, and `POST
 * /api/v1/devices/register` with the device's own uuid and API key, 20 at a time.
 */
export async function registerBalenaDevices(
  base: string,
  session: string,
  fleetId: number,
  count: number,
): Promise<BalenaDevice[]> {
  const { key } = await api(base, 'POST', `/api/v1/fleets/${fleetId}/provisioning-keys`, session, {
    name: 'bench',
  });
  const devices = Array.from({ length: count }, () => ({
    uuid: randomBytes(16).toString('hex'),
    apiKey: randomBytes(16).toString('hex'),
  }));
  for (let i = 0; i < devices.length; i += 20) {
    await Promise.all(
      devices.slice(i, i + 20).map(async ({ uuid, apiKey }) => {
        const response = await fetch(`${base}/api/v1/devices/register`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ uuid, device_type: 'raspberrypi4-64', api_key: apiKey }),
        });
        if (response.status !== 201)
          throw new Error(`registering ${uuid} answered ${response.status}: ${await response.text()}`);
      }),
    );
  }
  return devices;
}

/**
 * `GET /os/v1/config` as os-config fetches it (Bearer device API key): the OpenVPN client configuration and CA.
 * Checks that its `remote` line names the host the request used and the VPN port.
 */
export async function fetchClientConfig(
  vpn: VpnServer,
  device: BalenaDevice,
): Promise<{ config: string; ca: string }> {
  const response = await fetch(`${vpn.base}/os/v1/config`, {
    headers: { authorization: `Bearer ${device.apiKey}` },
  });
  if (!response.ok)
    throw new Error(`GET /os/v1/config answered ${response.status}: ${await response.text()}`);
  const body = (await response.json()) as { services: { openvpn: { config: string; ca: string } } };
  const { config, ca } = body.services.openvpn;
  const remote = `remote ${new URL(vpn.base).hostname} ${vpn.vpnPort}`;
  if (!config.split('\n').includes(remote))
    throw new Error(`the served configuration has no "${remote}" line:\n${config}`);
  return { config, ca };
}

/** A real `openvpn` client in `namespace` with the served configuration, run as balenaOS runs it. */
export function startBalenaClient(
  namespace: Namespace,
  served: { config: string; ca: string },
  device: BalenaDevice,
): Promise<OpenvpnClient> {
  return startOpenvpnClient(namespace, {
    config: served.config,
    ca: served.ca,
    username: device.uuid,
    password: device.apiKey,
    args: BALENAOS_OPENVPN_ARGS,
  });
}

/** One OpenVPN instance as `/readyz` shows it. */
export interface VpnInstanceStatus {
  id: number;
  pid: number | null;
  ready: boolean;
  clients: number;
  restarts: number;
}

/** fleetgate's OpenVPN instances, from `/readyz`. */
export async function vpnInstances(base: string): Promise<VpnInstanceStatus[]> {
  const ready = await api(base, 'GET', '/readyz');
  return ready.vpn.instances as VpnInstanceStatus[];
}

/** The counters of `fleetgate_vpn_auth_total` in `/metrics`, by outcome. */
export async function vpnAuthDecisions(base: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const match of text.matchAll(/^fleetgate_vpn_auth_total\{outcome="(\w+)"\} (\d+)/gm))
    counts[match[1]!] = Number(match[2]);
  return counts;
}

/**
 * `fleetgate_vpn_auth_seconds` of the `allowed` outcome in `/metrics`: its sum and count, and its cumulative
 * buckets (upper bound in seconds → decisions at or under it).
 */
export async function vpnAuthSeconds(
  base: string,
): Promise<{ sum: number; count: number; buckets: [number, number][] }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let sum = 0;
  let count = 0;
  const buckets: [number, number][] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('fleetgate_vpn_auth_seconds') || !line.includes('outcome="allowed"')) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith('fleetgate_vpn_auth_seconds_sum')) sum = value;
    else if (line.startsWith('fleetgate_vpn_auth_seconds_count')) count = value;
    else {
      const le = /le="([^"]+)"/.exec(line)?.[1];
      if (le) buckets.push([le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), value]);
    }
  }
  return { sum, count, buckets };
}
