/**
 * Throughput laptop ↔ device over OpenVPN against the WebSocket tunnel (issue 17), in the same run. Starts a real
 * fleetgate (SQLite, in a child process, one OpenVPN instance, every listener on the namespaces' bridge
 * 172.30.0.1) and two devices, each with "a service on the device" (bench/lib/byte-service.ts: `PUT <n>` / `GET
 * <n>`, the same program on both):
 *
 *   - a balenaOS-style device: registered with a provisioning key, a real `openvpn` client in a network namespace
 *     of its own (packages/server/test/openvpn/netns.ts) with the served configuration and balenaOS's
 *     `--connect-retry 5 120`, the byte service inside the namespace on every address;
 *   - a fleetgate-agent device: a real agent process and its byte service in the root namespace.
 *
 * The same client (this process) moves the same bytes three ways, interleaved so that other load on the machine
 * falls on all of them:
 *
 *   vpn:     CONNECT <uuid>.devices:<port> through fleetgate's CONNECT proxy → the device's VPN address → OpenVPN
 *            server instance → fleetgate's VPN port (front door) → the device's `openvpn` → its service;
 *   tunnel:  CONNECT bench-agent.devices:<port> through the same proxy → the agent's WebSocket tunnel → agent →
 *            its service;
 *   direct:  for context, a TCP connection from the root namespace to the VPN address (the VPN without
 *            fleetgate's proxy: OpenVPN server, front door, client).
 *
 * `--mb` MB (10^6 bytes) each way — upload (laptop → device, the service confirms the count) and download — MB/s
 * from opening the connection to the end of the transfer, the median of `--rounds` rounds after an uncounted
 * min(`--mb`, 20) MB each way on each path; the ratio VPN ÷ tunnel; the CPU time per GB of every process in
 * between, from /proc/<pid>/stat.
 *
 *   npm run bench:vpn-throughput -- [--mb 200] [--rounds 3]
 *
 * Needs root, `openvpn` 2.6, `iproute2` and /dev/net/tun. Namespaces and processes are removed at the end, also
 * when it fails or is interrupted. It exits 0 with its figures; 1 when the bench itself fails (bytes lost, a
 * refused CONNECT, a process that never starts).
 */
import fs from 'node:fs';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createNamespaces, destroyAll, openvpnToolsMissing } from '@fleetgate/server/test/openvpn/netns.ts';
import {
  type ByteService,
  byteServiceArgs,
  download,
  startByteService,
  upload,
} from '../lib/byte-service.ts';
import { connectDirect, connectThrough } from '../lib/connect-client.ts';
import { cpuSeconds, percentile } from '../lib/figures.ts';
import { killChildren, startAgent } from '../lib/processes.ts';
import { ADMIN_EMAIL, api, ratio, type ServerProcess, wholeNumber } from '../lib/server-process.ts';
import {
  createFleet,
  fetchClientConfig,
  registerBalenaDevices,
  startBalenaClient,
  startVpnServer,
  vpnInstances,
} from './balena-devices.ts';

const AGENT_DEVICE_NAME = 'bench-agent';
/** The byte service's port inside the VPN device's namespace (its own network: any port is free there). */
const VPN_SERVICE_PORT = 9000;
const MB = 1_000_000;

const log = (line: string) => process.stdout.write(`${line}\n`);
const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').trim();

