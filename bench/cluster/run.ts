import fs from 'node:fs';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { dropPostgresSchema } from '@fleetgate/server';
import autocannon, { type Result } from 'autocannon';
import { type ByteService, download, startByteService, upload } from '../lib/byte-service.ts';
import { clusterDatabaseUrl, clusterSetting, instanceFlags } from '../lib/cluster.ts';
import { connectThrough } from '../lib/connect-client.ts';
import { percentile } from '../lib/figures.ts';
import { killChildren, startAgent } from '../lib/processes.ts';
import {
  ADMIN_EMAIL,
  api,
  ratio,
  type ServerProcess,
  signInAsAdmin,
  startServerProcess,
  wholeNumber,
} from '../lib/server-process.ts';

const MB = 1_000_000;
const log = (line: string) => process.stdout.write(`${line}\n`);
const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').trim();

function closeUnused(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    socket.once('close', () => resolve());
    socket.on('data', () => {});
    socket.on('error', () => {});
    socket.end();
  });
}

function load(
  url: string,
  connections: number,
  duration: number,
  headers: Record<string, string>,
): Promise<Result> {
  return new Promise((resolve, reject) =>
    autocannon({ url, connections, duration, headers }, (error, result) =>
      error ? reject(error) : resolve(result),
    ),
  );
}

type Way = 'one' | 'two';

/**
 * The whole machine's CPU from /proc/stat (every process: the servers, PostgreSQL, autocannon). Without `since`:
 * a reading; with it: how many cores were busy on average since that reading.
 */
