/**
 * Idle tunnels on several instances, and a crash under them (issue 19). fleetgate processes on one PostgreSQL
 * schema, sharing a data directory, with the internal link on, behind Debian's haproxy (TCP mode, `balance
 * roundrobin`, `check inter 500`, started here on 127.0.0.1; one haproxy process per generator, see
 * `startHaproxies`). Load-generator processes (bench/lib/tunnel-generator.ts: real WebSockets speaking the
 * protocol, seeded device keys, one 127.0.0.x source address each, the agent's own backoff) know only haproxy's
 * address. Measures:
 *
 *   (1) baseline, same run: one instance alone behind haproxy holding `--tunnels` idle tunnels; its memory after a
 *       full GC before and after, per tunnel. Then it stops. (A set-up instance migrated the schema and created
 *       the owner before it: every measured instance is a fresh process on a ready schema.)
 *   (2) three fresh instances holding 3 × `--tunnels`: each one's memory per tunnel the same way, with the tunnels
 *       it holds read from its own `/metrics` (`fleetgate_tunnels_connected`). Target: <= 10 KiB RSS per tunnel,
 *       and unchanged against (1).
 *   (3) crash: the first instance is killed (SIGKILL); its tunnels reconnect through haproxy to the other two.
 *       Measured: time from the kill until the generators have every tunnel up again (target <= 30 s) and until
 *       the survivors' own gauges count them all, how the returning tunnels spread over the survivors, refused
 *       answers (target: none) and attempts that got no answer (haproxy still sending to the dead instance); then
 *       the survivors' memory per tunnel with 1.5 × `--tunnels` each.
 *
 *   npm run bench:cluster-tunnels -- [--database-url URL] [--tunnels 10000] [--generators 4]
 *
 * Default database: DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test (a schema of its own, dropped at
 * the end). Exits 0 with its figures, 1 when the bench itself fails (a process that dies, tunnels that never come
 * up).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { dropPostgresSchema } from '@fleetgate/server';
import { clusterDatabaseUrl, clusterSetting, instanceFlags } from '../lib/cluster.ts';
import { type Generators, type SeededDevice, seedDevices, startGenerators } from '../lib/idle-tunnels.ts';
import { accepts, freePort, killChildren, sleep, track, until } from '../lib/processes.ts';
import {
  api,
  type Flags,
  type MemoryFigures,
  ratio,
  type ServerProcess,
  signInAsAdmin,
  startServerProcess,
  wholeNumber,
} from '../lib/server-process.ts';

const KiB = 1024;
const MiB = 1024 * 1024;
/** How long `count` tunnels may take to come up, or to come back after the crash, before the bench gives up. */
const tunnelsTimeoutMs = (count: number) => 60_000 + 20 * count;

const log = (line: string) => process.stdout.write(`${line}\n`);
const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').trim();
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const kib = (bytes: number) => `${(bytes / KiB).toFixed(1)} KiB`;
const refusals = (refused: Record<string, number>) =>
  Object.keys(refused).length === 0 ? 'none' : JSON.stringify(refused);

interface Instance {
  name: string;
  flags: Flags;
  server: ServerProcess;
}

/** The tunnels an instance holds, from its own `/metrics` (not through haproxy). */
async function tunnelsHeld(instance: Instance): Promise<number> {
  const text = await (await fetch(`${instance.server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('fleetgate_tunnels_connected '));
  if (!line) throw new Error(`${instance.name}'s /metrics has no fleetgate_tunnels_connected`);
  return Number(line.split(' ')[1]);
}

/** This process's limit on open files (`ulimit -n`), which haproxy inherits and, without privilege, cannot raise. */
function openFilesLimit(): number {
  const limits = fs.readFileSync('/proc/self/limits', 'utf8');
  const soft = /^Max open files\s+(\d+|unlimited)/m.exec(limits)?.[1];
  return soft === undefined || soft === 'unlimited' ? Number.POSITIVE_INFINITY : Number(soft);
}

/**
 * haproxy in TCP mode on 127.0.0.1 in front of `instances`' HTTP ports, as the cluster test runs it
 * (packages/cli/test/cluster-processes.test.ts): round robin, health checks every 500 ms, room for `tunnels`
 * connections (`maxconn`; haproxy's default would queue them).
 */
async function startHaproxy(config: string, instances: Instance[], tunnels: number) {
  const port = await freePort();
  const maxconn = tunnels + 100;
  fs.writeFileSync(
    config,
    [
      'global',
      `  maxconn ${maxconn}`,
      'defaults',
      '  mode tcp',
      `  maxconn ${maxconn}`,
      '  timeout connect 2s',
      '  timeout client 1h',
      '  timeout server 1h',
      'frontend fleetgate',
      `  bind 127.0.0.1:${port}`,
      '  default_backend instances',
      'backend instances',
      '  balance roundrobin',
      ...instances.map(
        (instance) => `  server ${instance.name} 127.0.0.1:${instance.flags.httpPort} check inter 500`,
      ),
      '',
    ].join('\n'),
  );
  const haproxy = track(spawn('haproxy', ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'inherit'] }));
  const failed = new Promise<never>((_, reject) => {
    haproxy.once('error', reject);
    haproxy.once('exit', (code) => reject(new Error(`haproxy ended (code ${code})`)));
  });
  failed.catch(() => {});
  await Promise.race([until('haproxy to listen', 10_000, () => accepts(port)), failed]);
  return { base: `http://127.0.0.1:${port}`, process: haproxy };
}

