/**
 * OpenVPN reconnect storm (issue 17): `--clients` real balenaOS-configured `openvpn` clients, each in a network
 * namespace of its own (packages/server/test/openvpn/netns.ts), connected to a real fleetgate (SQLite, in a child
 * process, `--instances` OpenVPN instances, every listener on the namespaces' bridge 172.30.0.1). Then every one
 * of fleetgate's OpenVPN instances is killed with SIGKILL at once (their pids from `/readyz`), as a crash would:
 * fleetgate starts them again, the clients reconnect by themselves (`--connect-retry 5 120`, as balenaOS's unit
 * runs them), and the bench measures, from the kill:
 *
 *   - when the API first shows a device offline, and every device offline (the loss noticed);
 *   - when `/readyz` shows every instance running again (new pids, taking clients);
 *   - when each client is connected again (its log: `Initialization Sequence Completed` after the loss);
 *   - when the API (`GET /api/v1/devices?fleetId=…`, every page) shows **every** device `online` through `vpn`
 *     with the VPN address its client really has, while every client is connected: the figure. Target ≤ 60 s.
 *
 * The baseline in the same run: the same clients' first connection from cold, started at once (until every one
 * is connected and shown online). For context, fleetgate's own count of its decisions (`/metrics`
 * `fleetgate_vpn_auth_total`, `fleetgate_vpn_auth_seconds`) during the storm, and its CPU time.
 *
 *   npm run bench:vpn-storm -- [--clients 200] [--instances 2] [--timeout 180]
 *
 * Needs root, `openvpn` 2.6, `iproute2` and /dev/net/tun. Namespaces and processes are removed at the end, also
 * when it fails or is interrupted (a run killed with SIGKILL is swept by the harness's next user). It exits 0 with
 * its figures, met or not; 1 when the bench itself fails (a client that cannot connect at first, a process that
 * never starts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  createNamespaces,
  destroyAll,
  type OpenvpnClient,
  openvpnToolsMissing,
} from '@fleetgate/server/test/openvpn/netns.ts';
import { cpuSeconds, percentile } from '../lib/figures.ts';
import { sleep } from '../lib/processes.ts';
import { api, ratio, type ServerProcess, wholeNumber } from '../lib/server-process.ts';
import {
  type BalenaDevice,
  createFleet,
  fetchClientConfig,
  registerBalenaDevices,
  startBalenaClient,
  startVpnServer,
  vpnAuthDecisions,
  vpnAuthSeconds,
  vpnInstances,
} from './balena-devices.ts';

/** The issue's target: every device back and shown online within this long after the instances died. */
const TARGET_SECONDS = 60;
/** How often the bench asks the API and `/readyz` during the storm. */
const POLL_MS = 250;

const log = (line: string) => process.stdout.write(`${line}\n`);
const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').trim();
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

interface ListedDevice {
  uuid: string;
  status: string;
  onlineVia: string[];
  vpnAddress: string | null;
}

/** Every device of the fleet, as the API lists them (every page). */
async function listFleet(base: string, session: string, fleetId: number): Promise<ListedDevice[]> {
  const devices: ListedDevice[] = [];
  let after: string | null = null;
  do {
    const query = `fleetId=${fleetId}&limit=500${after ? `&after=${encodeURIComponent(after)}` : ''}`;
    const page = await api(base, 'GET', `/api/v1/devices?${query}`, session);
    devices.push(...(page.items as ListedDevice[]));
    after = page.nextCursor as string | null;
  } while (after);
  return devices;
}

