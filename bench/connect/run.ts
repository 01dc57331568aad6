/**
 * CONNECT proxy benchmark (issue 5). Starts a real fleetgate on 127.0.0.1 (SQLite) in a child process, a real
 * fleetgate-agent process, and "a service on the device": a plain TCP byte sink and source in a process of its
 * own (bench/lib/byte-service.ts), the only port on the device's allow-list. The same client (this process)
 * moves the same bytes to and from that port three ways, interleaved so that other load on the machine falls on
 * all of them:
 *
 *   direct:     a TCP connection to the port (the ceiling: client and service alone);
 *   relay:      CONNECT 127.0.0.1:<port> through a trivial Node CONNECT proxy (bench/connect/relay.ts), one
 *               hop, no tunnel: the cost of an HTTP CONNECT hop by itself;
 *   fleetgate:  CONNECT bench-device.devices:<port> with Proxy-Authorization (e-mail and API key) through
 *               fleetgate's proxy → tunnel → agent → the port.
 *
 * and measures:
 *
 *   (a) throughput: `--mb` MB (10^6 bytes) each way — upload (the service confirms the count) and download —
 *       MB/s from opening the connection to the end of the transfer, the median of `--rounds` rounds; and the
 *       CPU time per GB of what sits between the client and the service (fleetgate's server and agent, or the
 *       relay), from /proc/<pid>/stat;
 *   (b) set-up: time from opening the TCP connection to the proxy's `200 Connection Established` (for direct:
 *       to the TCP connection), p50 and p99 over `--connects` connections each way.
 *
 * Before both, uncounted: 20 connections and min(`--mb`, 100) MB each way on every path.
 *
 *   npm run bench:connect -- [--mb 500] [--rounds 3] [--connects 200] [--cpu-prof]
 *
 * `--cpu-prof` writes a V8 CPU profile of the server into a directory that is kept (when the server stops).
 *
 * It exits 0 with its figures, 1 when the bench itself fails (bytes lost, a refused CONNECT, a process that
 * never starts).
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type ByteService, download, startByteService, upload } from '../lib/byte-service.ts';
import { connectDirect, connectThrough } from '../lib/connect-client.ts';
import { cpuSeconds, percentile } from '../lib/figures.ts';
import { freePort, killChildren, ROOT, startAgent, track } from '../lib/processes.ts';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  api,
  type Flags,
  ratio,
  type ServerProcess,
  signInAsAdmin,
  startServerProcess,
  wholeNumber,
} from '../lib/server-process.ts';

const DEVICE_NAME = 'bench-device';
const MB = 1_000_000;

const log = (line: string) => process.stdout.write(`${line}\n`);
const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').trim();

/** The trivial CONNECT relay in a process of its own. */
async function startRelay(): Promise<{ port: number; pid: number }> {
  const relay = track(
    fork(path.join(ROOT, 'bench/connect/relay.ts'), [], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  return new Promise((resolve, reject) => {
    relay.once('message', (message: { port: number }) => resolve({ port: message.port, pid: relay.pid! }));
    relay.once('exit', (code) => reject(new Error(`the CONNECT relay ended (code ${code})`)));
  });
}

/** Ends a connection nobody used and waits until it closed (fleetgate then ends its session cleanly). */
function closeUnused(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    socket.once('close', () => resolve());
    socket.on('data', () => {});
    socket.on('error', () => {});
    socket.end();
  });
}

