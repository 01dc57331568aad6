/**
 * Device web page benchmark (issue 16). Starts a real fleetgate on 127.0.0.1 (SQLite) in a child process, a real
 * fleetgate-agent process, and "a web app on the device" in a process of its own (bench/web/device-app.ts), the
 * only port on the device's allow-list; then `fleetgate tunnel` to that port, as a person would run it. The same
 * client (this process) reads the app three ways:
 *
 *   direct:       http://127.0.0.1:<app port> (the ceiling: client and app alone);
 *   tunnel:       http://127.0.0.1:<local port> through `fleetgate tunnel` → server → agent → the app;
 *   device page:  http://127.0.0.1:<HTTP port> with `Host: <port>-<uuid>.localhost:<HTTP port>` and the device
 *                 origin's cookie (a grant entered first, as the browser does), through fleetgate's device web
 *                 proxy → stream router → agent → the app.
 *
 * and measures:
 *
 *   (a) throughput: `GET /download` of `--mb` MB (10^6 bytes), MB/s from the request to the last byte, the median
 *       of `--rounds` interleaved rounds, on a new connection each time; target: device page ≥ 0.8× tunnel;
 *   (b) small pages: `GET /small` (1 KiB) with autocannon at `--connections` keep-alive connections for
 *       `--seconds` (after an uncounted warm-up of 3 s): requests/s and p99 latency, tunnel and device page.
 *
 *   npm run bench:web -- [--mb 100] [--rounds 3] [--connections 20] [--seconds 10]
 *
 * It exits 0 with its figures, 1 when the bench itself fails (bytes lost, a refused grant, a non-2xx answer).
 */
import { fork, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CLI_BIN, nodeFlagsOf } from '../lib/bins.ts';
import { percentile } from '../lib/figures.ts';
import { fire, settle } from '../lib/load.ts';
import { accepts, freePort, killChildren, ROOT, startAgent, track, until } from '../lib/processes.ts';
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

const MB = 1_000_000;
const log = (line: string) => process.stdout.write(`${line}\n`);
const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').trim();

async function startDeviceApp(): Promise<{ port: number; pid: number }> {
  const app = track(
    fork(path.join(ROOT, 'bench/web/device-app.ts'), [], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  return new Promise((resolve, reject) => {
    app.once('message', (message: { port: number }) => resolve({ port: message.port, pid: app.pid! }));
    app.once('exit', (code) => reject(new Error(`the device app ended (code ${code})`)));
  });
}

/** One GET on a new connection; answers the status and the bytes of the body. */
function get(
  port: number,
  pathAndQuery: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; bytes: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const request = http.get(
      { host: '127.0.0.1', port, path: pathAndQuery, headers, agent: false },
      (response) => {
        let bytes = 0;
        response.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
        });
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, bytes, headers: response.headers }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
  });
}

