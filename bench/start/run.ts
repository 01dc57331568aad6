/**
 * Start benchmark (issue 18): `fleetgate serve` run from its build (packages/cli/dist, what `npm start` and the
 * service units run) against the baseline measured in the same run, the same command from its TypeScript sources
 * through tsx's loader (`FLEETGATE_FROM_SOURCE=1`, how every start ran before the build). Each start is a new
 * process on a new data directory (SQLite), as on a first start: migrations, keys, the first owner. Only the SSH
 * host keys are put there first, the same for every start (made once by the bench): the server makes an RSA-3072
 * one on a first start, which takes from 0.2 to 2 s at random and would drown what is measured.
 *
 *   (a) start time: from spawning `node <the bin's flags> bin/fleetgate.js serve` to the first `/readyz` that
 *       answers 200 (asked every 10 ms on a new connection);
 *   (b) idle memory: the server's resident memory (VmRSS of /proc/<pid>/status) after 10 s with nothing to do;
 *   (c) a command's start: `fleetgate --version`, from spawning it to its exit.
 *
 * Runs alternate between the two ways (build, sources, build, …) so that other load on the machine falls on
 * both alike; the figures are medians.
 *
 *   npm run bench:start -- [--runs 5] [--idle 10]
 *
 * Target: from the build, both the start time and the idle memory are below the baseline's. It exits 0 with its
 * figures, 1 when the bench itself fails (a server that does not become ready, or ends).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import ssh2 from 'ssh2';
import { CLI_BIN, nodeFlagsOf } from '../lib/bins.ts';
import { freePort, killChildren, ROOT, sleep, track } from '../lib/processes.ts';
import { ADMIN_EMAIL, ADMIN_PASSWORD, ratio, wholeNumber } from '../lib/server-process.ts';

const log = (line: string) => process.stdout.write(`${line}\n`);
const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').trim();

type Way = 'build' | 'sources';
const WAYS: Way[] = ['build', 'sources'];

/** The environment of one way: nothing of the developer's shell but PATH, and a HOME of its own. */
function environment(way: Way, home: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: home, ...(way === 'sources' ? { FLEETGATE_FROM_SOURCE: '1' } : {}) };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function rssBytesOf(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
}

