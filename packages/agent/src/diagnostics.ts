/**
 * Remote diagnostics (issue 16): a fixed, versioned set of read-only checks, run on the server's request over
 * the `diagnostics` named service (see @fleetgate/protocol's diagnostics.ts) and answered as one JSON report.
 *
 * Version 1 checks, each with its own timeout, all at once:
 *   disk, memory, load, time-sync, dns, tcp, agent, network-interfaces, systemd-failed-units, kernel-messages.
 *
 * Read-only: they read /proc, /sys and the file systems' statistics, resolve and connect to the server, and
 * run only `systemctl --failed`, `journalctl -k` and `dmesg` (without a shell, with a timeout and a bounded
 * output), never anything that changes the device. A check that cannot run here (no systemd, kernel log not
 * readable by the agent's user) says `unavailable` rather than failing.
 */
import { execFile } from 'node:child_process';
import dns from 'node:dns';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import {
  DIAGNOSTICS_VERSION,
  type DiagnosticsCheck,
  type DiagnosticsReport,
  type DiagnosticsStatus,
  type IncomingOpen,
  MAX_DIAGNOSTICS_REPORT,
  PROTOCOL_VERSION,
} from '@fleetgate/protocol';
import { request, type ServerEndpoint } from './http.ts';
import type { Logger } from './log.ts';

/** What the checks need to know about the agent and its server. */
export interface DiagnosticsContext {
  server: ServerEndpoint;
  agentVersion: string;
  /** The agent's data directory (its file system is checked beside `/`). */
  dataDir: string;
  /** The live tunnel: when it came up (epoch ms) and a ping over it; undefined when there is none. */
  tunnel?: (() => { connectedAt: number; ping(): Promise<number> } | undefined) | undefined;
  /** Where /proc and /sys are read; tests point it elsewhere. Default `/`. */
  root?: string;
}

export interface DiagnosticsOptions {
  /** Each check's timeout, in milliseconds. Default 5000 (DEFAULT_CHECK_TIMEOUT_MS). */
  checkTimeoutMs?: number;
  /** Only these checks (tests). Default: all of them. */
  only?: readonly string[];
  /** Largest report written, in bytes: the largest checks' data is dropped above it. Default 64 KiB. */
  maxReportBytes?: number;
}

/** A check's own verdict. */
interface CheckOutcome {
  status: DiagnosticsStatus;
  summary: string;
  data: Record<string, unknown>;
}

interface CheckDefinition {
  id: string;
  title: string;
  run(ctx: DiagnosticsContext, signal: AbortSignal): Promise<CheckOutcome>;
}

/** A check's timeout unless configured otherwise, in milliseconds. */
export const DEFAULT_CHECK_TIMEOUT_MS = 5000;
/** What an agent aims to write at most (a quarter of what the server accepts), in bytes. */
const DEFAULT_MAX_REPORT = 64 * 1024;
/** Kernel messages reported at most, the most recent ones. */
const KERNEL_MESSAGES = 50;
/** Longest line kept of a command's output or a kernel message, in characters. */
const MAX_LINE = 300;
/** Largest output read from a command, in bytes. */
const MAX_COMMAND_OUTPUT = 512 * 1024;

const GiB = 1024 ** 3;
const gib = (bytes: number) => `${(bytes / GiB).toFixed(1)} GiB`;
const percent = (part: number, whole: number) => (whole > 0 ? Math.round((part / whole) * 1000) / 10 : 0);

/** Runs a program without a shell: its stdout, or a rejection (missing program, exit status, timeout). */
function run(file: string, args: string[], signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        signal,
        maxBuffer: MAX_COMMAND_OUTPUT,
        encoding: 'utf8',
        env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C', SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' },
        windowsHide: true,
      },
      (error, stdout, stderr) => {
        if (error) reject(Object.assign(error, { stderr: String(stderr).trim().slice(0, MAX_LINE) }));
        else resolve(stdout);
      },
    );
  });
}

function rootPath(ctx: DiagnosticsContext, path: string): string {
  const root = (ctx.root ?? '/').replace(/\/$/, '');
  return `${root}${path}`;
}

