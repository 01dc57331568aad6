/**
 * The agent core: enrolls if needed, keeps the tunnel, and serves what comes through it — port streams,
 * exec, variables — while reporting the device's state. Takes typed options (usually from config.ts) and
 * never reads the environment (DESIGN.md section 9): the CLI passes what the process has.
 */
import fs from 'node:fs';
import { DIAGNOSTICS_SERVICE, type IncomingOpen, StreamErrorCode } from '@fleetgate/protocol';
import type { AgentConfig } from './config.ts';
import type { Credentials } from './credentials.ts';
import { handleDiagnosticsStream } from './diagnostics.ts';
import { authenticatorFor, type DeviceAuthenticator, ensureEnrolled } from './enroll.ts';
import { handleExecStream, handleServiceStream } from './exec.ts';
import { handleFileStream } from './files.ts';
import type { ServerEndpoint } from './http.ts';
import { type Logger, silentLogger } from './log.ts';
import { StateCollector, type StateReport, stateChanged } from './state.ts';
import { handlePortStream } from './streams.ts';
import { type AgentMultiplexer, TunnelClient, type TunnelStopReason } from './tunnel.ts';
import { VariablesApplier } from './variables.ts';

export interface AgentOptions extends AgentConfig {
  /** The agent's version, reported to the server. */
  agentVersion: string;
  /** Environment for exec'd processes and the variables hook. Default: empty. */
  baseEnv?: NodeJS.ProcessEnv;
  log?: Logger;
  /** Random numbers for backoff jitter. Default `Math.random`. */
  random?: () => number;
  /** Receive window per stream, in bytes. Default: the multiplexer's. */
  window?: number;
  /** Where the state collector reads /etc, /proc and /sys. Default `/`. */
  stateRoot?: string;
}

/** Reads the CA file of the configuration, if any, into the endpoint the HTTP and WebSocket clients use. */
export function serverEndpointOf(options: Pick<AgentConfig, 'serverUrl' | 'caFile'>): ServerEndpoint {
  return { url: options.serverUrl, ...(options.caFile ? { ca: fs.readFileSync(options.caFile) } : {}) };
}

export class Agent {
  readonly log: Logger;
  private readonly server: ServerEndpoint;
  private readonly abort = new AbortController();
  private tunnel: TunnelClient | null = null;
  private readonly state: StateCollector;
  private readonly variables: VariablesApplier;
  private credentials: Credentials | null = null;
  /** When the current tunnel connection came up (epoch ms), for diagnostics. */
  private connectedAt = 0;

  constructor(private readonly options: AgentOptions) {
    this.log = options.log ?? silentLogger;
    this.server = serverEndpointOf(options);
    this.state = new StateCollector(options.agentVersion, options.stateRoot);
    this.variables = new VariablesApplier({
      envFile: options.variables.envFile,
      ...(options.variables.hook ? { hook: options.variables.hook } : {}),
      hookTimeoutMs: options.variables.hookTimeoutMs,
      hookEnv: options.baseEnv ?? {},
      log: this.log,
    });
  }

  /** The tunnel client once enrolled (for status and tests). */
  get tunnelClient(): TunnelClient | null {
    return this.tunnel;
  }

  /** Enrolls (if the device has no credentials yet) and answers the credentials. */
  async enroll(): Promise<Credentials> {
    this.credentials ??= await ensureEnrolled({
      server: this.server,
      dataDir: this.options.dataDir,
      deviceType: this.options.deviceType,
      ...(this.options.name ? { name: this.options.name } : {}),
      ...(this.options.enrollment ? { enrollment: this.options.enrollment } : {}),
      agentVersion: this.options.agentVersion,
      osVersion: this.state.collect().os,
      backoff: this.options.backoff,
      log: this.log,
      signal: this.abort.signal,
    });
    return this.credentials;
  }

  /** The authenticator for the stored credentials (after `enroll`). */
  authenticator(credentials: Credentials): DeviceAuthenticator {
    return authenticatorFor(credentials, {
      server: this.server,
      backoff: this.options.backoff,
      log: this.log,
    });
  }