/**
 * One haproxy per generator, each in front of every instance. haproxy holds two sockets per tunnel and cannot
 * raise its open-files limit past the hard one (20,000 here, even as root in this container): one process would
 * stop at about 10,000 tunnels, fewer than 3 instances × 10,000. Each round-robins its own generator's tunnels, so
 * together they spread them evenly, as several load balancers in front of one cluster do.
 */
async function startHaproxies(dir: string, instances: Instance[], tunnels: number, processes: number) {
  const perGenerator = Math.ceil(tunnels / processes);
  const haproxies = [];
  for (let g = 0; g < processes; g++) {
    const config = path.join(dir, `haproxy-${instances.length}-${g}.cfg`);
    haproxies.push(await startHaproxy(config, instances, perGenerator));
  }
  return haproxies;
}

/** Throws, before anything starts, when a generator's haproxy would run out of open files (`startHaproxies`). */
function checkOpenFiles(tunnels: number, processes: number): void {
  const perGenerator = Math.ceil(tunnels / processes);
  const room = Math.floor((openFilesLimit() - 200) / 2);
  if (perGenerator > room)
    throw new Error(
      `${perGenerator} tunnels per generator and haproxy: more than the ${room} that ulimit -n allows; ` +
        'raise --generators',
    );
}

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  return exited;
}

/**
 * The kernel's count of connections dropped because a listener's accept queue was full (TcpExt ListenOverflows in
 * /proc/net/netstat, for the whole network namespace: every listener here is the bench's, haproxy's or fleetgate's).
 */
function listenOverflows(): number {
  const lines = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n');
  const header = lines.findIndex((line) => line.startsWith('TcpExt:') && line.includes('ListenOverflows'));
  if (header < 0) return 0;
  const names = lines[header]!.split(/\s+/);
  const values = lines[header + 1]!.split(/\s+/);
  return Number(values[names.indexOf('ListenOverflows')] ?? 0);
}

/** Waits until the generators report `count` tunnels up; answers how long that took. */
async function rampUp(generators: Generators, count: number): Promise<number> {
  const start = performance.now();
  await until(`${count} tunnels up`, tunnelsTimeoutMs(count), async () =>
    generators.connected() >= count ? true : undefined,
  );
  return performance.now() - start;
}

interface Held {
  instance: Instance;
  tunnels: number;
  before: MemoryFigures;
  after: MemoryFigures;
}

/** Memory per tunnel of one instance: (after − before) ÷ the tunnels it holds. */
const perTunnel = (held: Held, figure: keyof MemoryFigures) =>
  (held.after[figure] - held.before[figure]) / held.tunnels;

/**
 * Holds `devices`' tunnels through haproxy in front of `instances`; answers each instance's memory before and
 * after (full GC, 5 s after the last tunnel came up) and the tunnels it holds, and the running generators.
 */