type Way = 'direct' | 'relay' | 'fleetgate';
const ways: Way[] = ['direct', 'relay', 'fleetgate'];
type Direction = 'upload' | 'download';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      mb: { type: 'string', default: '500' },
      rounds: { type: 'string', default: '3' },
      connects: { type: 'string', default: '200' },
      'cpu-prof': { type: 'boolean', default: false },
    },
  });
  const mb = wholeNumber('mb', values.mb, 1);
  const rounds = wholeNumber('rounds', values.rounds, 1);
  const connects = wholeNumber('connects', values.connects, 2);
  const loadBefore = loadavg();
  log(
    `fleetgate CONNECT proxy benchmark: ${mb} MB each way × ${rounds} rounds, ${connects} connects; ` +
      `Node ${process.versions.node}, ${os.cpus().length} cores, ${new Date().toISOString()}`,
  );
  log(`  /proc/loadavg before: ${loadBefore}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-connect-'));
  let server: ServerProcess | undefined;
  let service: ByteService | undefined;
  try {
    service = await startByteService();
    const relay = await startRelay();
    const flags: Flags = {
      dataDir: path.join(dir, 'data'),
      listen: '127.0.0.1',
      httpPort: await freePort(),
      proxyPort: await freePort(),
      sshPort: 0,
      logLevel: 'warn',
      adminEmail: ADMIN_EMAIL,
      adminPassword: ADMIN_PASSWORD,
    };
    const cpuProfDir = values['cpu-prof']
      ? fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-connect-prof-'))
      : undefined;
    server = await startServerProcess(flags, { cpuProfDir });
    if (cpuProfDir) log(`  CPU profile of the server (written when it stops): ${cpuProfDir}`);
    const base = `http://127.0.0.1:${flags.httpPort}`;
    const session = await signInAsAdmin(base);
    const org = (await api(base, 'GET', '/api/v1/orgs', session)).items[0];
    const fleetBody = { orgId: org.id, name: 'bench-connect', defaultDeviceType: 'generic-amd64' };
    const fleetId = (await api(base, 'POST', '/api/v1/fleets', session, fleetBody)).id as number;
    const { uuid, agent } = await startAgent(base, session, fleetId, dir, [service.port]);
    await api(base, 'PUT', `/api/v1/devices/${uuid}/allowed-ports`, session, { ports: [service.port] });
    await api(base, 'PATCH', `/api/v1/devices/${uuid}`, session, { name: DEVICE_NAME });
    const { key } = await api(base, 'POST', '/api/v1/api-keys', session, { name: 'bench-connect' });
    const authorization = `Basic ${Buffer.from(`${ADMIN_EMAIL}:${key}`).toString('base64')}`;

    const servicePort = service.port;
    const open: Record<Way, () => Promise<net.Socket>> = {
      direct: () => connectDirect(servicePort),
      relay: () => connectThrough(relay.port, `127.0.0.1:${servicePort}`),
      fleetgate: () =>
        connectThrough(flags.proxyPort as number, `${DEVICE_NAME}.devices:${servicePort}`, authorization),
    };
    // What sits between the client and the service, for CPU time.
    const between: Record<Way, Array<{ label: string; pid: number }>> = {
      direct: [],
      relay: [{ label: 'relay', pid: relay.pid }],
      fleetgate: [
        { label: 'server', pid: server.pid },
        { label: 'agent', pid: agent.pid! },
      ],
    };
    log(
      `  server pid ${server.pid}, agent pid ${agent.pid}, relay pid ${relay.pid}, service pid ${service.pid}; ` +
        `fleetgate CONNECT target ${DEVICE_NAME}.devices:${servicePort} (device ${uuid})`,
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
    const setUp = async (way: Way) => {
      const start = performance.now();
      const socket = await open[way]();
      const ms = performance.now() - start;
      await closeUnused(socket);
      return ms;
    };

    // Warm-up, not counted: JIT, socket buffers, heaps, the agent's first streams, the API key's first check.
    // With 16 MB the server still spent 1.5–4× its later CPU per GB in the first counted round.
    const bytes = mb * MB;
    const warmUpBytes = Math.min(bytes, 100 * MB);
    for (const way of ways) {
      for (let i = 0; i < 20; i++) await setUp(way);
      await transfer(way, 'upload', warmUpBytes);
      await transfer(way, 'download', warmUpBytes);
    }

    log(`\n(a) ${mb} MB each way, ${rounds} rounds, interleaved`);
    const rates: Record<Way, Record<Direction, number[]>> = {
      direct: { upload: [], download: [] },
      relay: { upload: [], download: [] },
      fleetgate: { upload: [], download: [] },
    };
    const cpuTotals: Record<Way, number[]> = { direct: [], relay: [0], fleetgate: [0, 0] };
    for (let round = 1; round <= rounds; round++) {
      for (const direction of ['upload', 'download'] as const) {
        for (const way of ways) {
          const { rate, cpu } = await transfer(way, direction, bytes);
          rates[way][direction].push(rate);
          cpu.forEach((seconds, i) => {
            cpuTotals[way][i]! += seconds;
          });
          const cpuText = between[way].length
            ? `, CPU in between ${between[way].map(({ label }, i) => `${label} ${cpu[i]!.toFixed(2)} s`).join(' + ')}`
            : '';
          log(`  round ${round}, ${direction}, ${way}: ${rate.toFixed(0)} MB/s${cpuText}`);
        }
      }
    }

    log(`(b) set-up × ${connects} each way, interleaved`);
    const setup: Record<Way, number[]> = { direct: [], relay: [], fleetgate: [] };
    for (let i = 0; i < connects; i++) for (const way of ways) setup[way].push(await setUp(way));

    const median = (values: number[]) => percentile(values, 50);
    const gigabytes = (2 * rounds * bytes) / 1e9;
    const cpuPerGb = (way: Way) => cpuTotals[way].reduce((sum, s) => sum + s, 0) / gigabytes;
    const row = (cells: string[]) => log(`| ${cells.join(' | ')} |`);
    log(
      '\nResults (ratios: fleetgate ÷ direct TCP and fleetgate ÷ the Node CONNECT relay, same run; MB = 10^6 bytes)\n',
    );
    row(['measure', 'direct TCP', 'Node CONNECT relay', 'fleetgate CONNECT', '÷ direct', '÷ relay']);
    row(['---', '---:', '---:', '---:', '---:', '---:']);
    for (const direction of ['upload', 'download'] as const) {
      const m = (way: Way) => median(rates[way][direction]);
      row([
        `${mb} MB ${direction === 'upload' ? 'to' : 'from'} the device, median of ${rounds} (MB/s)`,
        m('direct').toFixed(0),
        m('relay').toFixed(0),
        m('fleetgate').toFixed(0),
        ratio(m('fleetgate'), m('direct')),
        ratio(m('fleetgate'), m('relay')),
      ]);
      row([
        `${direction}, each round (MB/s)`,
        ...ways.map((way) => rates[way][direction].map((r) => r.toFixed(0)).join(' / ')),
        '—',
        '—',
      ]);
    }
    const fleetgateParts = between.fleetgate
      .map(({ label }, i) => `${label} ${(cpuTotals.fleetgate[i]! / gigabytes).toFixed(2)}`)
      .join(' + ');
    row([
      'CPU between client and service (s per GB)',
      '—',
      cpuPerGb('relay').toFixed(2),
      `${cpuPerGb('fleetgate').toFixed(2)} (${fleetgateParts})`,
      '—',
      ratio(cpuPerGb('fleetgate'), cpuPerGb('relay')),
    ]);
    for (const p of [50, 99]) {
      const at = (way: Way) => percentile(setup[way], p);
      row([
        `set-up, p${p} (ms; direct: TCP connect)`,
        at('direct').toFixed(2),
        at('relay').toFixed(2),
        at('fleetgate').toFixed(2),
        ratio(at('fleetgate'), at('direct')),
        ratio(at('fleetgate'), at('relay')),
      ]);
    }
    log(`\n/proc/loadavg before: ${loadBefore}; after: ${loadavg()}`);
    return 0;
  } catch (err) {
    log(`\nBENCH FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  } finally {
    killChildren();
    service?.stop();
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

process.exit(await main());