/** How many devices the API shows online through the VPN at the address their client has now. */
function shownRight(listed: ListedDevice[], clientOf: Map<string, OpenvpnClient>): number {
  let right = 0;
  for (const device of listed) {
    const address = clientOf.get(device.uuid)?.address;
    if (
      address &&
      device.status === 'online' &&
      device.onlineVia.includes('vpn') &&
      device.vpnAddress === address
    )
      right++;
  }
  return right;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      clients: { type: 'string', default: '200' },
      instances: { type: 'string', default: '2' },
      timeout: { type: 'string', default: '180' },
    },
  });
  const count = wholeNumber('clients', values.clients, 1);
  const instances = wholeNumber('instances', values.instances, 1);
  const timeoutMs = wholeNumber('timeout', values.timeout, 10) * 1000;
  const missing = openvpnToolsMissing();
  if (missing) {
    log(`BENCH FAILED: it cannot run here: ${missing}`);
    return 1;
  }
  const loadBefore = loadavg();
  log(
    `fleetgate OpenVPN reconnect storm: ${count} real openvpn clients in namespaces, ${instances} instance(s); ` +
      `Node ${process.versions.node}, ${os.cpus().length} cores, ${new Date().toISOString()}`,
  );
  log(`  /proc/loadavg before: ${loadBefore}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-vpn-storm-'));
  let server: ServerProcess | undefined;
  let cleaned: Promise<void> | undefined;
  // Clients and namespaces first (the harness kills what runs in them), then the server and its instances.
  const cleanUp = () =>
    (cleaned ??= (async () => {
      await destroyAll().catch((err: unknown) => log(`cleaning the namespaces failed: ${String(err)}`));
      await server?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    })());
  const interrupted = (signal: NodeJS.Signals) => {
    log(`\n${signal}: cleaning up`);
    void cleanUp().then(() => process.exit(1));
  };
  process.once('SIGINT', interrupted).once('SIGTERM', interrupted);
  try {
    const vpn = await startVpnServer(dir, instances);
    server = vpn.server;
    const { base, session } = vpn;
    const fleetId = await createFleet(base, session, 'bench-vpn-storm');
    const devices = await registerBalenaDevices(base, session, fleetId, count);
    const served = await fetchClientConfig(vpn, devices[0]!);
    let started = performance.now();
    const namespaces = await createNamespaces(count, 'storm');
    log(
      `  server pid ${server.pid}, API ${base}, VPN port ${vpn.vpnPort}; ${count} devices registered; ` +
        `${count} namespaces made in ${seconds(performance.now() - started)}`,
    );

    // (1) The baseline: every client started at once from cold, until each is connected and shown online.
    started = performance.now();
    const clients = await Promise.all(
      namespaces.map((namespace, i) => startBalenaClient(namespace, served, devices[i] as BalenaDevice)),
    );
    const clientOf = new Map(devices.map((device, i) => [device.uuid, clients[i]!]));
    const indexOf = new Map(devices.map((device, i) => [device.uuid, i]));
    await Promise.all(clients.map((client) => client.connected(timeoutMs)));
    const coldConnected = performance.now() - started;
    for (;;) {
      const listed = await listFleet(base, session, fleetId);
      if (shownRight(listed, clientOf) === count) break;
      if (performance.now() - started > timeoutMs)
        throw new Error(
          `after ${seconds(timeoutMs)}, ${shownRight(listed, clientOf)} of ${count} connected devices shown online with their address`,
        );
      await sleep(POLL_MS);
    }
    const coldShown = performance.now() - started;
    log(
      `  cold start: every client connected after ${seconds(coldConnected)}, every device shown online after ${seconds(coldShown)}`,
    );

    // (2) The storm: every instance killed at once.
    const before = await vpnInstances(base);
    if (before.some((instance) => !instance.ready || instance.pid === null))
      throw new Error(`an instance is not running before the storm: ${JSON.stringify(before)}`);
    const decisionsBefore = await vpnAuthDecisions(base);
    const secondsBefore = await vpnAuthSeconds(base);
    const cpuBefore = await server.cpuMicros();
    const killedPids = before.map((instance) => instance.pid as number);
    log(`  killing OpenVPN instances ${killedPids.join(', ')} (SIGKILL) with ${count} clients connected`);
    const killedAt = performance.now();
    for (const pid of killedPids) process.kill(pid, 'SIGKILL');
    const since = () => performance.now() - killedAt;

    const lostAt: (number | undefined)[] = clients.map(() => undefined);
    const backAt: (number | undefined)[] = clients.map(() => undefined);
    const problems: string[] = [];
    clients.forEach((client, i) => {
      client
        .disconnected(timeoutMs)
        .then(() => {
          lostAt[i] = since();
          return client.connected(timeoutMs);
        })
        .then(
          () => {
            backAt[i] = since();
          },
          (err: Error) => problems.push(err.message.split('\n')[0] ?? err.message),
        );
    });
    let firstOffline: number | undefined;
    let allOffline: number | undefined;
    let instancesBack: number | undefined;
    let everyoneShown: number | undefined;
    let lastRight = 0;
    while (since() < timeoutMs) {
      const [now, running] = await Promise.all([listFleet(base, session, fleetId), vpnInstances(base)]);
      const at = since();
      const online = now.filter((device) => device.status === 'online').length;
      if (firstOffline === undefined && online < count) firstOffline = at;
      if (allOffline === undefined && online === 0) allOffline = at;
      if (
        instancesBack === undefined &&
        running.every(
          (instance) => instance.ready && instance.pid !== null && !killedPids.includes(instance.pid),
        )
      )
        instancesBack = at;
      // Right only for a client that lost its connection and has a new one: a client that never noticed the loss
      // still shows its old address, which would pass unseen.
      lastRight = shownRight(
        now.filter((device) => lostAt[indexOf.get(device.uuid) ?? -1] !== undefined),
        clientOf,
      );
      if (lastRight === count) {
        everyoneShown = at;
        break;
      }
      await sleep(POLL_MS);
    }
    const cpuStorm = ((await server.cpuMicros()) - cpuBefore) / 1e6;
    const decisionsAfter = await vpnAuthDecisions(base);
    const secondsAfter = await vpnAuthSeconds(base);
    const after = await vpnInstances(base);

    // (3) Figures.
    const back = backAt.filter((t): t is number => t !== undefined);
    const lost = lostAt.filter((t): t is number => t !== undefined);
    const decided = (outcome: string) => (decisionsAfter[outcome] ?? 0) - (decisionsBefore[outcome] ?? 0);
    const allowedCount = secondsAfter.count - secondsBefore.count;
    const meanMs = allowedCount ? ((secondsAfter.sum - secondsBefore.sum) / allowedCount) * 1000 : 0;
    const within = (le: number) =>
      (secondsAfter.buckets.find(([bound]) => bound === le)?.[1] ?? 0) -
      (secondsBefore.buckets.find(([bound]) => bound === le)?.[1] ?? 0);
    const row = (cells: string[]) => log(`| ${cells.join(' | ')} |`);
    log(`\nResults (${count} clients, ${instances} instances; times from the SIGKILL of every instance)\n`);
    row(['measure', 'figure']);
    row(['---', '---:']);
    row([
      'baseline: cold start of the same clients, all at once: every client connected / every device shown online',
      `${seconds(coldConnected)} / ${seconds(coldShown)}`,
    ]);
    row([
      'API shows the loss: first device offline / every device offline',
      `${firstOffline === undefined ? 'never' : seconds(firstOffline)} / ${allOffline === undefined ? 'never' : seconds(allOffline)}`,
    ]);
    row([
      'clients that noticed the loss (log: reset / restart), the last one after',
      `${lost.length} of ${count}${lost.length ? `, ${seconds(Math.max(...lost))}` : ''}`,
    ]);
    row([
      '`/readyz`: every instance running again (new pid, taking clients)',
      instancesBack === undefined ? 'not seen' : seconds(instancesBack),
    ]);
    row([
      'clients connected again: p50 / p90 / last',
      back.length
        ? `${seconds(percentile(back, 50))} / ${seconds(percentile(back, 90))} / ${back.length === count ? seconds(Math.max(...back)) : `${count - back.length} never`}`
        : 'none',
    ]);
    row([
      '**every client connected and every device shown online with its VPN address**',
      everyoneShown === undefined
        ? `**not within ${seconds(timeoutMs)}** (${lastRight} of ${count} right at the end)`
        : `**${seconds(everyoneShown)}** (${ratio(everyoneShown, coldShown)} of the cold start)`,
    ]);
    row([
      `target ≤ ${TARGET_SECONDS} s`,
      everyoneShown !== undefined && everyoneShown <= TARGET_SECONDS * 1000 ? 'met' : '**NOT met**',
    ]);
    row([
      "fleetgate's decisions during the storm (`fleetgate_vpn_auth_total`): allowed / refused / limited",
      `${decided('allowed')} / ${decided('refused')} / ${decided('limited')}`,
    ]);
    row([
      'allowed decisions (`fleetgate_vpn_auth_seconds`): mean; within 10 ms; within 50 ms',
      `${meanMs.toFixed(1)} ms; ${within(0.01)} of ${allowedCount}; ${within(0.05)} of ${allowedCount}`,
    ]);
    const instanceCpu = after.map((i) => (i.pid === null ? 0 : cpuSeconds(i.pid)));
    row([
      'CPU from the kill to the end (s): fleetgate / its OpenVPN instances (since they started again)',
      `${cpuStorm.toFixed(2)} / ${instanceCpu.map((s) => s.toFixed(2)).join(' + ')}`,
    ]);
    row([
      'instances after: restarts / clients',
      after.map((i) => `#${i.id} ${i.restarts} / ${i.clients}`).join(', '),
    ]);
    if (problems.length) {
      log(
        `\n${problems.length} client(s) did not come back in time; the first: ${problems.slice(0, 3).join(' | ')}`,
      );
    }
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