type Way = 'vpn' | 'tunnel' | 'direct';
const ways: Way[] = ['vpn', 'tunnel', 'direct'];
const wayNames: Record<Way, string> = {
  vpn: 'VPN, CONNECT proxy',
  tunnel: 'tunnel, CONNECT proxy',
  direct: 'VPN, direct TCP (no proxy)',
};
type Direction = 'upload' | 'download';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      mb: { type: 'string', default: '200' },
      rounds: { type: 'string', default: '3' },
    },
  });
  const mb = wholeNumber('mb', values.mb, 1);
  const rounds = wholeNumber('rounds', values.rounds, 1);
  const missing = openvpnToolsMissing();
  if (missing) {
    log(`BENCH FAILED: it cannot run here: ${missing}`);
    return 1;
  }
  const loadBefore = loadavg();
  log(
    `fleetgate throughput, OpenVPN against the tunnel: ${mb} MB each way × ${rounds} rounds; ` +
      `Node ${process.versions.node}, ${os.cpus().length} cores, ${new Date().toISOString()}`,
  );
  log(`  /proc/loadavg before: ${loadBefore}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-vpn-throughput-'));
  let server: ServerProcess | undefined;
  let service: ByteService | undefined;
  let cleaned: Promise<void> | undefined;
  const cleanUp = () =>
    (cleaned ??= (async () => {
      await destroyAll().catch((err: unknown) => log(`cleaning the namespaces failed: ${String(err)}`));
      killChildren();
      service?.stop();
      await server?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    })());
  const interrupted = (signal: NodeJS.Signals) => {
    log(`\n${signal}: cleaning up`);
    void cleanUp().then(() => process.exit(1));
  };
  process.once('SIGINT', interrupted).once('SIGTERM', interrupted);
  try {
    const vpn = await startVpnServer(dir, 1);
    server = vpn.server;
    const { base, session } = vpn;

    // The balenaOS-style device: its client and its byte service in a namespace.
    const vpnFleet = await createFleet(base, session, 'bench-vpn');
    const [device] = await registerBalenaDevices(base, session, vpnFleet, 1);
    const served = await fetchClientConfig(vpn, device!);
    const [namespace] = await createNamespaces(1, 'tput');
    const client = await startBalenaClient(namespace!, served, device!);
    const vpnAddress = await client.connected(60_000);
    const inside = namespace!.spawn(process.execPath, byteServiceArgs('0.0.0.0', VPN_SERVICE_PORT), {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      let said = '';
      inside.stdout?.on('data', (chunk: Buffer) => {
        said += chunk;
        if (said.includes('listening')) resolve();
      });
      inside.once('exit', (code) =>
        reject(new Error(`the byte service in ${namespace!.name} ended (${code})`)),
      );
    });
    await api(base, 'PUT', `/api/v1/devices/${device!.uuid}/allowed-ports`, session, {
      ports: [VPN_SERVICE_PORT],
    });

    // The fleetgate-agent device and its byte service, in the root namespace.
    service = await startByteService();
    const org = (await api(base, 'GET', '/api/v1/orgs', session)).items[0];
    const agentFleet = (
      await api(base, 'POST', '/api/v1/fleets', session, {
        orgId: org.id,
        name: 'bench-agent',
        defaultDeviceType: 'generic-amd64',
      })
    ).id as number;
    const { uuid: agentUuid, agent } = await startAgent(base, session, agentFleet, dir, [service.port]);
    await api(base, 'PUT', `/api/v1/devices/${agentUuid}/allowed-ports`, session, { ports: [service.port] });
    await api(base, 'PATCH', `/api/v1/devices/${agentUuid}`, session, { name: AGENT_DEVICE_NAME });

    const { key } = await api(base, 'POST', '/api/v1/api-keys', session, { name: 'bench-vpn-throughput' });
    const authorization = `Basic ${Buffer.from(`${ADMIN_EMAIL}:${key}`).toString('base64')}`;
    const proxyHost = new URL(base).hostname;
    const [instance] = await vpnInstances(base);
    if (!instance?.pid || client.pid === undefined)
      throw new Error('the OpenVPN server or client has no pid');
    const servicePort = service.port;
    const open: Record<Way, () => Promise<net.Socket>> = {
      vpn: () =>
        connectThrough(
          vpn.proxyPort,
          `${device!.uuid}.devices:${VPN_SERVICE_PORT}`,
          authorization,
          proxyHost,
        ),
      tunnel: () =>
        connectThrough(
          vpn.proxyPort,
          `${AGENT_DEVICE_NAME}.devices:${servicePort}`,
          authorization,
          proxyHost,
        ),
      direct: () => connectDirect(VPN_SERVICE_PORT, vpnAddress),
    };
    // What sits between the client and the service, for CPU time.
    const between: Record<Way, Array<{ label: string; pid: number }>> = {
      vpn: [
        { label: 'fleetgate', pid: server.pid },
        { label: 'OpenVPN server', pid: instance.pid },
        { label: 'OpenVPN client', pid: client.pid },
      ],
      tunnel: [
        { label: 'fleetgate', pid: server.pid },
        { label: 'agent', pid: agent.pid! },
      ],
      direct: [
        { label: 'fleetgate (VPN port)', pid: server.pid },
        { label: 'OpenVPN server', pid: instance.pid },
        { label: 'OpenVPN client', pid: client.pid },
      ],
    };
    log(
      `  server pid ${server.pid}; VPN device ${device!.uuid} at ${vpnAddress} (OpenVPN server pid ${instance.pid}, ` +
        `client pid ${client.pid}, in ${namespace!.name}); agent device ${agentUuid} (agent pid ${agent.pid})`,
    );

    const transfer = async (way: Way, direction: Direction, bytes: number) => {
      const cpuBefore = between[way].map(({ pid }) => cpuSeconds(pid));
      const start = performance.now();
      const socket = await open[way]();
      await (direction === 'upload' ? upload(socket, bytes) : download(socket, bytes));
      const seconds = (performance.now() - start) / 1000;
      const cpu = between[way].map(({ pid }, i) => cpuSeconds(pid) - cpuBefore[i]!);
      return { rate: bytes / MB / seconds, cpu };
    };

    // Warm-up, not counted: JIT, socket buffers, the API key's first check, the agent's first streams.
    const bytes = mb * MB;
    for (const way of ways) {
      await transfer(way, 'upload', Math.min(bytes, 20 * MB));
      await transfer(way, 'download', Math.min(bytes, 20 * MB));
    }

    log(`\n${mb} MB each way, ${rounds} rounds, interleaved`);
    const rates: Record<Way, Record<Direction, number[]>> = {
      vpn: { upload: [], download: [] },
      tunnel: { upload: [], download: [] },
      direct: { upload: [], download: [] },
    };
    const cpuTotals: Record<Way, number[]> = { vpn: [0, 0, 0], tunnel: [0, 0], direct: [0, 0, 0] };
    for (let round = 1; round <= rounds; round++) {
      for (const direction of ['upload', 'download'] as const) {
        for (const way of ways) {
          const { rate, cpu } = await transfer(way, direction, bytes);
          rates[way][direction].push(rate);
          cpu.forEach((seconds, i) => {
            cpuTotals[way][i]! += seconds;
          });
          const parts = between[way].map(({ label }, i) => `${label} ${cpu[i]!.toFixed(2)} s`).join(' + ');
          log(
            `  round ${round}, ${direction}, ${wayNames[way]}: ${rate.toFixed(1)} MB/s, CPU in between ${parts}`,
          );
        }
      }
    }

    const median = (values: number[]) => percentile(values, 50);
    const gigabytes = (2 * rounds * bytes) / 1e9;
    const row = (cells: string[]) => log(`| ${cells.join(' | ')} |`);
    log(
      '\nResults (MB = 10^6 bytes; up = laptop → device; ratio VPN ÷ tunnel, both through the CONNECT proxy)\n',
    );
    row(['measure', ...ways.map((way) => wayNames[way]), 'VPN ÷ tunnel']);
    row(['---', '---:', '---:', '---:', '---:']);
    for (const direction of ['upload', 'download'] as const) {
      const m = (way: Way) => median(rates[way][direction]);
      row([
        `${mb} MB ${direction === 'upload' ? 'to' : 'from'} the device, median of ${rounds} (MB/s)`,
        ...ways.map((way) => m(way).toFixed(1)),
        ratio(m('vpn'), m('tunnel')),
      ]);
      row([
        `${direction}, each round (MB/s)`,
        ...ways.map((way) => rates[way][direction].map((r) => r.toFixed(0)).join(' / ')),
        '—',
      ]);
    }
    const cpuPerGb = (way: Way) => cpuTotals[way].reduce((sum, s) => sum + s, 0) / gigabytes;
    row([
      'CPU between client and service (s per GB)',
      ...ways.map(
        (way) =>
          `${cpuPerGb(way).toFixed(2)} (${between[way].map(({ label }, i) => `${label} ${(cpuTotals[way][i]! / gigabytes).toFixed(2)}`).join(' + ')})`,
      ),
      ratio(cpuPerGb('vpn'), cpuPerGb('tunnel')),
    ]);
    log(`\n/proc/loadavg before: ${loadBefore}; after: ${loadavg()}`);
    return 0;
  } catch (err) {
    log(`\nBENCH FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  } finally {
    await cleanUp();
  }
}

process.exit(await main());