async function holdTunnels(dir: string, instances: Instance[], devices: SeededDevice[], processes: number) {
  const before = await Promise.all(instances.map((instance) => instance.server.memory()));
  const haproxies = await startHaproxies(dir, instances, devices.length, processes);
  const generators = startGenerators(
    haproxies.map((h) => h.base),
    devices,
    processes,
  );
  const rampMs = await rampUp(generators, devices.length);
  await sleep(5_000);
  const held: Held[] = [];
  for (const [i, instance] of instances.entries()) {
    held.push({
      instance,
      tunnels: await tunnelsHeld(instance),
      before: before[i]!,
      after: await instance.server.memory(),
    });
  }
  const total = held.reduce((sum, h) => sum + h.tunnels, 0);
  if (total !== devices.length)
    throw new Error(`the instances hold ${total} tunnels, the generators ${devices.length}`);
  log(
    `  ${devices.length.toLocaleString('en')} tunnels up in ${seconds(rampMs)}: ` +
      held.map((h) => `${h.instance.name} ${h.tunnels.toLocaleString('en')}`).join(', ') +
      `; refused answers: ${refusals(generators.refused)}, ${generators.failed} attempts without an answer`,
  );
  return { held, generators, haproxies };
}

/**
 * Kills `victim` (SIGKILL) under its tunnels and waits until they are all back on the others: answers the time
 * from the kill until the generators have every tunnel up, until the survivors' gauges count them all, and how
 * many tunnels each survivor took.
 */
