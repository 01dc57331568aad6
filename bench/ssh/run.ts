/**
 * SSH gateway benchmark (issue 5). Starts a real fleetgate on 127.0.0.1 (SQLite) in a child process, a real
 * fleetgate-agent process, and two real OpenSSH `sshd`s from temporary configs: "the device's sshd", which the
 * agent may reach, and a plain jump host, the baseline. Both are reached with the same `ssh`, the same key, the
 * same cipher (aes128-gcm@openssh.com on both legs unless `--cipher` says otherwise) and no compression:
 *
 *   fleetgate:  ssh -J admin@127.0.0.1:<gateway> -p <device sshd> root@<uuid>
 *   openssh:    ssh -J root@127.0.0.1:<jump sshd> -p <device sshd> root@127.0.0.1
 *
 * and measures, interleaving the two so that other load on the machine falls on both:
 *
 *   (a) throughput: `head -c <mb> MB /dev/zero | ssh … 'wc -c'`, MB/s (10^6 bytes) from the start of `ssh` to
 *       its exit, set-up included; the median of `--rounds` runs each way. Target: ≥ 0.8× the jump host.
 *   (b) session set-up: `ssh … true`, p50 and p90 over `--sessions` runs each way.
 *
 * It also checks that the gateway process loaded ssh2's native crypto add-on (sshcrypto.node).
 *
 *   npm run bench:ssh -- [--mb 500] [--rounds 3] [--sessions 50] [--cpu-prof] [--cipher <name>|default]
 *
 * `--cpu-prof` writes a V8 CPU profile of the server into a directory that is kept. `--cipher` sets the cipher of
 * both legs (aes128-gcm@openssh.com unless told); `default` lets OpenSSH and each jump host agree on one, as a
 * person's `ssh` does (chacha20-poly1305@openssh.com with this OpenSSH).
 *
 * (a) also runs through a third jump host, a diagnostic that is not part of the comparison: relay.ts, the
 * gateway's ssh2 server bridged straight to a TCP socket, without the tunnel and the agent. And it reports the
 * CPU time of the programs at both ends (the same on every path) and the server's split between its main thread
 * and its other threads (mostly the garbage collector's helpers).
 *
 * It exits 0 whether the target is met or not, 1 when the bench itself fails (a transfer that loses bytes, an
 * `ssh` that fails, a process that never starts).
 */
import { fork, spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuSeconds } from '../lib/figures.ts';
import { accepts, freePort, killChildren, ROOT, sleep, startAgent, track, until } from '../lib/processes.ts';
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

/** The admin's SSH login: the local part of their e-mail, unique among users. */
const LOGIN = 'admin';
/** The cipher of both legs unless `--cipher` names another; `--cipher default` leaves the choice to OpenSSH. */
const DEFAULT_CIPHER = 'aes128-gcm@openssh.com';
const MB = 1_000_000;

const log = (line: string) => process.stdout.write(`${line}\n`);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command to its end; never rejects (the caller checks `code`). */
function run(file: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const start = performance.now();
    const child = track(spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('error', (err) => resolve({ code: null, stdout, stderr: String(err), ms: 0 }));
    child.once('close', (code) => resolve({ code, stdout, stderr, ms: performance.now() - start }));
  });
}

async function keygen(dir: string, name: string): Promise<string> {
  const file = path.join(dir, name);
  const made = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file]);
  if (made.code !== 0) throw new Error(`ssh-keygen: ${made.stderr}`);
  return file;
}

/** A real OpenSSH sshd from a temporary config, trusting `authorizedKeys`, on a free port. */
async function startSshd(dir: string, name: string, authorizedKeys: string) {
  const port = await freePort();
  const hostKey = await keygen(dir, `${name}_host_key`);
  const config = path.join(dir, `${name}_sshd_config`);
  fs.writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      `PidFile ${path.join(dir, `${name}.pid`)}`,
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'AllowTcpForwarding yes',
      'UseDNS no',
      'MaxStartups 100:30:200',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  fs.mkdirSync('/run/sshd', { recursive: true });
  const sshd = track(
    spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] }),
  );
  let stderr = '';
  sshd.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  sshd.once('exit', (code) => {
    if (code !== null && code !== 0) log(`sshd ${name} ended with code ${code}: ${stderr.trim()}`);
  });
  await until(`sshd ${name} to listen`, 10_000, () => accepts(port));
  return { port, pid: sshd.pid! };
}

