import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import type { Logger } from '../../infra/logging/index.ts';
import { type ClientRequest, ManagementConnection } from './management.ts';
import type { VpnInstancePlan } from './plan.ts';
import { openvpnServerArgs } from './server-config.ts';

/**
 * One supervised OpenVPN server process: fleetgate listens on the instance's management socket, starts
 * `openvpn` (which connects to it), and starts it again when it stops, after 1 s, then doubling up to 30 s while it
 * keeps failing (a run of a minute resets the delay). What its clients do is told to the owner (backend.ts).
 */

export interface InstanceOwner {
  request(instance: VpnInstance, request: ClientRequest): void;
  established(instance: VpnInstance, cid: number, env: Map<string, string>): void;
  disconnected(instance: VpnInstance, cid: number, env: Map<string, string>): void;
  /** The process stopped (or its management connection broke): every client it held is gone. */
  lost(instance: VpnInstance, why: string): void;
}

export interface InstanceSettings {
  openvpn: string;
  runDir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  log: Logger;
}

/** An OpenVPN instance that could not start: what OpenVPN said of it (its errors), and what to change. */
export class VpnStartError extends Error {
  constructor(id: number, why: string, log: readonly string[]) {
    const said = log.filter((line) => /\berror\b|failed|cannot|exiting/i.test(line)).slice(-4);
    const hint = said.some((line) => line.includes('Address already in use'))
      ? ': another program holds its port; choose other ports with FLEETGATE_VPN_BASE_PORT'
      : '';
    super(
      `OpenVPN instance ${id} ${why} as it started${hint}. OpenVPN said:\n  ${(said.length ? said : log.slice(-4)).join('\n  ')}`,
    );
    this.name = 'VpnStartError';
  }
}

const FIRST_RESTART_MS = 1000;
const MAX_RESTART_MS = 30_000;
/** A run this long counts as healthy: the next restart waits `FIRST_RESTART_MS` again. */
const HEALTHY_RUN_MS = 60_000;
/** OpenVPN log lines kept for `recentLog` (what a failed start said). */
const LOG_LINES_KEPT = 40;

export class VpnInstance {
  private child: ChildProcess | undefined;
  private management: ManagementConnection | undefined;
  private readonly server: net.Server;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartDelay = FIRST_RESTART_MS;
  private startedAt = 0;
  private stopping = false;
  private readonly recent: string[] = [];
  /** Set while `start` waits: the process ending before it is up fails the start at once. */
  private startFailed: ((why: string) => void) | undefined;
  /** Set while `start` waits: called once the process says it is up. */
  private startDone: (() => void) | undefined;
  /** The current process said `Initialization Sequence Completed`: it listens and takes clients. */
  private initialized = false;
  /** Times the process was started again after stopping on its own. */
  restarts = 0;
  readonly socketPath: string;
  readonly statusFile: string;

  constructor(
    readonly plan: VpnInstancePlan,
    private readonly settings: InstanceSettings,
    private readonly owner: InstanceOwner,
  ) {
    this.socketPath = path.join(settings.runDir, `management-${plan.id}.sock`);
    this.statusFile = path.join(settings.runDir, `status-${plan.id}.txt`);
    this.server = net.createServer((socket) => this.attach(socket));
  }

  get id(): number {
    return this.plan.id;
  }