  /** Enrolls, then keeps the tunnel until `stop()` or decommissioning. */
  async run(): Promise<TunnelStopReason> {
    const credentials = await this.enroll();
    if (this.abort.signal.aborted) return 'stopped';
    const tunnel = new TunnelClient({
      server: this.server,
      authenticator: this.authenticator(credentials),
      agentVersion: this.options.agentVersion,
      backoff: { ...this.options.backoff, ...(this.options.random ? { random: this.options.random } : {}) },
      liveness: this.options.liveness,
      log: this.log,
      ...(this.options.window ? { window: this.options.window } : {}),
      onStream: (open) => this.serveStream(open),
      onControl: (message, mux) => {
        switch (message.type) {
          case 'variables':
            this.applyVariables(message.revision, message.variables, mux).catch((error: unknown) =>
              this.log.error('applying variables failed', { error }),
            );
            return;
          default:
            return assertNever(message.type);
        }
      },
    });
    this.tunnel = tunnel;
    tunnel.on('connected', (mux: AgentMultiplexer) => {
      this.connectedAt = Date.now();
      this.reportStateWhileConnected(mux);
    });
    return tunnel.start();
  }

  async stop(): Promise<void> {
    this.abort.abort(new Error('the agent is stopping'));
    await this.tunnel?.stop();
  }

  private serveStream(open: IncomingOpen): void {
    const target = open.target;
    if ('port' in target) {
      handlePortStream(open, target, {
        allowedPorts: this.options.allowedPorts,
        allowedHosts: this.options.allowedHosts,
        connectTimeoutMs: this.options.connectTimeoutMs,
        log: this.log,
      });
      return;
    }
    // Read-only checks: served whether or not exec is enabled (people who may not run commands may run them).
    if ('service' in target && target.service === DIAGNOSTICS_SERVICE) {
      this.serveDiagnostics(open);
      return;
    }
    const execOptions = { baseEnv: this.options.baseEnv ?? {}, log: this.log };
    if (!this.options.exec.enabled) {
      // File transfer too: writing any file is as strong as a shell.
      open.reject(
        StreamErrorCode.notAllowed,
        'file' in target
          ? "file transfer is disabled on this device: its agent's exec service is off (exec.enabled)"
          : 'exec is disabled on this device',
      );
      return;
    }
    if ('exec' in target) handleExecStream(open, target.exec, execOptions);
    else if ('file' in target) handleFileStream(open, target.file, { log: this.log });
    else handleServiceStream(open, target.service, execOptions);
  }

  private serveDiagnostics(open: IncomingOpen): void {
    handleDiagnosticsStream(
      open,
      {
        server: this.server,
        agentVersion: this.options.agentVersion,
        dataDir: this.options.dataDir,
        tunnel: () => {
          const mux = this.tunnel?.multiplexer;
          return mux ? { connectedAt: this.connectedAt, ping: () => mux.ping() } : undefined;
        },
        ...(this.options.stateRoot ? { root: this.options.stateRoot } : {}),
      },
      { log: this.log },
    );
  }

  private async applyVariables(revision: number, variables: Record<string, string>, mux: AgentMultiplexer) {
    const applied = await this.variables.apply(variables);
    // The connection may have gone meanwhile; the server pushes the variables again on the next one.
    if (mux.closed) return;
    mux.sendControl({
      type: 'variables-applied',
      revision,
      ...(applied.error ? { error: applied.error } : {}),
    });
  }

  /** State report at once, on change (checked periodically) and at least every `maxIntervalMs`. */
  private reportStateWhileConnected(mux: AgentMultiplexer): void {
    const { checkIntervalMs, maxIntervalMs } = this.options.stateReport;
    let last: StateReport | null = null;
    let lastSentAt = 0;
    const check = () => {
      if (mux.closed) {
        clearInterval(timer);
        return;
      }
      let report: StateReport;
      try {
        report = this.state.collect();
      } catch (error) {
        this.log.warn('cannot read the device state', { error });
        return;
      }
      if (stateChanged(last, report) || performance.now() - lastSentAt >= maxIntervalMs) {
        mux.sendControl(report);
        last = report;
        lastSentAt = performance.now();
      }
    };
    const timer = setInterval(check, checkIntervalMs);
    timer.unref();
    check();
  }
}

function assertNever(value: never): never {
  throw new Error(`unreachable: ${String(value)}`);
}
