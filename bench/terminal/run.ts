/**
 * Web terminal round trip (issue 16). Starts a real fleetgate on 127.0.0.1 (SQLite) in a child process and a real
 * fleetgate-agent process, then opens two shells on the same device at once:
 *
 *   web terminal:  the browser's path, `GET /api/v1/devices/<uuid>/terminal` upgraded to a WebSocket (the `ws`
 *                  client here stands in for the browser: the same frames, without a page's rendering);
 *   ssh:           `ssh -tt -p <gateway> admin+<uuid>@127.0.0.1`, the gateway's direct mode, OpenSSH's client.
 *
 * Both shells run in a pty through the agent's exec service. In each, one line at a time, it types
 * `echo R''<n>` and Enter and waits for the command's output `R<n>` to come back: the time from the write to
 * that line is one round trip (the typed characters' echo, bash reading the line, running its builtin, the
 * output back). Lines alternate between the two paths so that other load on the machine falls on both. It
 * prints p50, p90 and p99 of each path and the web terminal's ratio to ssh. Target: the web terminal no worse
 * than ssh (ratio ≤ 1 at p50 and p99).
 *
 *   npm run bench:terminal -- [--lines 400]
 *
 * Exits 0 whether the target is met or not, 1 when the bench itself fails (a shell that never answers).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { percentile } from '../lib/figures.ts';
import { freePort, killChildren, startAgent, track } from '../lib/processes.ts';
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

/** The admin's SSH login: the local part of their e-mail. */
const LOGIN = 'admin';
/** How long one line may take before the bench gives up. */
const LINE_TIMEOUT_MS = 10_000;

const log = (line: string) => process.stdout.write(`${line}\n`);

/** A shell on the device: write what a person types, wait for text in what it prints. */
interface Shell {
  type(text: string): void;
  /** Resolves once the output since the last call contains `pattern`; the output before it is dropped. */
  waitFor(pattern: string): Promise<void>;
  close(): void;
}

/** Collects a shell's output and resolves `waitFor`s as their text arrives. */
class Output {
  private text = '';
  private waiting: { pattern: string; resolve: () => void } | undefined;

  push(chunk: string): void {
    this.text += chunk;
    this.check();
  }

  waitFor(pattern: string, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `${what}: no "${pattern}" in ${LINE_TIMEOUT_MS} ms; saw ${JSON.stringify(this.text.slice(-300))}`,
            ),
          ),
        LINE_TIMEOUT_MS,
      );
      this.waiting = {
        pattern,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.check();
    });
  }

  private check(): void {
    const waiting = this.waiting;
    if (!waiting) return;
    const at = this.text.indexOf(waiting.pattern);
    if (at < 0) return;
    this.text = this.text.slice(at + waiting.pattern.length);
    this.waiting = undefined;
    waiting.resolve();
  }
}

function webTerminal(base: string, token: string, uuid: string): Promise<Shell> {
  const output = new Output();
  const ws = new WebSocket(
    `${base.replace(/^http/, 'ws')}/api/v1/devices/${uuid}/terminal?cols=120&rows=40`,
    {
      headers: { authorization: `Bearer ${token}` },
    },
  );
  ws.on('message', (data, isBinary) => {
    if (isBinary) output.push(data.toString());
  });
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('open', () =>
      resolve({
        type: (text) => ws.send(Buffer.from(text)),
        waitFor: (pattern) => output.waitFor(pattern, 'web terminal'),
        close: () => ws.close(),
      }),
    );
  });
}

