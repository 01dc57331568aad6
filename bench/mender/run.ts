/**
 * mender-connect through fleetgate (issue 20), against the agent's tunnel in the same run. Starts a real fleetgate on
 * 127.0.0.1 (SQLite) in a child process, a real fleetgate-agent process, and a stock Mender device — the Debian
 * mender-client and mender-connect with their D-Bus bus, in a mount namespace of their own (root; as
 * packages/server/test/mender runs them) — then measures, alternating between the two devices so that other load
 * on the machine falls on both:
 *
 *   port forwarding:  `fleetgate tunnel <device> 0:<port>` to a byte service on the machine (the devices' network),
 *                     downloads and uploads of `--mib` MiB each way, MiB/s per path and mender / agent;
 *   terminal:         the web terminal's WebSocket to a shell on each device, `echo R''<n>` typed until `R<n>` comes
 *                     back, p50/p90/p99 in ms per path.
 *
 *   npm run bench:mender -- [--mib 16] [--rounds 3] [--lines 200]
 *
 * The Mender device speaks plain HTTP to this server (ServerURL http://127.0.0.1:<port>); production uses HTTPS.
 * Exits 0 with the figures, 1 when the bench itself fails (lost bytes, a shell that never answers).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  canRunMenderConnect,
  createMenderDevice,
  type MenderConnectRun,
  runMender,
  startMenderConnect,
  whyMenderConnectCannotRun,
} from '@fleetgate/server/test/mender/mender-device.ts';
import { WebSocket } from 'ws';
import { CLI_BIN } from '../lib/bins.ts';
import { download, startByteService, upload } from '../lib/byte-service.ts';
import { percentile } from '../lib/figures.ts';
import { freePort, killChildren, startAgent, track, until } from '../lib/processes.ts';
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

const DEVAUTH = '/api/management/v2/devauth';
const LINE_TIMEOUT_MS = 10_000;
const log = (line: string) => process.stdout.write(`${line}\n`);

type Path = 'mender-connect' | 'agent tunnel';

/** `fleetgate tunnel <uuid> 0:<port>`; answers the local port once it listens. */
async function startTunnel(base: string, token: string, uuid: string, port: number): Promise<number> {
  const child = track(
    spawn(process.execPath, [CLI_BIN, 'tunnel', uuid, `0:${port}`, '--server', base, '--token', token], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let output = '';
  child.stdout.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    output += c.toString();
  });
  return until(`fleetgate tunnel to ${uuid}`, 60_000, async () => {
    const match = /forwarding 127\.0\.0\.1:(\d+)/.exec(output);
    return match ? Number(match[1]) : undefined;
  });
}

