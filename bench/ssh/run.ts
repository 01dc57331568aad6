/**
 * SSH gateway benchmark (issue 5). Starts a real fleetgate on 127.0.0.1 (SQLite) in a child process, a real
 * fleetgate-agent process, and two real OpenSSH `sshd`s from temporary configs: "the device's sshd", which the
 * agent may reach, and a plain jump host, the baseline. Both are reached with the same `ssh`, the same key, the
 * same cipher (aes128-gcm@openssh.com on both legs) and no compression:
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
 *   npm run bench:ssh -- [--mb 500] [--rounds 3] [--sessions 50] [--cpu-prof]
 *
 * `--cpu-prof` writes a V8 CPU profile of the server into a directory that is kept.
 *
 * It exits 0 whether the target is met or not, 1 when the bench itself fails (a transfer that loses bytes, an
 * `ssh` that fails, a process that never starts).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { accepts, freePort, killChildren, ROOT, sleep, startAgent, track, until } from '../lib/processes.ts';
import {
  api,
  type Flags,
  ratio,
  type ServerProcess,
  startServerProcess,
  wholeNumber,
} from '../lib/server-process.ts';

const ADMIN_EMAIL = 'admin@bench.fleetgate.test';
const ADMIN_PASSWORD = 'bench-password-not-secret';
/** The admin's SSH login: the local part of their e-mail, unique among users. */
const LOGIN = 'admin';
const CIPHER = 'aes128-gcm@openssh.com';
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
 * CPU time of a process and of its children it has reaped (sshd's per-connection processes), in seconds:
 * utime + stime + cutime + cstime of /proc/<pid>/stat, at Linux's 100 ticks per second.
 */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14–17 of proc(5), counted from the state (field 3) at index 0.
  return [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0) / 100;
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
    },
  });
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
    const { token: session } = await api(base, 'POST', '/api/v1/auth/login', undefined, {
      email: ADMIN_EMAIL,
      password: ADMIN_PASSWORD,
    });

    // One key for everything: registered with fleetgate, and trusted by both sshds (as root).
    const key = await keygen(dir, 'id_bench');
    await api(base, 'POST', '/api/v1/ssh-keys', session, {
      publicKey: fs.readFileSync(`${key}.pub`, 'utf8'),
    });
    const authorizedKeys = path.join(dir, 'authorized_keys');
    fs.copyFileSync(`${key}.pub`, authorizedKeys);
    const { port: devicePort } = await startSshd(dir, 'device', authorizedKeys);
    const jump = await startSshd(dir, 'jump', authorizedKeys);
    const jumpPort = jump.port;

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
        `  Ciphers ${CIPHER}`,
        '  Compression no',
        '  LogLevel ERROR',
        '',
      ].join('\n'),
    );
    const common = ['-F', sshConfig, '-c', CIPHER, '-o', 'Compression=no', '-p', String(devicePort)];
    const paths = {
      fleetgate: [...common, '-J', `${LOGIN}@127.0.0.1:${gatewayPort}`, `root@${uuid}`],
      openssh: [...common, '-J', `root@127.0.0.1:${jumpPort}`, 'root@127.0.0.1'],
    };
    type Way = keyof typeof paths;
    const ways: Way[] = ['fleetgate', 'openssh'];

    const sshTrue = async (way: Way) => {
      const answer = await run('ssh', [...paths[way], 'true']);
      if (answer.code !== 0) throw new Error(`ssh … true (${way}) exited ${answer.code}: ${answer.stderr}`);
      return answer.ms;
    };
    const bytes = mb * MB;
    const stream = async (way: Way, count: number) => {
      const command = `head -c ${count} /dev/zero | ssh ${paths[way].map((a) => `'${a}'`).join(' ')} 'wc -c'`;
      const answer = await run('sh', ['-c', command]);
      if (answer.code !== 0) throw new Error(`the transfer (${way}) exited ${answer.code}: ${answer.stderr}`);
      if (Number(answer.stdout.trim()) !== count)
        throw new Error(`the device received ${answer.stdout.trim()} bytes through ${way}, not ${count}`);
      return answer.ms;
    };

    // Warm-up, not counted: host keys, JIT, the agent's first streams.
    for (const way of ways) {
      await sshTrue(way);
      await stream(way, 16 * MB);
    }

    log(`\n(b) session set-up, ssh … true × ${sessions} each way, interleaved`);
    const setup: Record<Way, number[]> = { fleetgate: [], openssh: [] };
    for (let i = 0; i < sessions; i++) for (const way of ways) setup[way].push(await sshTrue(way));

    log(`(a) ${mb} MB through ssh -J, ${rounds} rounds each way, interleaved`);
    const rates: Record<Way, number[]> = { fleetgate: [], openssh: [] };
    // CPU of what sits between the client and the device's sshd: fleetgate's server and agent, or the jump sshd.
    const relays: Record<Way, number[]> = { fleetgate: [server.pid, agentPid], openssh: [jump.pid] };
    const relayCpu: Record<Way, number> = { fleetgate: 0, openssh: 0 };
    for (let i = 0; i < rounds; i++)
      for (const way of ways) {
        const cpuBefore = relays[way].map(cpuSeconds);
        const rate = bytes / MB / ((await stream(way, bytes)) / 1000);
        // sshd reaps its connection's process just after the client leaves; give it a moment to be counted.
        await sleep(200);
        const each = relays[way].map((pid, k) => cpuSeconds(pid) - cpuBefore[k]!);
        const cpu = each.reduce((sum, seconds) => sum + seconds, 0);
        relayCpu[way] += cpu;
        rates[way].push(rate);
        const parts =
          way === 'fleetgate'
            ? `server ${each[0]!.toFixed(2)} s + agent ${each[1]!.toFixed(2)} s`
            : 'jump sshd';
        log(
          `  round ${i + 1}, ${way}: ${rate.toFixed(0)} MB/s, CPU in between ${cpu.toFixed(2)} s (${parts})`,
        );
      }
    const cpuPerGb = (way: Way) => (relayCpu[way] / ((rounds * bytes) / 1e9)).toFixed(2);

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
      `| session set-up \`ssh … true\`, p50 (ms) | ${p50.fleetgate.toFixed(0)} | ${p50.openssh.toFixed(0)} | ` +
        `${ratio(p50.fleetgate, p50.openssh)} | — | — |`,
    );
    log(
      `| session set-up \`ssh … true\`, p90 (ms) | ${p90.fleetgate.toFixed(0)} | ${p90.openssh.toFixed(0)} | ` +
        `${ratio(p90.fleetgate, p90.openssh)} | — | — |`,
    );
    log(
      `\nnative ssh2 crypto in the gateway: ${crypto.loaded ? 'loaded' : 'NOT loaded'}; cipher ${CIPHER} on both legs; ` +
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
