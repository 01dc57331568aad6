/**
 * Tunnel benchmark (issue 4). Starts a real fleetgate on 127.0.0.1 (SQLite) in a child process and measures:
 *
 *   (1) throughput laptop → server → agent → device port: a client in this process writes 1 GiB into
 *       `fleetgate tunnel`'s local port (a real CLI process), through the server to a real fleetgate-agent
 *       process, which writes it to a TCP service on "the device" (this process); once on one stream, once
 *       over 16 parallel streams; then the other way (device → laptop, as a download: the service sends, the
 *       client reads). Baseline in the same run: the same client and service through a plain Node TCP relay
 *       process (bench/tunnel/relay.ts). Target: ≥ 0.75× the relay's throughput.
 *   (4) the agent's footprint: fleetgate-agent's RSS while connected and idle. Target: ≤ 60 MB.
 *   (2) idle tunnels: N devices (default 15,000) seeded with device keys, their tunnels held by load
 *       generator processes (bench/lib/tunnel-generator.ts, one 127.0.0.x source address each); the server's
 *       memory after a full GC before and after. Target: ≤ 10 KiB per tunnel.
 *   (3) reconnect storm: with M tunnels up (default 10,000), the server restarts (graceful stop, new process
 *       on the same port and database); the generators reconnect with the agent's own backoff. Measured: time
 *       from the stop until every tunnel is up again (target ≤ 30 s), the peak of tunnels coming up per second,
 *       and the refused answers (target: none).
 *
 *   npm run bench:tunnel -- [--mib 1024] [--parallel 16] [--idle 15000] [--storm 10000] [--generators 4]
 *                           [--parts throughput,tunnels] [--cpu-prof]
 *
 * Beside each throughput figure it prints the CPU time each process spent per MiB moved (from /proc/<pid>/stat),
 * which moves much less than MiB/s when other work shares the machine.
 *
 * `--cpu-prof` writes V8 CPU profiles of the server, the agent and the CLI (throughput part) into a directory it
 * prints.
 *
 * This process is the client and the device service of every path, so `npm run bench:tunnel` starts it with a
 * larger initial heap (`--initial-heap-size=96`, as fleetgate's bins): without it, its own full garbage
 * collections depended on the path measured (3 while one relay was measured, 28 each while three relays or
 * fleetgate were, 2026-11-28), which slowed the multi-hop paths for reasons of the bench's own. The relays run
 * without it.
 *
 * It exits 0 whether targets are met or not, 1 when the bench itself fails (bytes lost, a process that
 * dies, a tunnel that never comes up).
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { CLI_BIN, nodeFlagsOf } from '../lib/bins.ts';
import { cpuSeconds } from '../lib/figures.ts';
import { seedDevices, startGenerators } from '../lib/idle-tunnels.ts';
import { accepts, freePort, killChildren, ROOT, sleep, startAgent, track, until } from '../lib/processes.ts';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  api,
  type Flags,
  type MemoryFigures,
  ratio,
  type ServerProcess,
  signInAsAdmin,
  startServerProcess,
  wholeNumber,
} from '../lib/server-process.ts';

const MiB = 1024 * 1024;

const log = (line: string) => process.stdout.write(`${line}\n`);

// ─── (1) Throughput ───────────────────────────────────────────────────────────────────────────────────

/** What a connection to the device service asks first: 'U' (upload) or 'D' (download), then a u64 length. */
const REQUEST_SIZE = 9;

function requestOf(kind: 'U' | 'D', bytes: number): Buffer {
  const request = Buffer.alloc(REQUEST_SIZE);
  request.write(kind, 0, 'latin1');
  request.writeBigUInt64BE(BigInt(bytes), 1);
  return request;
}

/**
 * "The device's port": a TCP service that, after a 9-byte request, either counts what it receives until the
 * client's FIN and then ends its side (upload, 'U'), or sends the requested number of bytes and ends (download,
 * 'D'). One service for both directions, so every path (relay, 3 relays, fleetgate) leads to the same port.
 */