type Way = 'direct' | 'tunnel' | 'page';
const ways: Way[] = ['direct', 'tunnel', 'page'];

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      mb: { type: 'string', default: '100' },
      rounds: { type: 'string', default: '3' },
      connections: { type: 'string', default: '20' },
      seconds: { type: 'string', default: '10' },
    },
  });
  const mb = wholeNumber('mb', values.mb, 1);
  const rounds = wholeNumber('rounds', values.rounds, 1);
  const connections = wholeNumber('connections', values.connections, 1);
  const seconds = wholeNumber('seconds', values.seconds, 1);
  const loadBefore = loadavg();
  log(
    `fleetgate device web page benchmark: ${mb} MB download × ${rounds} rounds, small pages at ${connections} ` +
      `connections for ${seconds} s; Node ${process.versions.node}, ${os.cpus().length} cores, ${new Date().toISOString()}`,
  );
  log(`  /proc/loadavg before: ${loadBefore}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-web-'));
  let server: ServerProcess | undefined;
  try {
    const app = await startDeviceApp();
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
    server = await startServerProcess(flags);
    const httpPort = flags.httpPort as number;
    const base = `http://127.0.0.1:${httpPort}`;
    const session = await signInAsAdmin(base);
    const org = (await api(base, 'GET', '/api/v1/orgs', session)).items[0];
    const fleetBody = { orgId: org.id, name: 'bench-web', defaultDeviceType: 'generic-amd64' };
    const fleetId = (await api(base, 'POST', '/api/v1/fleets', session, fleetBody)).id as number;
    const { uuid, agent } = await startAgent(base, session, fleetId, dir, [app.port]);
    await api(base, 'PUT', `/api/v1/devices/${uuid}/allowed-ports`, session, { ports: [app.port] });

    // The device page, entered as the browser enters it.
    const grant = await api(base, 'POST', `/api/v1/devices/${uuid}/web-sessions`, session, {
      port: app.port,
    });
    const link = new URL(grant.url);
    const entered = await get(httpPort, `${link.pathname}${link.search}`, { host: link.host });
    const cookie = entered.headers['set-cookie']?.[0]?.split(';')[0];
    if (entered.status !== 303 || !cookie) throw new Error(`entering the grant answered ${entered.status}`);
    const pageHeaders = { host: link.host, cookie };

    const tunnelPort = await freePort();
    const cli = track(
      spawn(
        process.execPath,
        [
          ...nodeFlagsOf(CLI_BIN),
          CLI_BIN,
          'tunnel',
          uuid,
          `${tunnelPort}:${app.port}`,
          '--server',
          base,
          '--token',
          session,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      ),
    );
    cli.stdout.resume();
    await until('fleetgate tunnel to listen', 30_000, () => accepts(tunnelPort));
    log(
      `  server pid ${server.pid}, agent pid ${agent.pid}, tunnel pid ${cli.pid}, app pid ${app.pid}; ` +
        `device page ${link.host}`,
    );

    const target: Record<Way, { port: number; headers: Record<string, string> }> = {
      direct: { port: app.port, headers: {} },
      tunnel: { port: tunnelPort, headers: {} },
      page: { port: httpPort, headers: pageHeaders },
    };
    const bytes = mb * MB;
    const download = async (way: Way, size: number) => {
      const start = performance.now();
      const answer = await get(target[way].port, `/download?bytes=${size}`, target[way].headers);
      const secondsTaken = (performance.now() - start) / 1000;
      if (answer.status !== 200 || answer.bytes !== size)
        throw new Error(`${way}: answered ${answer.status} with ${answer.bytes} of ${size} bytes`);
      return size / MB / secondsTaken;
    };

    // Warm-up, not counted: JIT, socket buffers, the agent's first streams.
    for (const way of ways) await download(way, Math.min(bytes, 50 * MB));

    log(`\n(a) GET of ${mb} MB, ${rounds} rounds, interleaved, a new connection each`);
    const rates: Record<Way, number[]> = { direct: [], tunnel: [], page: [] };
    for (let round = 1; round <= rounds; round++) {
      for (const way of ways) {
        const rate = await download(way, bytes);
        rates[way].push(rate);
        log(`  round ${round}, ${way}: ${rate.toFixed(0)} MB/s`);
      }
    }

    log(
      `\n(b) GET /small (1 KiB) at ${connections} keep-alive connections, ${seconds} s (after 3 s not counted)`,
    );
    const small: Record<'tunnel' | 'page', { rps: number; p99: number }> = {
      tunnel: { rps: 0, p99: 0 },
      page: { rps: 0, p99: 0 },
    };
    const abort = new AbortController();
    for (const way of ['tunnel', 'page'] as const) {
      const load = {
        label: way,
        connections,
        headers: target[way].headers,
        next: () => ({ method: 'GET' as const, path: '/small' }),
      };
      const url = `http://127.0.0.1:${target[way].port}`;
      await fire(url, load, 3, abort.signal);
      await settle();
      const result = await fire(url, load, seconds, abort.signal);
      await settle();
      if (result.non2xx > 0 || result.errors > 0 || result.timeouts > 0)
        throw new Error(
          `${way}: ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`,
        );
      small[way] = { rps: result.requests.average, p99: result.latency.p99 };
      log(`  ${way}: ${small[way].rps.toFixed(0)} requests/s, p99 ${small[way].p99} ms`);
    }

    const median = (way: Way) => percentile(rates[way], 50);
    log('\n| figure | direct | fleetgate tunnel | device page | page ÷ tunnel |');
    log('|---|---|---|---|---|');
    log(
      `| ${mb} MB download, median of ${rounds} (MB/s) | ${median('direct').toFixed(0)} | ` +
        `${median('tunnel').toFixed(0)} | ${median('page').toFixed(0)} | ${ratio(median('page'), median('tunnel'))} |`,
    );
    log(
      `| 1 KiB pages at ${connections} connections (requests/s) | — | ${small.tunnel.rps.toFixed(0)} | ` +
        `${small.page.rps.toFixed(0)} | ${ratio(small.page.rps, small.tunnel.rps)} |`,
    );
    log(`| same, p99 latency (ms) | — | ${small.tunnel.p99} | ${small.page.p99} | — |`);
    log(`\n/proc/loadavg before: ${loadBefore}; after: ${loadavg()}`);
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
