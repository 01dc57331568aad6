/**
 * What one request of bench/api costs the server, without the queue: the same fleet (fleet.ts: 100,000 devices),
 * asked one request at a time over a keep-alive connection on loopback, and the server's CPU time (user + system,
 * its `process.cpuUsage()`) per answered request, for the devices table's pages, the tag + text search and the
 * single device GET. At 50 connections in bench/api a p99 is mostly the queue, ≈ 50 × this cost: p99 ≤ 20 ms
 * needs about 400 µs per page.
 *
 *   npx tsx bench/api/page-cost.ts [--db sqlite|postgres|both] [--devices 100000] [--requests 2000]
 *                                  [--only <text in a scenario's label>] [--cpu-prof]
 *
 * `--cpu-prof` writes a V8 CPU profile of the server and prints where its time went, by function and by file
 * (self time). On PostgreSQL the figure leaves out PostgreSQL's own CPU.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { wholeNumber } from '../lib/server-process.ts';
import {
  type DbName,
  listPath,
  randomOf,
  type SeededServer,
  startSeededServer,
  tablePaths,
  tableQueries,
  wholeDevicesQuery,
} from './fleet.ts';

/** Requests not counted before each scenario, so that the JIT and the caches are warm. */
const WARMUP_REQUESTS = 300;

const log = (line: string) => process.stdout.write(`${line}\n`);

interface Scenario {
  label: string;
  token: string;
  nextPath: () => string;
}

interface Cost {
  label: string;
  /** Server CPU per request, µs. */
  cpuMicros: number;
  /** Wall time per request as the client saw it, µs. */
  wallMicros: number;
  /** Mean size of an answer's body, bytes. */
  bodyBytes: number;
}

/** One GET on the keep-alive `agent`; answers the body's length, throws on any status but 200. */
function get(agent: http.Agent, base: URL, urlPath: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.get(
      {
        agent,
        host: base.hostname,
        port: base.port,
        path: urlPath,
        headers: { authorization: `Bearer ${token}` },
      },
      (response) => {
        let bytes = 0;
        response.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
        });
        response.on('end', () =>
          response.statusCode === 200
            ? resolve(bytes)
            : reject(new Error(`GET ${urlPath} answered ${response.statusCode}`)),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
  });
}

async function measure(
  seeded: SeededServer,
  scenario: Scenario,
  requests: number,
  signal: AbortSignal,
): Promise<Cost> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const base = new URL(seeded.server.url);
  try {
    for (let i = 0; i < WARMUP_REQUESTS; i++) {
      signal.throwIfAborted();
      await get(agent, base, scenario.nextPath(), scenario.token);
    }
    const paths = Array.from({ length: requests }, scenario.nextPath);
    const cpuBefore = await seeded.server.cpuMicros();
    const start = performance.now();
    let bytes = 0;
    for (const urlPath of paths) {
      signal.throwIfAborted();
      bytes += await get(agent, base, urlPath, scenario.token);
    }
    const wall = performance.now() - start;
    const cpu = (await seeded.server.cpuMicros()) - cpuBefore;
    signal.throwIfAborted();
    return {
      label: scenario.label,
      cpuMicros: cpu / requests,
      wallMicros: (wall * 1000) / requests,
      bodyBytes: bytes / requests,
    };
  } finally {
    agent.destroy();
  }
}

async function costsOn(
  db: DbName,
  devices: number,
  requests: number,
  only: string | undefined,
  cpuProfDir: string | undefined,
  signal: AbortSignal,
): Promise<Cost[]> {
  const seeded = await startSeededServer(db, devices, { cpuProfDir, signal, log });
  try {
    const { server, session, orgId, uuids } = seeded;
    const scenarios: Scenario[] = [];
    for (const table of [...tableQueries, wholeDevicesQuery]) {
      const paths = await tablePaths(server.url, session, orgId, table);
      scenarios.push({ label: table.label, token: session, nextPath: () => randomOf(paths) });
    }
    scenarios.push({ label: 'device list: tag + q, 50/page', token: session, nextPath: listPath });
    scenarios.push({
      label: 'device GET (session)',
      token: session,
      nextPath: () => `/api/v1/devices/${randomOf(uuids)}`,
    });
    log(`seeded ${devices.toLocaleString('en')} devices in ${seeded.seedSeconds.toFixed(1)} s`);
    const costs: Cost[] = [];
    for (const scenario of scenarios) {
      if (only && !scenario.label.includes(only)) continue;
      process.stdout.write(`  ${scenario.label}… `);
      const cost = await measure(seeded, scenario, requests, signal);
      log(`${Math.round(cost.cpuMicros)} µs`);
      costs.push(cost);
    }
    return costs;
  } finally {
    await seeded.close();
  }
}