function serverAddress(ctx: DiagnosticsContext): { host: string; port: number } {
  const url = new URL(ctx.server.url);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  return { host, port };
}

function hasSystemd(ctx: DiagnosticsContext): boolean {
  // sd_booted(3): systemd is PID 1 exactly when this directory exists.
  return fs.existsSync(rootPath(ctx, '/run/systemd/system'));
}

const clip = (line: string) => (line.length > MAX_LINE ? `${line.slice(0, MAX_LINE - 1)}…` : line);

// ─── The checks of version 1 ──────────────────────────────────────────────────────────────────────────────

const disk: CheckDefinition = {
  id: 'disk',
  title: 'Disk usage',
  async run(ctx) {
    const paths = [...new Set(['/', ctx.dataDir])];
    const seen = new Set<string>();
    const filesystems: Record<string, unknown>[] = [];
    let worst = 0;
    for (const path of paths) {
      const stats = await fs.promises.statfs(path);
      // The same file system seen twice: its size and inode count, which do not move while it is read.
      const key = `${stats.type}:${stats.bsize}:${stats.blocks}:${stats.files}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const total = stats.blocks * stats.bsize;
      const available = stats.bavail * stats.bsize;
      const used = total - stats.bfree * stats.bsize;
      // As df: used over what users may fill (used + available), not over the raw size.
      const usedPercent = percent(used, used + available);
      worst = Math.max(worst, usedPercent);
      filesystems.push({
        path,
        totalBytes: total,
        usedBytes: used,
        availableBytes: available,
        usedPercent,
        ...(stats.files > 0 ? { inodesUsedPercent: percent(stats.files - stats.ffree, stats.files) } : {}),
      });
    }
    const status = worst >= 98 ? 'failed' : worst >= 90 ? 'warning' : 'ok';
    const summary = filesystems
      .map((f) => `${f.path} ${f.usedPercent} % used (${gib(f.availableBytes as number)} free)`)
      .join('; ');
    return { status, summary, data: { filesystems } };
  },
};

const memory: CheckDefinition = {
  id: 'memory',
  title: 'Memory',
  async run(ctx) {
    const fields = new Map<string, number>();
    try {
      const text = await fs.promises.readFile(rootPath(ctx, '/proc/meminfo'), 'utf8');
      for (const match of text.matchAll(/^(\w+):\s+(\d+) kB$/gm))
        fields.set(match[1]!, Number(match[2]) * 1024);
    } catch {
      // Not Linux, or /proc not mounted: what Node knows.
    }
    const total = fields.get('MemTotal') ?? os.totalmem();
    const available = fields.get('MemAvailable') ?? os.freemem();
    const swapTotal = fields.get('SwapTotal') ?? 0;
    const swapFree = fields.get('SwapFree') ?? 0;
    const availablePercent = percent(available, total);
    const status = availablePercent < 5 ? 'failed' : availablePercent < 10 ? 'warning' : 'ok';
    return {
      status,
      summary: `${gib(available)} of ${gib(total)} available (${availablePercent} %)${
        swapTotal ? `, swap ${percent(swapTotal - swapFree, swapTotal)} % used` : ''
      }`,
      data: {
        totalBytes: total,
        availableBytes: available,
        availablePercent,
        swapTotalBytes: swapTotal,
        swapUsedBytes: swapTotal - swapFree,
      },
    };
  },
};

const load: CheckDefinition = {
  id: 'load',
  title: 'Load',
  async run() {
    const [one = 0, five = 0, fifteen = 0] = os.loadavg();
    const cpus = Math.max(1, os.availableParallelism());
    const perCpu = five / cpus;
    const status = perCpu >= 4 ? 'failed' : perCpu >= 2 ? 'warning' : 'ok';
    const round = (n: number) => Math.round(n * 100) / 100;
    return {
      status,
      summary: `load ${round(one)} ${round(five)} ${round(fifteen)} on ${cpus} CPU${cpus === 1 ? '' : 's'}, up ${formatUptime(os.uptime())}`,
      data: {
        load1: round(one),
        load5: round(five),
        load15: round(fifteen),
        cpus,
        uptimeSeconds: Math.round(os.uptime()),
      },
    };
  },
};

function formatUptime(seconds: number): string {
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  return days ? `${days} d ${hours} h` : hours ? `${hours} h ${minutes} min` : `${minutes} min`;
}

const timeSync: CheckDefinition = {
  id: 'time-sync',
  title: 'Time synchronization',
  async run(ctx, signal) {
    // The clock against the server's (its Date header, whole seconds: the request's midpoint is compared).
    const sentAt = Date.now();
    let serverTime = Number.NaN;
    let unreachable: string | undefined;
    try {
      const answer = await request(ctx.server, 'GET', '/healthz', { timeoutMs: DEFAULT_CHECK_TIMEOUT_MS });
      serverTime = Date.parse(String(answer.headers.date ?? ''));
    } catch (error) {
      unreachable = (error as Error).message;
    }
    const receivedAt = Date.now();
    let ntpSynchronized: boolean | undefined;
    if (hasSystemd(ctx)) {
      try {
        const value = await run('timedatectl', ['show', '--property=NTPSynchronized', '--value'], signal);
        ntpSynchronized = value.trim() === 'yes';
      } catch {
        // timedatectl missing or timedated not running: the offset alone decides.
      }
    }
    const data: Record<string, unknown> = {
      ...(ntpSynchronized === undefined ? {} : { ntpSynchronized }),
    };
    if (Number.isNaN(serverTime)) {
      return {
        status: ntpSynchronized === false ? 'warning' : 'unavailable',
        summary:
          `${unreachable ? `cannot ask the server its time: ${unreachable}` : "the server's answer carries no time"}${
            ntpSynchronized === false ? '; NTP not synchronized' : ''
          }`.slice(0, 1000),
        data,
      };
    }
    // The Date header is truncated to the second: the server's clock was somewhere in [date, date + 1 s).
    const offsetMs = Math.round(serverTime + 500 - (sentAt + receivedAt) / 2);
    data.offsetMs = offsetMs;
    data.roundTripMs = receivedAt - sentAt;
    const off = Math.abs(offsetMs);
    const status = off > 60_000 ? 'failed' : off > 5000 || ntpSynchronized === false ? 'warning' : 'ok';
    const direction = offsetMs > 0 ? 'behind' : 'ahead of';
    const clock =
      off <= 1500
        ? 'clock agrees with the server (±1 s)'
        : `clock ${(off / 1000).toFixed(1)} s ${direction} the server`;
    const ntp =
      ntpSynchronized === undefined ? '' : ntpSynchronized ? '; NTP synchronized' : '; NTP not synchronized';
    return { status, summary: `${clock}${ntp}`, data };
  },
};

const dnsCheck: CheckDefinition = {
  id: 'dns',
  title: "DNS: the server's name",
  async run(ctx) {
    const { host } = serverAddress(ctx);
    if (net.isIP(host)) {
      return {
        status: 'ok',
        summary: `the server is addressed by IP (${host}): no name to resolve`,
        data: { host },
      };
    }
    const startedAt = performance.now();
    try {
      const addresses = await dns.promises.lookup(host, { all: true });
      return {
        status: 'ok',
        summary: `${host} → ${addresses.map((a) => a.address).join(', ')}`,
        data: {
          host,
          addresses: addresses.slice(0, 16).map((a) => a.address),
          lookupMs: Math.round(performance.now() - startedAt),
        },
      };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      return { status: 'failed', summary: `${host} does not resolve: ${code}`, data: { host, error: code } };
    }
  },
};

const tcp: CheckDefinition = {
  id: 'tcp',
  title: 'TCP: the server',
  run(ctx, signal) {
    const { host, port } = serverAddress(ctx);
    const startedAt = performance.now();
    return new Promise((resolve) => {
      const socket = net.connect({ host, port });
      const done = (outcome: CheckOutcome) => {
        signal.removeEventListener('abort', onAbort);
        socket.destroy();
        resolve(outcome);
      };
      const onAbort = () => socket.destroy();
      signal.addEventListener('abort', onAbort);
      socket.once('connect', () => {
        const connectMs = Math.round(performance.now() - startedAt);
        done({
          status: 'ok',
          summary: `connected to ${host}:${port} in ${connectMs} ms (${socket.remoteAddress})`,
          data: { host, port, address: socket.remoteAddress, connectMs },
        });
      });
      socket.once('error', (error: NodeJS.ErrnoException) =>
        done({
          status: 'failed',
          summary: `cannot connect to ${host}:${port}: ${error.code ?? error.message}`,
          data: { host, port, error: error.code ?? error.message },
        }),
      );
    });
  },
};

const agent: CheckDefinition = {
  id: 'agent',
  title: 'The agent and its tunnel',
  async run(ctx) {
    const tunnel = ctx.tunnel?.();
    const base = {
      agentVersion: ctx.agentVersion,
      protocolVersion: PROTOCOL_VERSION,
      diagnosticsVersion: DIAGNOSTICS_VERSION,
      server: ctx.server.url,
      node: process.version,
      pid: process.pid,
      agentUptimeSeconds: Math.round(process.uptime()),
    };
    if (!tunnel) {
      // It answered over a tunnel, so this is a race with a reconnect: say what is known.
      return {
        status: 'warning',
        summary: `fleetgate-agent ${ctx.agentVersion}; tunnel reconnecting`,
        data: base,
      };
    }
    const rttMs = Math.round((await tunnel.ping()) * 10) / 10;
    const upSeconds = Math.round((Date.now() - tunnel.connectedAt) / 1000);
    return {
      status: rttMs > 2000 ? 'warning' : 'ok',
      summary: `fleetgate-agent ${ctx.agentVersion}, tunnel up ${formatUptime(upSeconds)}, ping ${rttMs} ms`,
      data: {
        ...base,
        connectedAt: new Date(tunnel.connectedAt).toISOString(),
        tunnelUpSeconds: upSeconds,
        rttMs,
      },
    };
  },
};

const networkInterfaces: CheckDefinition = {
  id: 'network-interfaces',
  title: 'Network interfaces',
  async run(ctx) {
    const interfaces = Object.entries(os.networkInterfaces())
      .slice(0, 64)
      .map(([name, addresses]) => {
        let state: string | undefined;
        try {
          state = fs.readFileSync(rootPath(ctx, `/sys/class/net/${name}/operstate`), 'utf8').trim();
        } catch {
          // Not Linux, or a name /sys does not know.
        }
        const list = addresses ?? [];
        return {
          name,
          ...(state ? { state } : {}),
          mac: list[0]?.mac ?? null,
          addresses: list
            .slice(0, 16)
            .map((a) => `${a.address}/${a.netmask ? cidrOf(a) : ''}`.replace(/\/$/, '')),
        };
      });
    const defaultRoute = await readDefaultRoute(ctx);
    const up = interfaces.filter((i) => i.name !== 'lo' && i.addresses.length > 0);
    const status = up.length === 0 ? 'warning' : 'ok';
    return {
      status,
      summary: `${up.length} interface${up.length === 1 ? '' : 's'} with addresses besides lo${
        defaultRoute
          ? `; default route via ${defaultRoute.gateway} (${defaultRoute.interface})`
          : '; no default route'
      }`,
      data: { interfaces, ...(defaultRoute ? { defaultRoute } : {}) },
    };
  },
};

function cidrOf(address: os.NetworkInterfaceInfo): string {
  return address.cidr?.split('/')[1] ?? '';
}

/** The IPv4 default route from /proc/net/route (hex, little-endian). */
async function readDefaultRoute(
  ctx: DiagnosticsContext,
): Promise<{ interface: string; gateway: string } | undefined> {
  try {
    const text = await fs.promises.readFile(rootPath(ctx, '/proc/net/route'), 'utf8');
    for (const line of text.split('\n').slice(1)) {
      const [iface, destination, gateway] = line.trim().split(/\s+/);
      if (destination === '00000000' && iface && gateway && /^[0-9A-F]{8}$/i.test(gateway)) {
        const bytes = Buffer.from(gateway, 'hex').reverse();
        return { interface: iface, gateway: [...bytes].join('.') };
      }
    }
  } catch {
    // No /proc/net/route.
  }
  return undefined;
}

const failedUnits: CheckDefinition = {
  id: 'systemd-failed-units',
  title: 'Failed systemd units',
  async run(ctx, signal) {
    if (!hasSystemd(ctx)) return { status: 'unavailable', summary: 'systemd does not run here', data: {} };
    const text = await run(
      'systemctl',
      ['list-units', '--failed', '--plain', '--no-legend', '--no-pager', '--full'],
      signal,
    );
    const units = text
      .split('\n')
      .map((line) => line.trim())
      .filter(Boolean)
      .slice(0, 100)
      .map((line) => {
        const [unit = '', loadState = '', active = '', sub = '', ...description] = line.split(/\s+/);
        return { unit: clip(unit), load: loadState, active, sub, description: clip(description.join(' ')) };
      });
    return {
      status: units.length ? 'warning' : 'ok',
      summary: units.length
        ? `${units.length} failed: ${units
            .map((u) => u.unit)
            .join(', ')
            .slice(0, 900)}`
        : 'no failed units',
      data: { units },
    };
  },
};

/** syslog priorities, as journald numbers them. */
const priorities = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'];

const kernelMessages: CheckDefinition = {
  id: 'kernel-messages',
  title: 'Recent kernel messages',
  async run(ctx, signal) {
    let messages: { time: string | null; priority: string; message: string }[] | undefined;
    let source = '';
    const failures: string[] = [];
    if (hasSystemd(ctx)) {
      try {
        const text = await run(
          'journalctl',
          [
            '--dmesg',
            '--boot',
            '--priority=warning',
            `--lines=${KERNEL_MESSAGES}`,
            '--output=json',
            '--no-pager',
            '--quiet',
          ],
          signal,
        );
        messages = text
          .split('\n')
          .filter(Boolean)
          .flatMap((line) => {
            try {
              const entry = JSON.parse(line) as {
                MESSAGE?: unknown;
                PRIORITY?: unknown;
                __REALTIME_TIMESTAMP?: unknown;
              };
              const micros = Number(entry.__REALTIME_TIMESTAMP);
              return [
                {
                  time: Number.isFinite(micros) ? new Date(micros / 1000).toISOString() : null,
                  priority: priorities[Number(entry.PRIORITY)] ?? 'warning',
                  message: clip(typeof entry.MESSAGE === 'string' ? entry.MESSAGE : '(binary message)'),
                },
              ];
            } catch {
              return [];
            }
          });
        source = 'journalctl -k';
      } catch (error) {
        failures.push(`journalctl: ${commandError(error)}`);
      }
    }
    if (messages === undefined) {
      try {
        const text = await run(
          'dmesg',
          ['--decode', '--level=emerg,alert,crit,err,warn', '--time-format=iso'],
          signal,
        );
        messages = text
          .split('\n')
          .filter(Boolean)
          .slice(-KERNEL_MESSAGES)
          .map((line) => {
            // "kern  :err   : 2026-12-06T23:01:03,123456+00:00 message"
            const match = /^\s*\w+\s*:\s*(\w+)\s*:\s*(\S+)\s(.*)$/.exec(line);
            return match
              ? {
                  time: match[2]!.replace(',', '.'),
                  priority: match[1] === 'warn' ? 'warning' : match[1]!,
                  message: clip(match[3]!),
                }
              : { time: null, priority: 'warning', message: clip(line) };
          });
        source = 'dmesg';
      } catch (error) {
        failures.push(`dmesg: ${commandError(error)}`);
      }
    }
    if (messages === undefined) {
      return {
        status: 'unavailable',
        summary: `the kernel log is not readable by the agent: ${failures.join('; ')}`.slice(0, 1000),
        data: {},
      };
    }
    const errors = messages.filter((m) => priorities.indexOf(m.priority) <= priorities.indexOf('err'));
    return {
      status: errors.length ? 'warning' : 'ok',
      summary: `${messages.length} warning${messages.length === 1 ? '' : 's'} or worse this boot${
        errors.length
          ? `, ${errors.length} error${errors.length === 1 ? '' : 's'}; latest: ${errors.at(-1)!.message}`
          : ''
      }`.slice(0, 1000),
      data: { source, messages },
    };
  },
};

function commandError(error: unknown): string {
  const e = error as NodeJS.ErrnoException & { stderr?: string };
  if (e.code === 'ENOENT') return 'not installed';
  return (e.stderr || e.message || String(error)).split('\n')[0]!.slice(0, 200);
}

/** The checks of `DIAGNOSTICS_VERSION`, in the order they are reported. */
export const diagnosticsChecks: readonly CheckDefinition[] = [
  disk,
  memory,
  load,
  timeSync,
  dnsCheck,
  tcp,
  agent,
  networkInterfaces,
  failedUnits,
  kernelMessages,
];

/** Runs one check under its timeout; whatever goes wrong becomes its result, never a rejection. */
async function runCheck(
  check: CheckDefinition,
  ctx: DiagnosticsContext,
  timeoutMs: number,
  outer: AbortSignal | undefined,
): Promise<DiagnosticsCheck> {
  const startedAt = performance.now();
  const abort = new AbortController();
  const onOuterAbort = () => abort.abort();
  outer?.addEventListener('abort', onOuterAbort);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<CheckOutcome>((resolve) => {
    timer = setTimeout(() => {
      abort.abort();
      resolve({ status: 'timed_out', summary: `no result within ${timeoutMs} ms`, data: {} });
    }, timeoutMs);
  });
  let outcome: CheckOutcome;
  try {
    outcome = await Promise.race([check.run(ctx, abort.signal), timedOut]);
  } catch (error) {
    outcome = {
      status: 'failed',
      summary: `the check could not run: ${(error as Error).message ?? String(error)}`.slice(0, 1000),
      data: {},
    };
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener('abort', onOuterAbort);
  }
  return {
    id: check.id,
    title: check.title,
    status: outcome.status,
    summary: outcome.summary.slice(0, 1024),
    durationMs: Math.round(performance.now() - startedAt),
    data: outcome.data,
  };
}

/**
 * Runs every check at once, each under its own timeout, and answers the report: at most
 * `options.maxReportBytes` of JSON (the largest checks' data is replaced by `{truncated: true}` above it).
 */
export async function runDiagnostics(
  ctx: DiagnosticsContext,
  options: DiagnosticsOptions = {},
  signal?: AbortSignal,
): Promise<DiagnosticsReport> {
  const timeoutMs = options.checkTimeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  const checks = diagnosticsChecks.filter((c) => !options.only || options.only.includes(c.id));
  const results = await Promise.all(checks.map((check) => runCheck(check, ctx, timeoutMs, signal)));
  const report: DiagnosticsReport = {
    version: DIAGNOSTICS_VERSION,
    agentVersion: ctx.agentVersion.slice(0, 64),
    checks: results,
  };
  return bounded(report, Math.min(options.maxReportBytes ?? DEFAULT_MAX_REPORT, MAX_DIAGNOSTICS_REPORT));
}

/** The report within `maxBytes` of JSON: the largest checks' data dropped first. */
export function bounded(report: DiagnosticsReport, maxBytes: number): DiagnosticsReport {
  const size = (value: unknown) => Buffer.byteLength(JSON.stringify(value));
  if (size(report) <= maxBytes) return report;
  const checks = report.checks.map((check) => ({ ...check }));
  const bySize = [...checks].sort((a, b) => size(b.data) - size(a.data));
  for (const check of bySize) {
    check.data = { truncated: true };
    if (size({ ...report, checks }) <= maxBytes) break;
  }
  return { ...report, checks };
}

/**
 * Answers an OPEN of the diagnostics service: accepts, runs the checks, writes the report and ends the stream.
 * The checks stop when the server gives up on the stream (it closes or resets it).
 */
export function handleDiagnosticsStream(
  open: IncomingOpen,
  ctx: DiagnosticsContext,
  options: DiagnosticsOptions & { log: Logger },
): void {
  const stream = open.accept();
  const abort = new AbortController();
  stream.once('close', () => abort.abort());
  stream.on('error', () => {});
  // The server sends nothing; whatever comes is read and dropped so credit flows.
  stream.resume();
  runDiagnostics(ctx, options, abort.signal).then(
    (report) => {
      if (!stream.destroyed) stream.end(JSON.stringify(report));
    },
    (error: unknown) => {
      options.log.error('diagnostics failed', { error });
      stream.destroy(error as Error);
    },
  );
}