/** The HTTP status of one GET on a new connection, or undefined when nothing answers yet. */
function statusOf(port: number, url: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const request = http.get({ host: '127.0.0.1', port, path: url, agent: false }, (response) => {
      response.resume();
      resolve(response.statusCode);
    });
    request.once('error', () => resolve(undefined));
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/**
 * The server's SSH host keys, made once (as the server makes them: ssh2's generator, a pair it can read back) in
 * `<dir>/ssh`, the folder the server keeps them in inside its data directory.
 */
function makeHostKeys(dir: string): string {
  const folder = path.join(dir, 'ssh');
  fs.mkdirSync(folder, { mode: 0o700 });
  for (const [file, type, options] of [
    ['ssh_host_ed25519_key', 'ed25519', {}],
    ['ssh_host_rsa_key', 'rsa', { bits: 3072 }],
  ] as const) {
    let pair = ssh2.utils.generateKeyPairSync(type, options);
    while (ssh2.utils.parseKey(pair.private) instanceof Error)
      pair = ssh2.utils.generateKeyPairSync(type, options);
    fs.writeFileSync(path.join(folder, file), pair.private, { mode: 0o600 });
    fs.writeFileSync(path.join(folder, `${file}.pub`), `${pair.public}\n`);
  }
  return folder;
}

/** One first start of `fleetgate serve` on a new data directory: ms to ready, then RSS after `idleMs`. */
async function serveOnce(
  way: Way,
  dir: string,
  hostKeys: string,
  idleMs: number,
): Promise<{ readyMs: number; rssBytes: number }> {
  const home = fs.mkdtempSync(path.join(dir, `${way}-`));
  fs.cpSync(hostKeys, path.join(home, 'data', 'ssh'), { recursive: true });
  const port = await freePort();
  const args = [
    ...nodeFlagsOf(CLI_BIN),
    CLI_BIN,
    'serve',
    '--data-dir',
    path.join(home, 'data'),
    '--port',
    String(port),
    '--ssh-port',
    '0',
    '--proxy-port',
    '0',
    '--admin-email',
    ADMIN_EMAIL,
    '--admin-password',
    ADMIN_PASSWORD,
    '--log-level',
    'warn',
  ];
  let output = '';
  const started = performance.now();
  const child = track(
    spawn(process.execPath, args, { env: environment(way, home), stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  child.stdout!.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    output += chunk;
  });
  const ended = new Promise<never>((_, reject) =>
    child.once('exit', (code) =>
      reject(new Error(`fleetgate serve (${way}) ended (code ${code}):\n${output}`)),
    ),
  );
  ended.catch(() => {});
  try {
    await Promise.race([
      ended,
      (async () => {
        while ((await statusOf(port, '/readyz')) !== 200) {
          if (performance.now() - started > 60_000)
            throw new Error(`fleetgate serve (${way}) not ready in 60 s`);
          await sleep(10);
        }
      })(),
    ]);
    const readyMs = performance.now() - started;
    await Promise.race([ended, sleep(idleMs)]);
    return { readyMs, rssBytes: rssBytesOf(child.pid!) };
  } finally {
    await stop(child);
  }
}

/** `fleetgate --version` from spawning to its exit, in ms. */
async function commandOnce(way: Way, dir: string): Promise<number> {
  const started = performance.now();
  const child = track(
    spawn(process.execPath, [...nodeFlagsOf(CLI_BIN), CLI_BIN, '--version'], {
      env: environment(way, dir),
      stdio: 'ignore',
    }),
  );
  const code = await new Promise((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`fleetgate --version (${way}) exited with ${code}`);
  return performance.now() - started;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { runs: { type: 'string', default: '5' }, idle: { type: 'string', default: '10' } },
  });
  const runs = wholeNumber('runs', values.runs, 1);
  const idleMs = wholeNumber('idle', values.idle, 0) * 1000;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-start-'));
  try {
    // What a first start builds is made before the clock: the CLI's build (its time is printed: a start after an
    // edit pays it once) and the web UI, which both ways serve.
    const buildStarted = performance.now();
    const build = spawnSync(process.execPath, [path.join(ROOT, 'packages/cli/scripts/build.mjs'), '--quiet']);
    const buildMs = performance.now() - buildStarted;
    if (build.status !== 0) throw new Error(`the CLI's build failed:\n${build.stderr}`);
    const { ensureWebBuilt } = await import('@fleetgate/web/build');
    await ensureWebBuilt(log);
    const hostKeys = makeHostKeys(dir);
    const loadBefore = loadavg();
    log(`fleetgate serve, first start on a new SQLite data directory: ${runs} runs each way, alternating`);
    log(`  the CLI's build (scripts/build.mjs, its own process): ${buildMs.toFixed(0)} ms`);

    const ready: Record<Way, number[]> = { build: [], sources: [] };
    const rss: Record<Way, number[]> = { build: [], sources: [] };
    for (let run = 1; run <= runs; run++) {
      for (const way of run % 2 ? WAYS : [...WAYS].reverse()) {
        const figures = await serveOnce(way, dir, hostKeys, idleMs);
        ready[way].push(figures.readyMs);
        rss[way].push(figures.rssBytes);
        log(
          `  run ${run}, ${way}: ready in ${figures.readyMs.toFixed(0)} ms, ` +
            `RSS after ${idleMs / 1000} s idle ${(figures.rssBytes / 2 ** 20).toFixed(1)} MiB`,
        );
      }
    }
    const command: Record<Way, number[]> = { build: [], sources: [] };
    for (let run = 1; run <= runs; run++)
      for (const way of WAYS) command[way].push(await commandOnce(way, dir));

    const readyMs = { build: median(ready.build), sources: median(ready.sources) };
    const rssMiB = { build: median(rss.build) / 2 ** 20, sources: median(rss.sources) / 2 ** 20 };
    const commandMs = { build: median(command.build), sources: median(command.sources) };
    log(`\nmedians of ${runs} runs`);
    log('| figure | from sources (tsx, baseline) | from the build | build / baseline | target met? |');
    log('|---|---|---|---|---|');
    log(
      `| serve: spawn to /readyz 200 (ms) | ${readyMs.sources.toFixed(0)} | ${readyMs.build.toFixed(0)} | ` +
        `${ratio(readyMs.build, readyMs.sources)} | ${readyMs.build < readyMs.sources ? 'yes' : 'no'} |`,
    );
    log(
      `| serve: RSS after ${idleMs / 1000} s idle (MiB) | ${rssMiB.sources.toFixed(1)} | ${rssMiB.build.toFixed(1)} | ` +
        `${ratio(rssMiB.build, rssMiB.sources)} | ${rssMiB.build < rssMiB.sources ? 'yes' : 'no'} |`,
    );
    log(
      `| fleetgate --version (ms) | ${commandMs.sources.toFixed(0)} | ${commandMs.build.toFixed(0)} | ` +
        `${ratio(commandMs.build, commandMs.sources)} | — |`,
    );
    log(`\n/proc/loadavg before: ${loadBefore}; after: ${loadavg()}; ${os.cpus().length} cores`);
  } catch (err) {
    log(`\nBENCH FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  } finally {
    killChildren();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