  /** The process is up (listening) and its management connection open: it can take clients. */
  get ready(): boolean {
    return this.initialized && this.management?.open === true;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The last lines OpenVPN wrote (for errors people read). */
  recentLog(): string {
    return this.recent.join('\n');
  }

  /**
   * Listens on the management socket, then starts the process; resolves once it is up (it connected to the
   * socket and says it listens), rejects when it ends first (its port taken, a wrong setting) or after
   * `readyTimeoutMs`, with what it said.
   */
  async start(readyTimeoutMs = 8_000): Promise<void> {
    fs.rmSync(this.socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.socketPath, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    fs.chmodSync(this.socketPath, 0o600);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.startDone = undefined;
        this.startFailed = undefined;
        reject(
          new Error(
            `OpenVPN instance ${this.id} did not start within ${readyTimeoutMs / 1000} s. It said:\n${this.recentLog()}`,
          ),
        );
      }, readyTimeoutMs);
      this.startDone = () => {
        clearTimeout(timer);
        this.startDone = undefined;
        this.startFailed = undefined;
        resolve();
      };
      this.startFailed = (why) => {
        clearTimeout(timer);
        this.startDone = undefined;
        this.startFailed = undefined;
        reject(new VpnStartError(this.id, why, this.recent));
      };
      this.spawn();
    });
  }

  /** Refuses or lets in a client that asked (`ClientRequest`); no-op once the process is gone. */
  allow(cid: number, kid: number): void {
    void this.management?.allow(cid, kid);
  }

  deny(cid: number, kid: number, reason: string): void {
    void this.management?.deny(cid, kid, reason);
  }

  kill(cid: number, message: 'HALT' | 'RESTART'): void {
    void this.management?.kill(cid, message);
  }

  /** Stops the process for good (SIGTERM, then SIGKILL after 5 s) and the management socket. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    this.management?.close();
    await new Promise((resolve) => this.server.close(resolve));
    fs.rmSync(this.socketPath, { force: true });
  }

  private spawn(): void {
    const { settings, plan } = this;
    const args = openvpnServerArgs(
      plan,
      {
        caFile: settings.caFile,
        certFile: settings.certFile,
        keyFile: settings.keyFile,
        managementSocket: this.socketPath,
        statusFile: this.statusFile,
      },
      'tun',
    );
    this.startedAt = Date.now();
    this.initialized = false;
    const child = spawn(settings.openvpn, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    for (const stream of [child.stdout, child.stderr]) {
      readline.createInterface({ input: stream }).on('line', (line) => this.logLine(line));
    }
    child.on('error', (err) => {
      this.logLine(`could not start ${settings.openvpn}: ${err.message}`);
    });
    child.on('exit', (code, signal) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.management?.close();
      if (this.stopping) return;
      const why = signal ? `killed by ${signal}` : `exited with code ${code}`;
      if (this.startFailed) {
        this.startFailed(why);
        return;
      }
      settings.log.error(
        { instance: plan.id, code, signal, output: this.recentLog() },
        `OpenVPN instance ${plan.id} ${why}: starting it again`,
      );
      this.owner.lost(this, why);
      if (Date.now() - this.startedAt >= HEALTHY_RUN_MS) this.restartDelay = FIRST_RESTART_MS;
      this.restartTimer = setTimeout(() => {
        this.restarts++;
        this.spawn();
      }, this.restartDelay);
      this.restartDelay = Math.min(MAX_RESTART_MS, this.restartDelay * 2);
    });
  }

  private attach(socket: net.Socket): void {
    // One process, one management connection: a second one (a restart racing the old socket) replaces it.
    this.management?.close();
    const connection = new ManagementConnection(
      socket,
      {
        request: (request) => this.owner.request(this, request),
        established: (cid, env) => this.owner.established(this, cid, env),
        disconnected: (cid, env) => this.owner.disconnected(this, cid, env),
        closed: () => {
          if (this.management !== connection) return;
          this.management = undefined;
          // The process keeps running without its management connection only if it broke: restart it so
          // that no client stays in without fleetgate knowing.
          if (!this.stopping && this.child) this.child.kill('SIGTERM');
        },
      },
      (message) =>
        this.settings.log.error(
          { instance: this.id, message },
          'OpenVPN management: protocol error, restarting it',
        ),
    );
    this.management = connection;
    if (this.initialized) this.startDone?.();
  }

  private logLine(line: string): void {
    if (line.endsWith('Initialization Sequence Completed')) {
      this.initialized = true;
      if (this.management?.open) this.startDone?.();
    }
    this.recent.push(line);
    if (this.recent.length > LOG_LINES_KEPT) this.recent.shift();
    this.settings.log.debug({ instance: this.id }, line);
  }
}