/**
 * CPU time of a process's main thread and of its other threads, in seconds. In a Node process at work on a
 * transfer the other threads are mostly V8's helpers, marking and sweeping for the garbage collector
 * (the libuv pool has nothing to do on this path), so the second figure tells how much the collector costs.
 */
function threadSeconds(pid: number): { main: number; helpers: number } {
  let main = 0;
  let helpers = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // a thread that ended meanwhile
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const seconds = (Number(fields[11]) + Number(fields[12])) / 100;
    if (Number(tid) === pid) main += seconds;
    else helpers += seconds;
  }
  return { main, helpers };
}

/** The SSH gateway's protocol layer without the tunnel (relay.ts), in a process of its own; answers its port. */
function startRelay(hostKey: string, publicKey: string): Promise<{ port: number; pid: number }> {
  const file = path.join(path.dirname(fileURLToPath(import.meta.url)), 'relay.ts');
  // process.execArgv carries tsx's loader, so the child runs TypeScript too.
  const child = track(fork(file, [hostKey, publicKey], { execArgv: process.execArgv, stdio: 'inherit' }));
  return new Promise((resolve, reject) => {
    child.once('message', (message: { port: number }) => resolve({ port: message.port, pid: child.pid! }));
    child.once('exit', (code) => reject(new Error(`the ssh2 relay ended before listening (code ${code})`)));
  });
}