function startDeviceService(): Promise<{ port: number; close(): void; received: () => number }> {
  let received = 0;
  const chunk = randomBytes(MiB);
  const server = net.createServer((socket) => {
    let head = Buffer.alloc(0);
    const onData = (data: Buffer) => {
      head = Buffer.concat([head, data]);
      if (head.length < REQUEST_SIZE) return;
      socket.off('data', onData);
      const kind = head.toString('latin1', 0, 1);
      const rest = head.subarray(REQUEST_SIZE);
      if (kind === 'U') {
        received += rest.length;
        socket.on('data', (more: Buffer) => {
          received += more.length;
        });
        socket.on('end', () => socket.end());
        return;
      }
      let left = Number(head.readBigUInt64BE(1));
      socket.resume();
      const write = () => {
        while (left > 0) {
          const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
          left -= piece.length;
          if (!socket.write(piece)) return void socket.once('drain', write);
        }
        socket.end();
      };
      write();
    };
    socket.on('data', onData);
    socket.on('error', () => {});
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close: () => server.close(),
        received: () => received,
      }),
    );
  });
}

type Direction = 'upload' | 'download';

/**
 * Moves `bytes` over each of `streams` connections to 127.0.0.1:`port` at once, to the device service
 * (upload: written, then half-closed; done when the service ended its side after reading everything) or from it
 * (download: read until its end). Answers MiB/s overall; throws when a byte is missing.
 */
async function transfer(
  direction: Direction,
  port: number,
  streams: number,
  bytes: number,
  service: { received: () => number },
) {
  const chunk = randomBytes(MiB);
  const before = service.received();
  const start = performance.now();
  const got = await Promise.all(
    Array.from(
      { length: streams },
      () =>
        new Promise<number>((resolve, reject) => {
          const socket = net.connect({ host: '127.0.0.1', port });
          let read = 0;
          let left = direction === 'upload' ? bytes : 0;
          const write = () => {
            while (left > 0) {
              const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
              left -= piece.length;
              if (!socket.write(piece)) return void socket.once('drain', write);
            }
            if (direction === 'upload') socket.end();
          };
          socket.once('connect', () => {
            socket.write(requestOf(direction === 'upload' ? 'U' : 'D', bytes));
            write();
          });
          socket.on('data', (data: Buffer) => {
            read += data.length;
          });
          socket.once('end', () => socket.end());
          socket.once('close', () => resolve(read));
          socket.once('error', reject);
        }),
    ),
  );
  const seconds = (performance.now() - start) / 1000;
  const moved = direction === 'upload' ? service.received() - before : got.reduce((a, b) => a + b, 0);
  if (moved !== streams * bytes)
    throw new Error(`${direction}: ${moved} bytes arrived, not ${streams * bytes}`);
  return (streams * bytes) / MiB / seconds;
}

interface Throughput {
  label: string;
  direction: Direction;
  streams: number;
  /** MiB/s through one plain TCP relay process: the baseline. */
  relay: number;
  /** MiB/s through three relay processes in a row: as many hops as laptop → CLI → server → agent. */
  chain: number;
  fleetgate: number;
  /** CPU milliseconds per MiB moved: the relay process; the three chained relays together. */
  relayCpuPerMiB: number;
  chainCpuPerMiB: number;
  /** CPU milliseconds per MiB moved in fleetgate's CLI, server and agent processes. */
  fleetgateCpuPerMiB: { cli: number; server: number; agent: number };
  /** CPU milliseconds per MiB this process (client and device service) spent on each path: relay, 3 relays, fleetgate. */
  ownCpuPerMiB: [number, number, number];
}

/** A chain of `hops` relay processes in front of `targetPort`; answers the first one's port and every pid. */
async function startRelayChain(targetPort: number, hops: number): Promise<{ port: number; pids: number[] }> {
  let port = targetPort;
  const pids: number[] = [];
  for (let i = 0; i < hops; i++) {
    const relay = await startRelay(port);
    port = relay.port;
    pids.push(relay.pid);
  }
  return { port, pids };
}

/** CPU time process `pid` used so far, in milliseconds (bench/lib/figures.ts). */
const cpuMsOf = (pid: number) => cpuSeconds(pid) * 1000;