async function crash(victim: Instance, survivors: Instance[], generators: Generators, total: number) {
  const lost = await tunnelsHeld(victim);
  const heldBefore = await Promise.all(survivors.map(tunnelsHeld));
  generators.resetCounts();
  const overflowsBefore = listenOverflows();
  const killedAt = Date.now();
  await victim.server.kill();
  // The generators still count the victim's tunnels as up until they see them close: wait for as many comebacks.
  await until(`${lost} tunnels back after the kill`, tunnelsTimeoutMs(lost), async () =>
    generators.online.length >= lost && generators.connected() >= total ? true : undefined,
  );
  const allBackMs = Math.max(...generators.online) - killedAt;
  const overflows = listenOverflows() - overflowsBefore;
  const counted = await until('the survivors to count every tunnel', tunnelsTimeoutMs(lost), async () => {
    const held = await Promise.all(survivors.map(tunnelsHeld));
    return held.reduce((a, b) => a + b, 0) >= total ? held : undefined;
  });
  const countedMs = Date.now() - killedAt;
  return {
    lost,
    allBackMs,
    countedMs,
    cameBack: generators.online.length,
    held: counted,
    took: counted.map((n, i) => n - heldBefore[i]!),
    refused: { ...generators.refused },
    failed: generators.failed,
    overflows,
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      'database-url': { type: 'string' },
      tunnels: { type: 'string', default: '10000' },
      generators: { type: 'string', default: '4' },
    },
  });
  const databaseUrl = clusterDatabaseUrl(values['database-url']);
  const perInstance = wholeNumber('tunnels', values.tunnels, 10);
  const processes = wholeNumber('generators', values.generators, 1);
  const total = 3 * perInstance;
  checkOpenFiles(total, processes);
  log(
    `fleetgate several-instances tunnel benchmark: 3 instances × ${perInstance.toLocaleString('en')} idle tunnels ` +
      `(baseline: 1 × ${perInstance.toLocaleString('en')}), ${processes} generators; Node ${process.versions.node}, ` +
      `${os.cpus().length} cores, ${new Date().toISOString()}`,
  );
  log(`  /proc/loadavg before: ${loadavg()}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-cluster-tunnels-'));
  const setting = clusterSetting(databaseUrl, dir);
  const running: Instance[] = [];
  let generators: Generators | undefined;
  const startInstance = async (name: string): Promise<Instance> => {
    const flags = await instanceFlags(setting, { proxy: false });
    const instance = { name, flags, server: await startServerProcess(flags) };
    running.push(instance);
    return instance;
  };
  const stopAll = async () => {
    generators?.stop();
    generators = undefined;
    for (const instance of running.splice(0).reverse()) await instance.server.stop().catch(() => {});
  };
  try {
    log('\n(1) one instance alone (baseline)');
    // The first instance on the schema migrates it and creates the owner; the measured ones start after it.
    const setup = await startInstance('setup');
    const session = await signInAsAdmin(setup.server.url);
    const org = (await api(setup.server.url, 'GET', '/api/v1/orgs', session)).items[0];
    const fleetBody = { orgId: org.id, name: 'bench-cluster-tunnels', defaultDeviceType: 'generic-amd64' };
    const fleet = {
      id: (await api(setup.server.url, 'POST', '/api/v1/fleets', session, fleetBody)).id as number,
      orgId: org.id as number,
    };
    const seedStart = performance.now();
    const devices = await seedDevices({ databaseUrl, schema: setting.schema, sqliteFile: '' }, fleet, total);
    log(
      `  seeded ${total.toLocaleString('en')} devices with keys in ${seconds(performance.now() - seedStart)}`,
    );
    await stopAll();
    const alone = await startInstance('alone');
    await sleep(3_000);
    const baseline = await holdTunnels(dir, [alone], devices.slice(0, perInstance), processes);
    baseline.generators.stop();
    await Promise.all(baseline.haproxies.map((h) => stopProcess(h.process)));
    await stopAll();

    log('\n(2) three instances');
    // One after the other, fresh processes (the baseline's heap does not blur their figures).
    const instances = [await startInstance('A'), await startInstance('B'), await startInstance('C')];
    await sleep(3_000);
    const cluster = await holdTunnels(dir, instances, devices, processes);
    generators = cluster.generators;

    log('\n(3) A killed (SIGKILL) under its tunnels');
    const [victim, ...survivors] = instances as [Instance, Instance, Instance];
    const crashed = await crash(victim, survivors, generators, total);
    running.splice(running.indexOf(victim), 1);
    await sleep(5_000);
    const afterCrash: Held[] = [];
    for (const [i, survivor] of survivors.entries()) {
      afterCrash.push({
        instance: survivor,
        tunnels: crashed.held[i]!,
        before: cluster.held[i + 1]!.before,
        after: await survivor.server.memory(),
      });
    }

    const row = (cells: string[]) => log(`| ${cells.join(' | ')} |`);
    const ideal = baseline.held[0]!;
    log(
      `\nResults (per tunnel: memory after a full GC, after − before, ÷ tunnels held; KiB = 1,024 bytes)\n`,
    );
    row(['instance', 'tunnels', 'RSS per tunnel', 'heap per tunnel', '÷ alone (RSS)', 'target', 'met?']);
    row(['---', '---:', '---:', '---:', '---:', '---:', '---']);
    for (const held of [ideal, ...cluster.held, ...afterCrash]) {
      row([
        held === ideal
          ? 'alone (baseline)'
          : `${held.instance.name}${afterCrash.includes(held) ? ', after the crash' : ''}`,
        held.tunnels.toLocaleString('en'),
        kib(perTunnel(held, 'rssBytes')),
        kib(perTunnel(held, 'heapUsedBytes')),
        ratio(perTunnel(held, 'rssBytes'), perTunnel(ideal, 'rssBytes')),
        '<= 10 KiB RSS',
        perTunnel(held, 'rssBytes') <= 10 * KiB ? 'yes' : 'NO',
      ]);
    }
    log(
      `\n  crash of A with ${crashed.lost.toLocaleString('en')} tunnels: all back ${seconds(crashed.allBackMs)} after ` +
        `the kill (target <= 30 s: ${crashed.allBackMs <= 30_000 ? 'met' : 'NOT met'}), counted by the ` +
        `survivors' gauges ${seconds(crashed.countedMs)} after; ` +
        survivors.map((s, i) => `${s.name} took ${crashed.took[i]!.toLocaleString('en')}`).join(', ') +
        `; ${crashed.cameBack.toLocaleString('en')} tunnels came up, refused answers: ` +
        `${refusals(crashed.refused)}, ` +
        `${crashed.failed.toLocaleString('en')} attempts without an answer; ` +
        `${crashed.overflows.toLocaleString('en')} connections dropped on full accept queues (ListenOverflows)`,
    );
    const rss = (held: Held) => `${(held.after.rssBytes / MiB).toFixed(0)} MiB`;
    log(
      `  RSS with the tunnels: alone ${rss(ideal)}; ` +
        cluster.held.map((h) => `${h.instance.name} ${rss(h)}`).join(', '),
    );
    log(`\n  /proc/loadavg after: ${loadavg()}`);
    await Promise.all(cluster.haproxies.map((h) => stopProcess(h.process)));
    return 0;
  } catch (err) {
    log(`\nBENCH FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  } finally {
    await stopAll();
    killChildren();
    await dropPostgresSchema(databaseUrl, setting.schema).catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

process.exit(
  await main().catch((err: unknown) => {
    log(`BENCH FAILED: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }),
);