/** Whether the server process mapped ssh2's native crypto add-on, and the add-on's path. */
function nativeCrypto(pid: number): { loaded: boolean; file: string } {
  const maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8');
  const line = maps.split('\n').find((l) => l.endsWith('sshcrypto.node'));
  const serverRequire = createRequire(path.join(ROOT, 'packages/server/package.json'));
  const fallback = path.join(path.dirname(serverRequire.resolve('ssh2')), 'protocol/crypto/build/Release');
  return { loaded: line !== undefined, file: line?.split(/\s+/).pop() ?? `${fallback}/sshcrypto.node` };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      mb: { type: 'string', default: '500' },
      rounds: { type: 'string', default: '3' },
      sessions: { type: 'string', default: '50' },
      'cpu-prof': { type: 'boolean', default: false },
      cipher: { type: 'string', default: DEFAULT_CIPHER },
    },
  });
  const cipher = values.cipher;
  const mb = wholeNumber('mb', values.mb, 1);
  const rounds = wholeNumber('rounds', values.rounds, 1);
  const sessions = wholeNumber('sessions', values.sessions, 2);
  const sshVersion = (await run('ssh', ['-V'])).stderr.trim();
  log(
    `fleetgate SSH gateway benchmark: ${mb} MB × ${rounds} rounds, ${sessions} sessions; ${sshVersion}; ` +
      `Node ${process.versions.node}, ${os.cpus().length} cores, load average ${os.loadavg()[0]!.toFixed(2)}, ` +
      new Date().toISOString(),
  );

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-ssh-'));
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
    const cpuProfDir = values['cpu-prof']
      ? fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-ssh-prof-'))
      : undefined;
    server = await startServerProcess(flags, { cpuProfDir });
    if (cpuProfDir) log(`  CPU profile of the server (written when it stops): ${cpuProfDir}`);
    const base = `http://127.0.0.1:${flags.httpPort}`;
    const gatewayPort = server.sshPort;
    const session = await signInAsAdmin(base);

    // One key for everything: registered with fleetgate, and trusted by both sshds (as root).
    const key = await keygen(dir, 'id_bench');
    await api(base, 'POST', '/api/v1/ssh-keys', session, {
      publicKey: fs.readFileSync(`${key}.pub`, 'utf8'),
    });
    const authorizedKeys = path.join(dir, 'authorized_keys');
    fs.copyFileSync(`${key}.pub`, authorizedKeys);
    const device = await startSshd(dir, 'device', authorizedKeys);
    const devicePort = device.port;
    const jump = await startSshd(dir, 'jump', authorizedKeys);
    const jumpPort = jump.port;
    const relay = await startRelay(await keygen(dir, 'relay_host_key'), `${key}.pub`);

    const org = (await api(base, 'GET', '/api/v1/orgs', session)).items[0];
    const fleetBody = { orgId: org.id, name: 'bench-ssh', defaultDeviceType: 'generic-amd64' };
    const fleetId = (await api(base, 'POST', '/api/v1/fleets', session, fleetBody)).id as number;
    const { uuid, agent } = await startAgent(base, session, fleetId, dir, [devicePort]);
    const agentPid = agent.pid!;
    await api(base, 'PUT', `/api/v1/devices/${uuid}/allowed-ports`, session, { ports: [devicePort] });

    const crypto = nativeCrypto(server.pid);
    log(
      `  gateway (pid ${server.pid}) native ssh2 crypto add-on: ${crypto.loaded ? 'loaded' : 'NOT loaded'} (${crypto.file})`,
    );

    // OpenSSH hands `-F` on to the ssh it starts for the jump, not `-i`, `-c` or `-o`: the options of both
    // legs live in this file.
    const sshConfig = path.join(dir, 'ssh_config');
    fs.writeFileSync(
      sshConfig,
      [
        'Host *',
        '  StrictHostKeyChecking no',
        '  UserKnownHostsFile /dev/null',
        '  BatchMode yes',
        '  IdentitiesOnly yes',
        `  IdentityFile ${key}`,
        ...(cipher === 'default' ? [] : [`  Ciphers ${cipher}`]),
        '  Compression no',
        '  LogLevel ERROR',
        '',
      ].join('\n'),
    );
    const common = [
      '-F',
      sshConfig,
      ...(cipher === 'default' ? [] : ['-c', cipher]),
      '-o',
      'Compression=no',
      '-p',
      String(devicePort),
    ];
    const paths = {
      fleetgate: [...common, '-J', `${LOGIN}@127.0.0.1:${gatewayPort}`, `root@${uuid}`],
      openssh: [...common, '-J', `root@127.0.0.1:${jumpPort}`, 'root@127.0.0.1'],
      relay: [...common, '-J', `root@127.0.0.1:${relay.port}`, 'root@127.0.0.1'],
    };
    type Way = keyof typeof paths;
    /** The two paths compared; the ssh2 relay is a diagnostic row of the throughput part only. */
    const ways = ['fleetgate', 'openssh'] as const;
    const transferWays: Way[] = [...ways, 'relay'];

    const sshTrue = async (way: Way) => {
      const answer = await run('ssh', [...paths[way], 'true']);
      if (answer.code !== 0) throw new Error(`ssh … true (${way}) exited ${answer.code}: ${answer.stderr}`);
      return answer.ms;
    };
    const bytes = mb * MB;
    /**
     * One transfer; answers its wall time and the CPU time of the client side (`head`, `ssh` and the `ssh -W`
     * it starts for the jump, reaped by it), from the shell's `times` (its children's user and system time).
     */
    const stream = async (way: Way, count: number) => {
      const ssh = `ssh ${paths[way].map((a) => `'${a}'`).join(' ')}`;
      const command = `head -c ${count} /dev/zero | ${ssh} 'wc -c'; status=$?; times >&2; exit $status`;
      const answer = await run('sh', ['-c', command]);
      if (answer.code !== 0) throw new Error(`the transfer (${way}) exited ${answer.code}: ${answer.stderr}`);
      if (Number(answer.stdout.trim()) !== count)
        throw new Error(`the device received ${answer.stdout.trim()} bytes through ${way}, not ${count}`);
      // `times` prints the shell's own user and system time, then its children's: "0m1.230000s 0m0.450000s".
      const children = answer.stderr.trim().split('\n').pop() ?? '';
      const clientCpu = [...children.matchAll(/(\d+)m([\d.]+)s/g)].reduce(
        (sum, [, minutes, seconds]) => sum + Number(minutes) * 60 + Number(seconds),
        0,
      );
      return { ms: answer.ms, clientCpu };
    };

    // Warm-up, not counted: host keys, JIT, the agent's first streams.
    for (const way of transferWays) {
      await sshTrue(way);
      await stream(way, 16 * MB);
    }

    log(`\n(b) session set-up, ssh … true × ${sessions} each way, interleaved`);
    const setup: Record<(typeof ways)[number], number[]> = { fleetgate: [], openssh: [] };
    for (let i = 0; i < sessions; i++) for (const way of ways) setup[way].push(await sshTrue(way));

    log(`(a) ${mb} MB through ssh -J, ${rounds} rounds each way, interleaved (and through the ssh2 relay)`);
    const rates: Record<Way, number[]> = { fleetgate: [], openssh: [], relay: [] };
    // CPU of what sits between the client and the device's sshd: fleetgate's server and agent, the jump sshd
    // (with the per-connection processes it reaps), or the ssh2 relay.
    const relays: Record<Way, number[]> = {
      fleetgate: [server.pid, agentPid],
      openssh: [jump.pid],
      relay: [relay.pid],
    };
    const relayCpu: Record<Way, number> = { fleetgate: 0, openssh: 0, relay: 0 };
    // And at both ends, the same programs on every path: `head` + `ssh` + `ssh -W`, and the device's sshd (with
    // the session processes it reaps, `wc` among them).
    const clientCpu: Record<Way, number> = { fleetgate: 0, openssh: 0, relay: 0 };
    const deviceCpu: Record<Way, number> = { fleetgate: 0, openssh: 0, relay: 0 };
    // The server's own split: its main thread, and its other threads (mostly the garbage collector's helpers).
    const serverThreads = { main: 0, helpers: 0 };
    /** "main thread 1.20 + helper threads 0.40": the split of a Node process's CPU over one round. */
    const split = (before: { main: number; helpers: number }, after: { main: number; helpers: number }) =>
      `main thread ${(after.main - before.main).toFixed(2)} + helper threads ${(after.helpers - before.helpers).toFixed(2)}`;
    for (let i = 0; i < rounds; i++)
      for (const way of transferWays) {
        const cpuBefore = relays[way].map(cpuSeconds);
        const deviceBefore = cpuSeconds(device.pid);
        const serverBefore = threadSeconds(server.pid);
        const relayBefore = threadSeconds(relay.pid);
        const transfer = await stream(way, bytes);
        const rate = bytes / MB / (transfer.ms / 1000);
        // sshd reaps its connection's process just after the client leaves; give it a moment to be counted.
        await sleep(200);
        const each = relays[way].map((pid, k) => cpuSeconds(pid) - cpuBefore[k]!);
        const cpu = each.reduce((sum, seconds) => sum + seconds, 0);
        const deviceSeconds = cpuSeconds(device.pid) - deviceBefore;
        relayCpu[way] += cpu;
        clientCpu[way] += transfer.clientCpu;
        deviceCpu[way] += deviceSeconds;
        rates[way].push(rate);
        let parts: string;
        if (way === 'fleetgate') {
          const serverAfter = threadSeconds(server.pid);
          serverThreads.main += serverAfter.main - serverBefore.main;
          serverThreads.helpers += serverAfter.helpers - serverBefore.helpers;
          parts = `server ${each[0]!.toFixed(2)} s (${split(serverBefore, serverAfter)}) + agent ${each[1]!.toFixed(2)} s`;
        } else if (way === 'relay') parts = `ssh2 relay: ${split(relayBefore, threadSeconds(relay.pid))}`;
        else parts = 'jump sshd';
        log(
          `  round ${i + 1}, ${way}: ${rate.toFixed(0)} MB/s, CPU in between ${cpu.toFixed(2)} s (${parts}); ` +
            `client ${transfer.clientCpu.toFixed(2)} s, device sshd ${deviceSeconds.toFixed(2)} s`,
        );
      }
    const perGb = (seconds: number) => (seconds / ((rounds * bytes) / 1e9)).toFixed(2);
    const cpuPerGb = (way: Way) => perGb(relayCpu[way]);

    const median = (values: number[]) => percentile(values, 50);
    const throughputRatio = median(rates.fleetgate) / median(rates.openssh);
    const p50 = { fleetgate: median(setup.fleetgate), openssh: median(setup.openssh) };
    const p90 = { fleetgate: percentile(setup.fleetgate, 90), openssh: percentile(setup.openssh, 90) };

    log('\nResults (ratio: fleetgate ÷ OpenSSH jump host, same run)\n');
    log('| measure | fleetgate | OpenSSH jump host | ratio | target | met |');
    log('| --- | ---: | ---: | ---: | --- | --- |');
    log(
      `| ${mb} MB through ssh -J, median of ${rounds} (MB/s) | ${median(rates.fleetgate).toFixed(0)} | ` +
        `${median(rates.openssh).toFixed(0)} | ${ratio(median(rates.fleetgate), median(rates.openssh))} | ≥ 0.8× | ` +
        `${throughputRatio >= 0.8 ? 'yes' : '**no**'} |`,
    );
    log(
      `| all rounds (MB/s) | ${rates.fleetgate.map((r) => r.toFixed(0)).join(' / ')} | ` +
        `${rates.openssh.map((r) => r.toFixed(0)).join(' / ')} | — | — | — |`,
    );
    log(
      `| CPU between client and device sshd (s per GB) | ${cpuPerGb('fleetgate')} (server + agent) | ` +
        `${cpuPerGb('openssh')} (jump sshd) | ${ratio(relayCpu.fleetgate, relayCpu.openssh)} | — | — |`,
    );
    log(
      `| server's CPU: main thread + helper threads (s per GB) | ${perGb(serverThreads.main)} + ` +
        `${perGb(serverThreads.helpers)} | — | — | — | — |`,
    );
    log(
      `| CPU at the ends, same programs (s per GB) | client ${perGb(clientCpu.fleetgate)}, device sshd ` +
        `${perGb(deviceCpu.fleetgate)} | client ${perGb(clientCpu.openssh)}, device sshd ${perGb(deviceCpu.openssh)} ` +
        '| — | — | — |',
    );
    log(
      `| session set-up \`ssh … true\`, p50 (ms) | ${p50.fleetgate.toFixed(0)} | ${p50.openssh.toFixed(0)} | ` +
        `${ratio(p50.fleetgate, p50.openssh)} | — | — |`,
    );
    log(
      `| session set-up \`ssh … true\`, p90 (ms) | ${p90.fleetgate.toFixed(0)} | ${p90.openssh.toFixed(0)} | ` +
        `${ratio(p90.fleetgate, p90.openssh)} | — | — |`,
    );
    log(
      `\nDiagnostic, same run: the ssh2 relay (bench/ssh/relay.ts: the gateway's ssh2 server bridged straight to a ` +
        `TCP socket, no tunnel, no agent): ${median(rates.relay).toFixed(0)} MB/s median ` +
        `(${rates.relay.map((r) => r.toFixed(0)).join(' / ')}), ${ratio(median(rates.relay), median(rates.openssh))} ` +
        `of the jump host; CPU in between ${cpuPerGb('relay')} s per GB; at the ends: client ` +
        `${perGb(clientCpu.relay)}, device sshd ${perGb(deviceCpu.relay)} s per GB.`,
    );
    log(
      `\nnative ssh2 crypto in the gateway: ${crypto.loaded ? 'loaded' : 'NOT loaded'}; cipher ${cipher === 'default' ? "OpenSSH's choice" : cipher} on both legs; ` +
        `load average at the end: ${os
          .loadavg()
          .map((l) => l.toFixed(2))
          .join(', ')}`,
    );
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