/**
 * Runs `transfer` and answers its result with the CPU milliseconds each of `pids` spent meanwhile, and this
 * process (the client and the device service) as `ownMs`.
 */
async function withCpu<T>(
  pids: number[],
  transfer: () => Promise<T>,
): Promise<{ value: T; cpuMs: number[]; ownMs: number }> {
  const all = [process.pid, ...pids];
  const before = all.map(cpuMsOf);
  const value = await transfer();
  const [ownMs, ...cpuMs] = all.map((pid, i) => cpuMsOf(pid) - before[i]!);
  return { value, cpuMs, ownMs: ownMs! };
}

/**
 * The relays run as plain Node, without the heap flags this process may have (see `npm run bench:tunnel` in
 * package.json): the baseline is a plain TCP relay in Node.
 */
const RELAY_EXEC_ARGV = process.execArgv.filter((flag) => !/^--(initial|max|min)-[a-z-]*size\b/.test(flag));

async function startRelay(targetPort: number): Promise<{ port: number; pid: number }> {
  const relay = track(
    fork(path.join(ROOT, 'bench/tunnel/relay.ts'), [String(targetPort)], { execArgv: RELAY_EXEC_ARGV }),
  );
  return new Promise((resolve, reject) => {
    relay.once('message', (message: { port: number }) => resolve({ port: message.port, pid: relay.pid! }));
    relay.once('exit', (code) => reject(new Error(`the relay ended (code ${code})`)));
  });
}

