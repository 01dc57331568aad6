/**
 * What sharing one port between devices' OpenVPN and people's HTTPS costs HTTPS (issue 17, item 5). Starts a real
 * fleetgate with HTTPS (a certificate from `initTls`) and `FLEETGATE_VPN_PORT` = `FLEETGATE_HTTP_PORT`: the public
 * port is then the VPN's front door, which reads each connection's first byte and pipes TLS to fleetgate's HTTPS
 * listener on 127.0.0.1 (its `openvpn` is bench/vpn's stand-in: no tun device needed, the HTTPS path is what is
 * measured). The same server is loaded two ways, in interleaved rounds, with autocannon from this process:
 *
 *   direct:  its HTTPS listener on 127.0.0.1 (the internal port, read from `ss`): HTTPS as without sharing;
 *   shared:  the public port, through the front door.
 *
 * Each: `GET /healthz` at `--connections` keep-alive connections for `--seconds` after a warm-up, requests/s and
 * p50/p99; and new connections (a TLS handshake each, `--handshakes` of them one after another), p50/p99 of the
 * time to the answer. The figure: shared ÷ direct.
 *
 *   npm run bench:vpn-shared -- [--connections 50] [--seconds 5] [--rounds 3] [--handshakes 300]
 *
 * It exits 0 with its figures, 1 when the bench itself fails.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { initTls } from '@fleetgate/server';
import { percentile } from '../lib/figures.ts';
import { fire, settle } from '../lib/load.ts';
import { freePort } from '../lib/processes.ts';
import { ratio, startServerProcess, wholeNumber } from '../lib/server-process.ts';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '50' },
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    handshakes: { type: 'string', default: '300' },
  },
});
const connections = wholeNumber('connections', values.connections!, 1);
const seconds = wholeNumber('seconds', values.seconds!, 1);
const rounds = wholeNumber('rounds', values.rounds!, 1);
const handshakes = wholeNumber('handshakes', values.handshakes!, 10);

const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-shared-'));
process.env.FAKE_OPENVPN_DIR = workDir;
// The bench's own CA: autocannon and https.get below trust it through Node's default check, switched off here
// for this process only (everything runs on 127.0.0.1).
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const dataDir = path.join(workDir, 'data');
await initTls({ dataDir, hosts: ['127.0.0.1'] });
const port = await freePort();
const server = await startServerProcess({
  dataDir,
  httpPort: port,
  vpnPort: port,
  sshPort: 0,
  proxyPort: 0,
  logLevel: 'warn',
  adminEmail: 'admin@bench.fleetgate.test',
  adminPassword: 'bench-password-not-secret',
  vpn: 'on',
  vpnInstances: 1,
  vpnOpenvpn: path.join(path.dirname(fileURLToPath(import.meta.url)), 'fake-openvpn.mjs'),
});

/** The server's listeners on 127.0.0.1 other than the public port: its HTTPS listener is among them. */
function internalPort(): number {
  const lines = execFileSync('ss', ['-Htlnp'], { encoding: 'utf8' }).split('\n');
  const ports = lines
    .filter((line) => line.includes(`pid=${server.pid},`))
    .map((line) => /127\.0\.0\.1:(\d+)/.exec(line)?.[1])
    .filter((p): p is string => p !== undefined)
    .map(Number)
    .filter((p) => p !== port);
  for (const candidate of ports) {
    try {
      execFileSync('curl', ['-skf', '-m', '2', `https://127.0.0.1:${candidate}/healthz`], {
        stdio: 'ignore',
      });
      return candidate;
    } catch {
      // Not the HTTPS listener (the SSH gateway, the proxy).
    }
  }
  throw new Error(`no HTTPS listener of the server found among ${ports.join(', ')}`);
}

/** Time to the answer of `GET /healthz` on a new connection (a TLS handshake each), one after another. */
async function newConnections(target: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < handshakes; i++) {
    const started = process.hrtime.bigint();
    await new Promise<void>((resolve, reject) => {
      const request = https.get(
        { host: '127.0.0.1', port: target, path: '/healthz', agent: false },
        (response) => {
          response.resume();
          response.on('end', () =>
            response.statusCode === 200 ? resolve() : reject(new Error(`${response.statusCode}`)),
          );
        },
      );
      request.on('error', reject);
    });
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return times;
}

try {
  const direct = internalPort();
  const signal = new AbortController().signal;
  const load = {
    label: 'GET /healthz',
    connections,
    next: () => ({ method: 'GET' as const, path: '/healthz' }),
  };
  const runs: Record<'direct' | 'shared', { rps: number[]; p50: number[]; p99: number[]; setup: number[] }> =
    {
      direct: { rps: [], p50: [], p99: [], setup: [] },
      shared: { rps: [], p50: [], p99: [], setup: [] },
    };
  for (const target of [direct, port]) await fire(`https://127.0.0.1:${target}`, load, 2, signal);
  await settle();
  for (let round = 0; round < rounds; round++) {
    for (const [name, target] of [
      ['direct', direct],
      ['shared', port],
    ] as const) {
      const result = await fire(`https://127.0.0.1:${target}`, load, seconds, signal);
      await settle();
      if (result.non2xx || result.errors || result.timeouts) throw new Error(`${name}: failed requests`);
      runs[name].rps.push(result.requests.average);
      runs[name].p50.push(result.latency.p50);
      runs[name].p99.push(result.latency.p99);
      runs[name].setup.push(...(await newConnections(target)));
    }
  }
  const median = (xs: number[]) => percentile(xs, 50);
  console.log(
    `\nHTTPS with the port shared with OpenVPN, ${os.availableParallelism()} cores, ${rounds} rounds\n`,
  );
  console.log('| path | requests/s | p50 ms | p99 ms | new connection p50 ms | p99 ms |');
  console.log('|---|---|---|---|---|---|');
  for (const name of ['direct', 'shared'] as const) {
    const r = runs[name];
    console.log(
      `| ${name} | ${Math.round(median(r.rps)).toLocaleString('en')} | ${median(r.p50)} | ${median(r.p99)} | ` +
        `${percentile(r.setup, 50).toFixed(2)} | ${percentile(r.setup, 99).toFixed(2)} |`,
    );
  }
  console.log(
    `\nshared ÷ direct: requests/s ${ratio(median(runs.shared.rps), median(runs.direct.rps))}, ` +
      `new connection p50 ${ratio(percentile(runs.shared.setup, 50), percentile(runs.direct.setup, 50))}`,
  );
} finally {
  await server.stop();
  fs.rmSync(workDir, { recursive: true, force: true });
}