function printCosts(db: DbName, requests: number, costs: Cost[]): void {
  const rows = [['scenario', 'server CPU/req', 'wall/req', 'body']];
  for (const c of costs)
    rows.push([
      c.label,
      `${Math.round(c.cpuMicros).toLocaleString('en')} µs`,
      `${Math.round(c.wallMicros).toLocaleString('en')} µs`,
      `${Math.round(c.bodyBytes).toLocaleString('en')} B`,
    ]);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  log(
    `\n${db === 'sqlite' ? 'SQLite' : 'PostgreSQL'}: ${requests.toLocaleString('en')} requests each, one at a time`,
  );
  log(`  ${line(rows[0]!)}\n  ${widths.map((w) => '─'.repeat(w)).join('  ')}`);
  for (const r of rows.slice(1)) log(`  ${line(r)}`);
}

// ─── CPU profile ──────────────────────────────────────────────────────────────────────────────────────

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** Prints the `top` functions and files by self time in the profiles of `dir`, as shares of the busy time. */
function printProfile(dir: string, top = 30): void {
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as {
      nodes: ProfileNode[];
      samples: number[];
    };
    const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
    const byFunction = new Map<string, number>();
    const byFile = new Map<string, number>();
    let busy = 0;
    for (const id of profile.samples) {
      const { functionName, url, lineNumber } = nodes.get(id)!.callFrame;
      if (functionName === '(idle)') continue;
      busy++;
      const where = url ? url.replace(/^.*\/node_modules\//, '').replace(/^file:\/\/.*\/packages\//, '') : '';
      const name = `${functionName || '(anonymous)'} ${where}${where ? `:${lineNumber + 1}` : ''}`;
      byFunction.set(name, (byFunction.get(name) ?? 0) + 1);
      const module = where ? where.replace(/:\d+$/, '') : functionName;
      byFile.set(module, (byFile.get(module) ?? 0) + 1);
    }
    const share = (n: number) => `${((100 * n) / busy).toFixed(1).padStart(5)} %`;
    log(`\nCPU profile ${path.join(dir, file)}: ${busy.toLocaleString('en')} busy samples; self time`);
    log('  by function:');
    for (const [name, n] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top))
      log(`    ${share(n)}  ${name}`);
    log('  by file:');
    for (const [name, n] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, top))
      log(`    ${share(n)}  ${name}`);
  }
}

// ─── Command line ─────────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<number> {
  const abort = new AbortController();
  const interrupt = () => abort.abort(new Error('interrupted'));
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  try {
    const { values } = parseArgs({
      options: {
        db: { type: 'string', default: 'sqlite' },
        devices: { type: 'string', default: '100000' },
        requests: { type: 'string', default: '2000' },
        only: { type: 'string' },
        'cpu-prof': { type: 'boolean', default: false },
      },
    });
    const dbs: DbName[] =
      values.db === 'both'
        ? ['sqlite', 'postgres']
        : values.db === 'sqlite' || values.db === 'postgres'
          ? [values.db]
          : [];
    if (!dbs.length) throw new Error(`--db must be sqlite, postgres or both, not ${values.db}`);
    const devices = wholeNumber('devices', values.devices, 1_000);
    const requests = wholeNumber('requests', values.requests, 1);
    log(
      `fleetgate page cost: ${devices.toLocaleString('en')} devices, ${requests.toLocaleString('en')} requests per ` +
        `scenario (+${WARMUP_REQUESTS} warm-up); Node ${process.versions.node}, ${os.cpus().length} cores, ` +
        `load average ${os.loadavg()[0]!.toFixed(2)}, ${new Date().toISOString()}`,
    );
    for (const db of dbs) {
      const cpuProfDir = values['cpu-prof']
        ? fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-page-cost-prof-'))
        : undefined;
      const costs = await costsOn(db, devices, requests, values.only, cpuProfDir, abort.signal);
      printCosts(db, requests, costs);
      if (cpuProfDir) printProfile(cpuProfDir);
    }
    log(`load average at the end: ${os.loadavg()[0]!.toFixed(2)}`);
    return 0;
  } catch (err) {
    if (abort.signal.aborted) {
      log('\ninterrupted; cleaned up.');
      return 130;
    }
    log(`\nFAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  }
}

// Everything was closed in `finally` blocks: exit even if a library left a timer behind.
process.exit(await main());
