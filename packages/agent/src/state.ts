/**
 * State reports: what the device tells the server about itself (the `state-report` control message).
 *
 * Sent right after the hello, whenever something a person would care about changed (checked every
 * `checkIntervalMs`), and at least every `maxIntervalMs` so the gauges (CPU, memory, uptime) stay fresh.
 * "Changed" means the identity-like fields (hostname, OS, kernel, agent version, IP addresses) or a
 * jump in disk use or temperature — not CPU or memory, which move all the time and would turn "on change"
 * into "every check".
 */
import fs from 'node:fs';
import os from 'node:os';
import type { AgentMessage } from '@fleetgate/protocol';

export type StateReport = Extract<AgentMessage, { type: 'state-report' }>;

/** Reads the machine's state. Keeps the previous CPU sample, so CPU % covers the time between reports. */
export class StateCollector {
  private lastCpu: { idle: number; total: number } | null = null;

  constructor(
    private readonly agentVersion: string,
    /** Where /etc/os-release, /proc/meminfo and /sys/class/thermal are read; tests point it elsewhere. */
    private readonly root = '/',
  ) {}

  collect(): StateReport {
    const memory = this.memory();
    const disk = this.disk();
    const temperature = this.temperature();
    const cpuPercent = this.cpuPercent();
    return {
      type: 'state-report',
      hostname: os.hostname().slice(0, 253),
      os: this.osName().slice(0, 256),
      kernel: `${os.type()} ${os.release()}`.slice(0, 256),
      agentVersion: this.agentVersion.slice(0, 64),
      uptimeSeconds: Math.max(0, Math.round(os.uptime())),
      ...(cpuPercent === undefined ? {} : { cpuPercent }),
      ...(memory ? { memory } : {}),
      ...(disk ? { disk } : {}),
      ...(temperature === undefined ? {} : { temperatureCelsius: temperature }),
      ipAddresses: ipAddresses(),
    };
  }

  private path(...parts: string[]): string {
    return [this.root.replace(/\/$/, ''), ...parts].join('/');
  }

  /** PRETTY_NAME from os-release, e.g. "Debian GNU/Linux 12 (bookworm)". */
  private osName(): string {
    try {
      const text = fs.readFileSync(this.path('etc', 'os-release'), 'utf8');
      const match = /^PRETTY_NAME=(.*)$/m.exec(text);
      if (match?.[1]) return match[1].trim().replace(/^(["'])(.*)\1$/, '$2');
    } catch {
      // No os-release (a container, a BSD): fall through to what Node knows.
    }
    return `${os.type()} ${os.release()}`;
  }

  /** CPU busy % since the previous call (since boot on the first). */
  private cpuPercent(): number | undefined {
    const cpus = os.cpus();
    if (cpus.length === 0) return undefined;
    let idle = 0;
    let total = 0;
    for (const cpu of cpus) {
      const t = cpu.times;
      idle += t.idle;
      total += t.user + t.nice + t.sys + t.idle + t.irq;
    }
    const previous = this.lastCpu ?? { idle: 0, total: 0 };
    this.lastCpu = { idle, total };
    const spent = total - previous.total;
    if (spent <= 0) return undefined;
    const percent = 100 * (1 - (idle - previous.idle) / spent);
    return Math.round(Math.min(100, Math.max(0, percent)) * 10) / 10;
  }

  /** Used = total - MemAvailable (what the kernel could hand out without swapping), not total - free. */
  private memory(): StateReport['memory'] {
    const totalBytes = os.totalmem();
    let availableBytes = os.freemem();
    try {
      const match = /^MemAvailable:\s+(\d+) kB$/m.exec(fs.readFileSync(this.path('proc', 'meminfo'), 'utf8'));
      if (match?.[1]) availableBytes = Number(match[1]) * 1024;
    } catch {
      // Not Linux: os.freemem() is the best there is.
    }
    return { totalBytes, usedBytes: Math.max(0, totalBytes - availableBytes) };
  }

  private disk(): StateReport['disk'] {
    try {
      const stats = fs.statfsSync(this.root);
      const totalBytes = stats.blocks * stats.bsize;
      return { totalBytes, usedBytes: Math.max(0, (stats.blocks - stats.bfree) * stats.bsize) };
    } catch {
      return undefined;
    }
  }

  /** The hottest thermal zone, in °C; undefined on machines without one. */
  private temperature(): number | undefined {
    const dir = this.path('sys', 'class', 'thermal');
    let hottest: number | undefined;
    try {
      for (const zone of fs.readdirSync(dir)) {
        if (!zone.startsWith('thermal_zone')) continue;
        try {
          const milli = Number(fs.readFileSync(`${dir}/${zone}/temp`, 'utf8').trim());
          // Some drivers report -273 °C or absurd values for absent sensors: ignore them.
          if (Number.isFinite(milli) && milli > -50_000 && milli < 200_000) {
            const celsius = Math.round(milli / 100) / 10;
            hottest = hottest === undefined ? celsius : Math.max(hottest, celsius);
          }
        } catch {
          // A zone without a readable temperature.
        }
      }
    } catch {
      return undefined;
    }
    return hottest;
  }
}

/** Non-loopback addresses, IPv4 first, at most 64 (the message's limit). */
export function ipAddresses(): string[] {
  const addresses: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) {
    for (const address of list ?? []) {
      if (!address.internal) addresses.push(address.address);
    }
  }
  return addresses.sort((a, b) => Number(a.includes(':')) - Number(b.includes(':'))).slice(0, 64);
}

/** Whether `next` differs from `previous` in a way worth an immediate report (see the module comment). */
export function stateChanged(previous: StateReport | null, next: StateReport): boolean {
  if (!previous) return true;
  if (
    previous.hostname !== next.hostname ||
    previous.os !== next.os ||
    previous.kernel !== next.kernel ||
    previous.agentVersion !== next.agentVersion ||
    previous.ipAddresses.join(',') !== next.ipAddresses.join(',')
  ) {
    return true;
  }
  // A reboot: uptime went backwards.
  if (next.uptimeSeconds < previous.uptimeSeconds) return true;
  if (previous.disk && next.disk && previous.disk.totalBytes > 0) {
    const share = (d: { usedBytes: number; totalBytes: number }) => d.usedBytes / d.totalBytes;
    if (Math.abs(share(previous.disk) - share(next.disk)) >= 0.05) return true;
  }
  if (previous.temperatureCelsius !== undefined && next.temperatureCelsius !== undefined) {
    if (Math.abs(previous.temperatureCelsius - next.temperatureCelsius) >= 10) return true;
  }
  return false;
}