function machineBusy(since?: { busy: number; total: number; cores: number }) {
  const [, ...fields] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const ticks = fields.map(Number);
  const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
  const busy = total - ticks[3]! - ticks[4]!;
  if (!since) return { busy, total, cores: 0 };
  const share = (busy - since.busy) / Math.max(1, total - since.total);
  return { busy, total, cores: share * os.cpus().length };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      'database-url': { type: 'string' },
      mb: { type: 'string', default: '200' },
      rounds: { type: 'string', default: '3' },
      connects: { type: 'string', default: '100' },
      connections: { type: 'string', default: '50' },
      duration: { type: 'string', default: '5' },
    },
  });
  const databaseUrl = clusterDatabaseUrl(values['database-url']);
  const mb = wholeNumber('mb', values.mb, 1);
  const rounds = wholeNumber('rounds', values.rounds, 1);
  const connects = wholeNumber('connects', values.connects, 2);
  const connections = wholeNumber('connections', values.connections, 2);
  const duration = wholeNumber('duration', values.duration, 1);
  log(
    `fleetgate several-instances benchmark: ${mb} MB each way × ${rounds} rounds, ${connects} connects, ` +
      `${connections} API connections × ${duration} s; Node ${process.versions.node}, ${os.cpus().length} cores, ` +
      new Date().toISOString(),
  );
  log(`  /proc/loadavg before: ${loadavg()}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-cluster-'));
  const setting = clusterSetting(databaseUrl, dir);
  const servers: ServerProcess[] = [];
  let service: ByteService | undefined;
  try {
    service = await startByteService();
    const flagsA = await instanceFlags(setting, { proxy: true });
    const flagsB = await instanceFlags(setting, { proxy: true });
    // One after the other: the first creates the owner.
    servers.push(await startServerProcess(flagsA));
    servers.push(await startServerProcess(flagsB));
    const [a, b] = servers as [ServerProcess, ServerProcess];
    const session = await signInAsAdmin(a.url);
    const org = (await api(a.url, 'GET', '/api/v1/orgs', session)).items[0];
    const fleetId = (
      await api(a.url, 'POST', '/api/v1/fleets', session, {
        orgId: org.id,
        name: 'bench-cluster',
        defaultDeviceType: 'generic-amd64',
      })
    ).id as number;
    // The agent knows B only.
    const { uuid, agent } = await startAgent(b.url, session, fleetId, dir, [service.port]);
    await api(a.url, 'PUT', `/api/v1/devices/${uuid}/allowed-ports`, session, { ports: [service.port] });
    const { key } = await api(a.url, 'POST', '/api/v1/api-keys', session, { name: 'bench-cluster' });
    const authorization = `Basic ${Buffer.from(`${ADMIN_EMAIL}:${key}`).toString('base64')}`;
    const target = `${uuid}.devices:${service.port}`;
    const open: Record<Way, () => Promise<net.Socket>> = {
      one: () => connectThrough(flagsB.proxyPort as number, target, authorization),
      two: () => connectThrough(flagsA.proxyPort as number, target, authorization),
    };
    log(
      `  A pid ${a.pid} (relays), B pid ${b.pid} (holds the tunnel), agent pid ${agent.pid}, device ${uuid}`,
    );

    const transfer = async (way: Way, direction: 'upload' | 'download', bytes: number) => {
      const start = performance.now();
      const socket = await open[way]();
      await (direction === 'upload' ? upload(socket, bytes) : download(socket, bytes));
      return bytes / MB / ((performance.now() - start) / 1000);
    };
    const setUp = async (way: Way) => {
      const start = performance.now();
      const socket = await open[way]();
      const ms = performance.now() - start;
      await closeUnused(socket);
      return ms;
    };
    const bytes = mb * MB;
    for (const way of ['one', 'two'] as const) {
      for (let i = 0; i < 10; i++) await setUp(way);
      await transfer(way, 'upload', Math.min(bytes, 50 * MB));
      await transfer(way, 'download', Math.min(bytes, 50 * MB));
    }
    log(`\n(a) ${mb} MB each way, ${rounds} rounds, interleaved`);
    const rates: Record<Way, Record<'upload' | 'download', number[]>> = {
      one: { upload: [], download: [] },
      two: { upload: [], download: [] },
    };
    for (let round = 1; round <= rounds; round++) {
      for (const direction of ['upload', 'download'] as const) {
        for (const way of ['one', 'two'] as const) {
          const rate = await transfer(way, direction, bytes);
          rates[way][direction].push(rate);
          log(
            `  round ${round}, ${direction}, through ${way === 'one' ? 'B (holder)' : 'A → B'}: ${rate.toFixed(0)} MB/s`,
          );
        }
      }
    }
    const setup: Record<Way, number[]> = { one: [], two: [] };
    for (let i = 0; i < connects; i++)
      for (const way of ['one', 'two'] as const) setup[way].push(await setUp(way));

    log(`\n(b) GET /api/v1/devices/<uuid>, ${connections} connections × ${duration} s`);
    const headers = { authorization: `Bearer ${key}` };
    const path1 = `/api/v1/devices/${uuid}`;
    // Warm-up, not counted.
    await load(a.url + path1, connections, 1, headers);
    await load(b.url + path1, connections, 1, headers);
    let busy = machineBusy();
    const alone = await load(a.url + path1, connections, duration, headers);
    const busyAlone = machineBusy(busy);
    busy = machineBusy();
    const [withA, withB] = await Promise.all([
      load(a.url + path1, Math.ceil(connections / 2), duration, headers),
      load(b.url + path1, Math.floor(connections / 2), duration, headers),
    ]);
    const busyTwo = machineBusy(busy);
    const rps = (r: Result) => r.requests.total / duration;
    const failures = (r: Result) => r.errors + r.timeouts + r.non2xx;
    if (failures(alone) + failures(withA) + failures(withB) > 0) {
      throw new Error(
        `API requests failed: ${failures(alone)} alone, ${failures(withA)} + ${failures(withB)} with two`,
      );
    }
    const cores = (figure: { cores: number }) =>
      `${figure.cores.toFixed(2)} of ${os.cpus().length} cores busy`;
    log(
      `  one instance: ${rps(alone).toFixed(0)} req/s, p99 ${alone.latency.p99} ms; machine ${cores(busyAlone)}`,
    );
    log(
      `  two instances: ${rps(withA).toFixed(0)} + ${rps(withB).toFixed(0)} req/s, p99 ${withA.latency.p99} / ${withB.latency.p99} ms; machine ${cores(busyTwo)}`,
    );

    const median = (values: number[]) => percentile(values, 50);
    const row = (cells: string[]) => log(`| ${cells.join(' | ')} |`);
    log('\nResults (ratios: two instances ÷ one, same run; MB = 10^6 bytes)\n');
    row(['measure', 'one instance', 'two instances', '÷ one', 'target']);
    row(['---', '---:', '---:', '---:', '---:']);
    for (const direction of ['upload', 'download'] as const) {
      const m = (way: Way) => median(rates[way][direction]);
      row([
        `${mb} MB ${direction === 'upload' ? 'to' : 'from'} the device, median of ${rounds} (MB/s)`,
        m('one').toFixed(0),
        m('two').toFixed(0),
        ratio(m('two'), m('one')),
        '>= 0.8×',
      ]);
    }
    for (const p of [50, 99]) {
      row([
        `CONNECT set-up p${p} (ms)`,
        percentile(setup.one, p).toFixed(1),
        percentile(setup.two, p).toFixed(1),
        ratio(percentile(setup.two, p), percentile(setup.one, p)),
        '—',
      ]);
    }
    row([
      `device GET, ${connections} connections (req/s)`,
      rps(alone).toFixed(0),
      (rps(withA) + rps(withB)).toFixed(0),
      ratio(rps(withA) + rps(withB), rps(alone)),
      '>= 1.6×',
    ]);
    log(`\n  /proc/loadavg after: ${loadavg()}`);
    return 0;
  } finally {
    for (const server of servers.reverse()) await server.stop().catch(() => {});
    await service?.stop?.();
    killChildren();
    await dropPostgresSchema(databaseUrl, setting.schema).catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    killChildren();
    process.exit(1);
  },
);