/** Runs `fleetgate tunnel` as a user would; resolves once its local port accepts connections. */
async function startCliTunnel(base: string, token: string, uuid: string, remotePort: number) {
  const localPort = await freePort();
  const cli = track(
    spawn(
      process.execPath,
      [
        ...nodeFlagsOf(CLI_BIN),
        CLI_BIN,
        'tunnel',
        uuid,
        `${localPort}:${remotePort}`,
        '--server',
        base,
        '--token',
        token,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    ),
  );
  cli.stdout.resume();
  await until('fleetgate tunnel to listen', 30_000, () => accepts(localPort));
  return { localPort, cli };
}

function rssOf(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
  return kib * 1024;
}

/** Asks a child process to stop (SIGTERM) and waits for it, so that `--cpu-prof` writes its profile. */
async function stopGracefully(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

async function throughput(
  server: ServerProcess,
  base: string,
  session: string,
  fleetId: number,
  dir: string,
  mib: number,
  parallel: number,
  cpuProfDir: string | undefined,
) {
  const service = await startDeviceService();
  try {
    const relay = await startRelay(service.port);
    const chain = await startRelayChain(service.port, 3);
    // With --cpu-prof, the agent and the CLI (not the relays) write V8 CPU profiles when they stop: through a
    // preloaded module, since Node 20 refuses --cpu-prof in NODE_OPTIONS.
    const { NODE_OPTIONS } = process.env;
    if (cpuProfDir) {
      const preload = pathToFileURL(path.join(ROOT, 'bench/tunnel/cpu-profile.mjs')).href;
      process.env.NODE_OPTIONS = `${NODE_OPTIONS ?? ''} --import=${preload}`;
      process.env.FLEETGATE_CPU_PROF_DIR = cpuProfDir;
    }
    const { agent, uuid } = await startAgent(base, session, fleetId, dir, [service.port]);
    await api(base, 'PUT', `/api/v1/devices/${uuid}/allowed-ports`, session, { ports: [22, service.port] });
    const { localPort, cli } = await startCliTunnel(base, session, uuid, service.port);
    if (NODE_OPTIONS === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = NODE_OPTIONS;
    delete process.env.FLEETGATE_CPU_PROF_DIR;
    // The agent connected, reported its state and got its variables: idle, before any traffic.
    await sleep(10_000);
    const agentIdleRss = rssOf(agent.pid!);
    const fleetgatePids = [cli.pid!, server.pid, agent.pid!];

    const results: Throughput[] = [];
    for (const [streams, direction] of [1, parallel].flatMap((n) =>
      (['upload', 'download'] as const).map((d) => [n, d] as const),
    )) {
      const bytes = Math.floor((mib * MiB) / streams);
      const moved = (streams * bytes) / MiB;
      const run = (port: number, size: number) => transfer(direction, port, streams, size, service);
      // Warm every path (JIT, socket buffers) with a 64 MiB run that is not counted.
      for (const port of [relay.port, chain.port, localPort]) await run(port, Math.min(bytes, 64 * MiB));
      const viaRelay = await withCpu([relay.pid], () => run(relay.port, bytes));
      const viaChain = await withCpu(chain.pids, () => run(chain.port, bytes));
      const viaFleetgate = await withCpu(fleetgatePids, () => run(localPort, bytes));
      const perMiB = (ms: number) => ms / moved;
      const [cliMs, serverMs, agentMs] = viaFleetgate.cpuMs as [number, number, number];
      const result: Throughput = {
        label:
          `${mib.toLocaleString('en')} MiB over ${streams} stream${streams > 1 ? 's' : ''}, ` +
          (direction === 'upload' ? 'laptop → device' : 'device → laptop'),
        direction,
        streams,
        relay: viaRelay.value,
        chain: viaChain.value,
        fleetgate: viaFleetgate.value,
        relayCpuPerMiB: perMiB(viaRelay.cpuMs[0]!),
        chainCpuPerMiB: perMiB(viaChain.cpuMs.reduce((a, b) => a + b, 0)),
        fleetgateCpuPerMiB: { cli: perMiB(cliMs), server: perMiB(serverMs), agent: perMiB(agentMs) },
        ownCpuPerMiB: [perMiB(viaRelay.ownMs), perMiB(viaChain.ownMs), perMiB(viaFleetgate.ownMs)],
      };
      const cpu = result.fleetgateCpuPerMiB;
      log(
        `  ${result.label}: relay ${result.relay.toFixed(0)} MiB/s, 3 relays ${result.chain.toFixed(0)} MiB/s, ` +
          `fleetgate ${result.fleetgate.toFixed(0)} MiB/s; CPU per MiB: relay ${result.relayCpuPerMiB.toFixed(2)} ms, ` +
          `3 relays ${result.chainCpuPerMiB.toFixed(2)} ms, fleetgate ${(cpu.cli + cpu.server + cpu.agent).toFixed(2)} ms ` +
          `(CLI ${cpu.cli.toFixed(2)}, server ${cpu.server.toFixed(2)}, agent ${cpu.agent.toFixed(2)})`,
      );
      results.push(result);
    }
    await sleep(5_000);
    const agentBusyRss = rssOf(agent.pid!);
    if (cpuProfDir) await Promise.all([stopGracefully(cli), stopGracefully(agent)]);
    return { results, agentIdleRss, agentBusyRss };
  } finally {
    service.close();
  }
}

// ─── (2) and (3) Idle tunnels and the reconnect storm ─────────────────────────────────────────────────

async function idleAndStorm(
  server: ServerProcess,
  restart: () => Promise<ServerProcess>,
  base: string,
  sqliteFile: string,
  fleet: { id: number; orgId: number },
  idle: number,
  storm: number,
  processes: number,
) {
  const seedStart = performance.now();
  const devices = await seedDevices({ sqliteFile }, fleet, Math.max(idle, storm));
  log(
    `  seeded ${devices.length.toLocaleString('en')} devices with keys in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`,
  );

  const before = await server.memory();
  const generators = startGenerators([base], devices.slice(0, idle), processes);
  const rampStart = performance.now();
  await until(`${idle} tunnels up`, 300_000, async () => (generators.connected() >= idle ? true : undefined));
  log(
    `  ${idle.toLocaleString('en')} tunnels up in ${((performance.now() - rampStart) / 1000).toFixed(1)} s`,
  );
  await sleep(5_000);
  const after = await server.memory();
  const perTunnel = (a: keyof MemoryFigures) => (after[a] - before[a]) / idle;

  generators.trim(storm);
  await until(`${storm} tunnels left`, 60_000, async () =>
    generators.connected() <= storm ? true : undefined,
  );
  await sleep(2_000);
  generators.resetCounts();
  const stopAt = Date.now();
  const next = await restart();
  const upAt = Date.now();
  await until(`${storm} tunnels back after the restart`, 300_000, async () =>
    generators.connected() >= storm ? true : undefined,
  );
  const allBack = Math.max(...generators.online) - stopAt;
  const perSecond = new Map<number, number>();
  for (const t of generators.online) {
    const second = Math.floor((t - stopAt) / 1000);
    perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
  }
  const peak = Math.max(...perSecond.values());
  const storming = {
    restartMs: upAt - stopAt,
    allBackMs: allBack,
    peakPerSecond: peak,
    cameBack: generators.online.length,
    refused: { ...generators.refused },
    failedWhileDown: generators.failed,
  };
  generators.stop();
  return { before, after, perTunnel, storming, server: next };
}

// ─── Command line ─────────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      mib: { type: 'string', default: '1024' },
      parallel: { type: 'string', default: '16' },
      idle: { type: 'string', default: '15000' },
      storm: { type: 'string', default: '10000' },
      generators: { type: 'string', default: '4' },
      parts: { type: 'string', default: 'throughput,tunnels' },
      'cpu-prof': { type: 'boolean', default: false },
    },
  });
  const parts = new Set(values.parts.split(','));
  for (const part of parts)
    if (part !== 'throughput' && part !== 'tunnels')
      throw new Error(`--parts: throughput and/or tunnels, not ${part}`);
  const mib = wholeNumber('mib', values.mib, 16);
  const parallel = wholeNumber('parallel', values.parallel, 2);
  const idle = wholeNumber('idle', values.idle, 10);
  const storm = wholeNumber('storm', values.storm, 10);
  const processes = wholeNumber('generators', values.generators, 1);
  if (storm > idle) throw new Error('--storm must not be more than --idle');
  log(
    `fleetgate tunnel benchmark: ${mib} MiB, ${parallel} parallel streams, ${idle.toLocaleString('en')} idle ` +
      `tunnels, storm of ${storm.toLocaleString('en')}; Node ${process.versions.node}, ${os.cpus().length} cores, ` +
      `load average ${os.loadavg()[0]!.toFixed(2)}, ${new Date().toISOString()}`,
  );

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-tunnel-'));
  const cpuProfDir =
    values['cpu-prof'] && parts.has('throughput')
      ? fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-prof-'))
      : undefined;
  const sqliteFile = path.join(dir, 'data', 'fleetgate.db');
  let server: ServerProcess | undefined;
  try {
    const flags: Flags = {
      dataDir: path.join(dir, 'data'),
      listen: '127.0.0.1',
      httpPort: await freePort(),
      proxyPort: 0,
      sshPort: 0,
      logLevel: 'warn',
      adminEmail: ADMIN_EMAIL,
      adminPassword: ADMIN_PASSWORD,
    };
    server = await startServerProcess(flags, { cpuProfDir });
    const base = `http://127.0.0.1:${flags.httpPort}`;
    const session = await signInAsAdmin(base);
    const org = (await api(base, 'GET', '/api/v1/orgs', session)).items[0];
    const fleetBody = { orgId: org.id, name: 'bench-tunnel', defaultDeviceType: 'generic-amd64' };
    const fleet = { id: (await api(base, 'POST', '/api/v1/fleets', session, fleetBody)).id, orgId: org.id };

    let through: Awaited<ReturnType<typeof throughput>> | undefined;
    if (parts.has('throughput')) {
      log('\n(1) throughput and (4) agent footprint');
      through = await throughput(server, base, session, fleet.id, dir, mib, parallel, cpuProfDir);
      killChildren();
    }
    log('\nResults');
    for (const r of through?.results ?? []) {
      const met = r.fleetgate / r.relay >= 0.75;
      log(
        `  throughput, ${r.label}: fleetgate ${r.fleetgate.toFixed(0)} MiB/s, plain TCP relay ${r.relay.toFixed(0)} MiB/s, ` +
          `ratio ${ratio(r.fleetgate, r.relay)} (target ≥ 0.75×: ${met ? 'met' : 'NOT met'}); through 3 relays in a row ` +
          `${r.chain.toFixed(0)} MiB/s, ratio ${ratio(r.fleetgate, r.chain)}`,
      );
      const cpu = r.fleetgateCpuPerMiB;
      log(
        `    CPU per MiB: fleetgate ${(cpu.cli + cpu.server + cpu.agent).toFixed(2)} ms (CLI ${cpu.cli.toFixed(2)}, ` +
          `server ${cpu.server.toFixed(2)}, agent ${cpu.agent.toFixed(2)}); one relay ${r.relayCpuPerMiB.toFixed(2)} ms, ` +
          `3 relays ${r.chainCpuPerMiB.toFixed(2)} ms; client and service ` +
          `${r.ownCpuPerMiB.map((ms) => ms.toFixed(2)).join(' / ')} ms (relay / 3 relays / fleetgate)`,
      );
    }
    if (through) {
      const { agentIdleRss, agentBusyRss } = through;
      log(
        `  agent RSS: idle ${(agentIdleRss / MiB).toFixed(1)} MiB (target ≤ 60 MB: ${agentIdleRss <= 60e6 ? 'met' : 'NOT met'}), ` +
          `${(agentBusyRss / MiB).toFixed(1)} MiB 5 s after the transfers`,
      );
    }
    if (cpuProfDir) {
      // The server writes its profile as it exits; the agent and the CLI wrote theirs when they stopped.
      await server.stop();
      log(`  CPU profiles of the server, the agent and the CLI: ${cpuProfDir}`);
    }
    if (!parts.has('tunnels')) return 0;

    log('\n(2) idle tunnels and (3) reconnect storm');
    // A fresh server process (without a profiler), so that the throughput runs' buffers do not blur its memory
    // figures.
    await server.stop();
    server = await startServerProcess(flags);
    await sleep(3_000);
    const { before, after, perTunnel, storming } = await idleAndStorm(
      server,
      async () => {
        const stopping = performance.now();
        await server!.stop();
        const starting = performance.now();
        server = await startServerProcess(flags);
        log(
          `  restart: the old server stopped in ${((starting - stopping) / 1000).toFixed(1)} s (closing its tunnels, ` +
            `writing their presence), the new one listened ${((performance.now() - starting) / 1000).toFixed(1)} s later`,
        );
        return server;
      },
      base,
      sqliteFile,
      fleet,
      idle,
      storm,
      processes,
    );

    const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
    log(
      `  idle tunnels: ${idle.toLocaleString('en')}; server RSS ${(before.rssBytes / MiB).toFixed(0)} → ` +
        `${(after.rssBytes / MiB).toFixed(0)} MiB, heap ${(before.heapUsedBytes / MiB).toFixed(0)} → ` +
        `${(after.heapUsedBytes / MiB).toFixed(0)} MiB; per tunnel: RSS ${kib(perTunnel('rssBytes'))}, heap ` +
        `${kib(perTunnel('heapUsedBytes'))}, external ${kib(perTunnel('externalBytes'))} ` +
        `(target ≤ 10 KiB RSS: ${perTunnel('rssBytes') <= 10 * 1024 ? 'met' : 'NOT met'})`,
    );
    const refusedCount = Object.values(storming.refused).reduce((a, b) => a + b, 0);
    log(
      `  reconnect storm, ${storm.toLocaleString('en')} tunnels: server back in ${(storming.restartMs / 1000).toFixed(1)} s, ` +
        `all tunnels back ${(storming.allBackMs / 1000).toFixed(1)} s after the stop, ` +
        `${((storming.allBackMs - storming.restartMs) / 1000).toFixed(1)} s after the new server listened (target ≤ 30 s: ` +
        `${storming.allBackMs <= 30_000 ? 'met' : 'NOT met'}), peak ${storming.peakPerSecond.toLocaleString('en')} ` +
        `tunnels up per second, ${storming.failedWhileDown.toLocaleString('en')} attempts while the server was down, ` +
        `refused answers: ${refusedCount === 0 ? 'none' : JSON.stringify(storming.refused)}`,
    );
    log(`load average at the end: ${os.loadavg()[0]!.toFixed(2)}`);
    return 0;
  } catch (err) {
    log(`\nBENCH FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  } finally {
    killChildren();
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

process.exit(await main());