/** One transfer through the local port; answers MiB/s. */
async function transfer(localPort: number, way: 'download' | 'upload', bytes: number): Promise<number> {
  const socket = net.connect(localPort, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  const start = performance.now();
  await (way === 'download' ? download(socket, bytes) : upload(socket, bytes));
  return bytes / 1024 / 1024 / ((performance.now() - start) / 1000);
}

/** A web terminal: type, and wait for a pattern in what it prints. */
function webTerminal(base: string, token: string, uuid: string) {
  let text = '';
  let waiting: { pattern: string; resolve(): void } | undefined;
  const check = () => {
    if (!waiting) return;
    const at = text.indexOf(waiting.pattern);
    if (at < 0) return;
    text = text.slice(at + waiting.pattern.length);
    const { resolve } = waiting;
    waiting = undefined;
    resolve();
  };
  const ws = new WebSocket(
    `${base.replace(/^http/, 'ws')}/api/v1/devices/${uuid}/terminal?cols=120&rows=40`,
    {
      headers: { authorization: `Bearer ${token}` },
    },
  );
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) return;
    text += data.toString();
    check();
  });
  const shell = {
    type: (line: string) => ws.send(Buffer.from(line)),
    waitFor: (pattern: string) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `no ${JSON.stringify(pattern)} from ${uuid}; saw ${JSON.stringify(text.slice(-300))}`,
              ),
            ),
          LINE_TIMEOUT_MS,
        );
        waiting = {
          pattern,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        check();
      }),
    close: () => ws.close(),
  };
  return new Promise<typeof shell>((resolve, reject) => {
    ws.once('error', reject);
    ws.once('open', () => resolve(shell));
  });
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      mib: { type: 'string', default: '16' },
      rounds: { type: 'string', default: '3' },
      lines: { type: 'string', default: '200' },
    },
  });
  const mib = wholeNumber('mib', values.mib, 1);
  const rounds = wholeNumber('rounds', values.rounds, 1);
  const lines = wholeNumber('lines', values.lines, 10);
  if (!canRunMenderConnect) {
    log(`BENCH FAILED: ${whyMenderConnectCannotRun}`);
    return 1;
  }
  log(
    `fleetgate mender-connect benchmark: ${mib} MiB × ${rounds} rounds each way, ${lines} terminal lines; Node ` +
      `${process.versions.node}, ${os.cpus().length} cores, load average ${os.loadavg()[0]!.toFixed(2)}, ${new Date().toISOString()}`,
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-mender-'));
  let server: ServerProcess | undefined;
  let mender: MenderConnectRun | undefined;
  const closers: (() => void)[] = [];
  try {
    const flags: Flags = {
      dataDir: path.join(dir, 'data'),
      listen: '127.0.0.1',
      httpPort: await freePort(),
      proxyPort: 0,
      sshPort: 0,
      logLevel: 'warn',
      presenceFlushMs: 200,
      adminEmail: ADMIN_EMAIL,
      adminPassword: ADMIN_PASSWORD,
    };
    server = await startServerProcess(flags);
    const base = `http://127.0.0.1:${flags.httpPort}`;
    const token = await signInAsAdmin(base);
    const bytes = await startByteService();
    closers.push(() => bytes.stop());
    const org = (await api(base, 'GET', '/api/v1/orgs', token)).items[0];
    const fleet = await api(base, 'POST', '/api/v1/fleets', token, {
      orgId: org.id,
      name: 'bench-mender',
      defaultDeviceType: 'generic-amd64',
    });
    const agentDir = path.join(dir, 'agent');
    fs.mkdirSync(agentDir);
    const { uuid: agentUuid } = await startAgent(base, token, fleet.id, agentDir, [bytes.port]);

    // The Mender device: it asks, the admin accepts (Mender's management API), it connects with mender-connect.
    const device = createMenderDevice({
      dir: path.join(dir, 'mender'),
      identityLines: ['mac=02:be:9c:00:00:01'],
      serverUrl: base,
      caFile: '',
      inventoryId: 'bench',
    });
    await runMender(device, 'bootstrap');
    const [pending] = await api(base, 'GET', `${DEVAUTH}/devices?status=pending`, token);
    if (!pending) throw new Error('the Mender device did not ask to be accepted');
    await api(base, 'PUT', `${DEVAUTH}/devices/${pending.id}/auth/${pending.auth_sets[0].id}/status`, token, {
      status: 'accepted',
    });
    const boot = await runMender(device, 'bootstrap');
    if (boot.code !== 0) throw new Error(`mender bootstrap: ${boot.output}`);
    const menderUuid = (await api(base, 'GET', `${DEVAUTH}/devices?status=accepted`, token))[0].id as string;
    mender = startMenderConnect(device);
    await until('mender-connect to connect', 60_000, async () => {
      const shown = await api(base, 'GET', `/api/v1/devices/${menderUuid}`, token);
      return shown.onlineVia.includes('mender-connect') ? true : undefined;
    });
    for (const uuid of [agentUuid, menderUuid])
      await api(base, 'PUT', `/api/v1/devices/${uuid}/allowed-ports`, token, { ports: [bytes.port] });

    const uuids: Record<Path, string> = { 'mender-connect': menderUuid, 'agent tunnel': agentUuid };
    const paths = Object.keys(uuids) as Path[];
    const local: Record<Path, number> = {
      'mender-connect': await startTunnel(base, token, menderUuid, bytes.port),
      'agent tunnel': await startTunnel(base, token, agentUuid, bytes.port),
    };
    const size = mib * 1024 * 1024;
    const rates: Record<Path, { download: number[]; upload: number[] }> = {
      'mender-connect': { download: [], upload: [] },
      'agent tunnel': { download: [], upload: [] },
    };
    // Warm-up, not counted.
    for (const p of paths) await transfer(local[p], 'download', 1024 * 1024);
    for (let round = 0; round < rounds; round++)
      for (const way of ['download', 'upload'] as const)
        for (const p of paths) rates[p][way].push(await transfer(local[p], way, size));

    const best = (values: number[]) => Math.max(...values);
    log(`\nport forwarding through fleetgate tunnel, MiB/s (best of ${rounds}, ${mib} MiB each)`);
    log('| path           | download | upload |');
    log('| -------------- | -------: | -----: |');
    for (const p of paths)
      log(
        `| ${p.padEnd(14)} | ${best(rates[p].download).toFixed(1).padStart(8)} | ${best(rates[p].upload).toFixed(1).padStart(6)} |`,
      );
    log(
      `mender-connect / agent tunnel: download ${ratio(best(rates['mender-connect'].download), best(rates['agent tunnel'].download))}, ` +
        `upload ${ratio(best(rates['mender-connect'].upload), best(rates['agent tunnel'].upload))}`,
    );

    const shells = {
      'mender-connect': await webTerminal(base, token, menderUuid),
      'agent tunnel': await webTerminal(base, token, agentUuid),
    };
    for (const shell of Object.values(shells)) closers.push(() => shell.close());
    for (const shell of Object.values(shells)) {
      shell.type("PS1='$ '; PROMPT_COMMAND=; echo RE''ADY\r");
      await shell.waitFor('READY\r\n');
    }
    const roundTrip = async (p: Path, n: number) => {
      const start = performance.now();
      shells[p].type(`echo R''${n}\r`);
      await shells[p].waitFor(`R${n}\r\n`);
      return performance.now() - start;
    };
    for (let n = 0; n < 20; n++) for (const p of paths) await roundTrip(p, n);
    const times: Record<Path, number[]> = { 'mender-connect': [], 'agent tunnel': [] };
    for (let n = 100; n < 100 + lines; n++) for (const p of paths) times[p].push(await roundTrip(p, n));
    log(`\nweb terminal round trip of a typed line to its output, ms (${lines} lines each, interleaved)`);
    log('| path           |   p50 |   p90 |   p99 |');
    log('| -------------- | ----: | ----: | ----: |');
    for (const p of paths)
      log(
        `| ${p.padEnd(14)} | ${[50, 90, 99].map((q) => percentile(times[p], q).toFixed(2).padStart(5)).join(' | ')} |`,
      );
    return 0;
  } catch (err) {
    log(`\nBENCH FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  } finally {
    for (const close of closers) close();
    killChildren();
    await mender?.stop();
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

process.exit(await main());