function sshShell(gatewayPort: number, uuid: string, key: string): Shell {
  const output = new Output();
  const ssh = track(
    spawn(
      'ssh',
      [
        '-tt',
        '-p',
        String(gatewayPort),
        '-i',
        key,
        '-o',
        'IdentitiesOnly=yes',
        '-o',
        'StrictHostKeyChecking=no',
        '-o',
        'UserKnownHostsFile=/dev/null',
        '-o',
        'BatchMode=yes',
        '-o',
        'LogLevel=ERROR',
        `${LOGIN}+${uuid}@127.0.0.1`,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    ),
  );
  ssh.stdout.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  return {
    type: (text) => ssh.stdin.write(text),
    waitFor: (pattern) => output.waitFor(pattern, 'ssh'),
    close: () => ssh.stdin.end(),
  };
}

/** Makes the shell's prompt plain and waits for it, so that the first measured line is not the shell's start. */
async function settle(shell: Shell): Promise<void> {
  shell.type("PS1='$ '; PROMPT_COMMAND=; echo RE''ADY\r");
  await shell.waitFor('READY\r\n');
}

/** One round trip: `echo R<n>` typed, until its output line. */
async function roundTrip(shell: Shell, n: number): Promise<number> {
  const start = performance.now();
  // The quotes keep the typed line's echo ("echo R''<n>") from matching its output ("R<n>").
  shell.type(`echo R''${n}\r`);
  await shell.waitFor(`R${n}\r\n`);
  return performance.now() - start;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { lines: { type: 'string', default: '400' } } });
  const lines = wholeNumber('lines', values.lines, 10);
  const sshVersion = await new Promise<string>((resolve) => {
    const child = spawn('ssh', ['-V'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let text = '';
    child.stderr.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    child.once('close', () => resolve(text.trim()));
  });
  log(
    `fleetgate web terminal benchmark: ${lines} lines each way; ${sshVersion}; Node ${process.versions.node}, ` +
      `${os.cpus().length} cores, load average ${os.loadavg()[0]!.toFixed(2)}, ${new Date().toISOString()}`,
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-terminal-'));
  let server: ServerProcess | undefined;
  const shells: Shell[] = [];
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
    server = await startServerProcess(flags);
    const base = `http://127.0.0.1:${flags.httpPort}`;
    const token = await signInAsAdmin(base);
    const key = path.join(dir, 'id_bench');
    await new Promise<void>((resolve, reject) =>
      spawn('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]).once('close', (code) =>
        code === 0 ? resolve() : reject(new Error(`ssh-keygen exited ${code}`)),
      ),
    );
    await api(base, 'POST', '/api/v1/ssh-keys', token, { publicKey: fs.readFileSync(`${key}.pub`, 'utf8') });
    const org = (await api(base, 'GET', '/api/v1/orgs', token)).items[0];
    const fleet = await api(base, 'POST', '/api/v1/fleets', token, {
      orgId: org.id,
      name: 'bench-terminal',
      defaultDeviceType: 'generic-amd64',
    });
    // The device's shells start in a home of their own: no dotfiles of the machine's user in the measurement.
    const home = path.join(dir, 'device-home');
    fs.mkdirSync(home);
    const { uuid } = await startAgent(base, token, fleet.id, dir, [], { HOME: home });

    const ways = {
      'web terminal': await webTerminal(base, token, uuid),
      ssh: sshShell(server.sshPort, uuid, key),
    };
    type Way = keyof typeof ways;
    shells.push(...Object.values(ways));
    for (const shell of Object.values(ways)) await settle(shell);
    // Warm-up, not counted.
    for (let n = 0; n < 20; n++) for (const shell of Object.values(ways)) await roundTrip(shell, n);

    const times: Record<Way, number[]> = { 'web terminal': [], ssh: [] };
    for (let n = 100; n < 100 + lines; n++)
      for (const way of Object.keys(ways) as Way[]) times[way].push(await roundTrip(ways[way], n));

    const figure = (way: Way, p: number) => percentile(times[way], p);
    log(`\nround trip of a typed line to its output, ms (${lines} lines each way, interleaved)`);
    log('| path         |   p50 |   p90 |   p99 |');
    log('| ------------ | ----: | ----: | ----: |');
    for (const way of Object.keys(ways) as Way[])
      log(
        `| ${way.padEnd(12)} | ${figure(way, 50).toFixed(2).padStart(5)} | ${figure(way, 90).toFixed(2).padStart(5)} | ${figure(way, 99).toFixed(2).padStart(5)} |`,
      );
    const p50 = figure('web terminal', 50) / figure('ssh', 50);
    const p99 = figure('web terminal', 99) / figure('ssh', 99);
    log(
      `\nweb terminal / ssh: p50 ${ratio(figure('web terminal', 50), figure('ssh', 50))}, ` +
        `p99 ${ratio(figure('web terminal', 99), figure('ssh', 99))}; target ≤ 1×: ${p50 <= 1 && p99 <= 1 ? 'met' : 'not met'}`,
    );
    return 0;
  } catch (err) {
    log(`\nBENCH FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  } finally {
    for (const shell of shells) shell.close();
    killChildren();
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

process.exit(await main());
