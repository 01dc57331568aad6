/**
 * The tunnel client: one WebSocket to `<server>/api/v1/tunnel`, a `Multiplexer` (role 'agent') over it,
 * kept up for the agent's whole life (scratch/tunnel-contract.md, sections 1–3).
 *
 * - Authentication is in the upgrade request (`Authorization`), so a refused device gets a plain HTTP
 *   answer: 401 → fetch a new credential, 403 → decommissioned (stop) , 429 / 503 → back off.
 * - After a lost connection the agent waits `random(0, min(cap, base * 2^attempt))` (backoff.ts) before
 *   trying again — also before the FIRST retry, so agents dropped together by a server restart come back
 *   spread out. The attempt count resets once a connection stayed up `stableAfterMs` (default 30 s), not
 *   merely on the server's hello: a server that accepts and drops at once (or another agent with the
 *   same credentials superseding this one) would otherwise be retried at the base rate forever.
 * - Close codes: 4006 decommissioned → stop for good; 4004 unauthorized → new credential, then retry with
 *   backoff; anything else (4001 going away, 4005 superseded, 4007 liveness, socket loss) → retry. After
 *   4001 (the server restarts on purpose) the window grows only to `restartCapMs` for a few minutes.
 * - Liveness: a PING every `intervalMs`; no PONG within `timeoutMs` → the socket is dropped and the
 *   agent reconnects (a half-dead NAT mapping otherwise keeps a "connected" agent unreachable for hours).
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import {
  CloseCode,
  HEADER_SIZE,
  type IncomingOpen,
  MAX_FRAME_PAYLOAD,
  Multiplexer,
  type ServerMessage,
} from '@fleetgate/protocol';
import WebSocket, * as wsExports from 'ws';
import { Backoff, sleep } from './backoff.ts';
import { type DeviceAuthenticator, EnrollmentError } from './enroll.ts';
import { apiErrorOf, type ServerEndpoint } from './http.ts';
import type { Logger } from './log.ts';

export type AgentMultiplexer = Multiplexer<'agent'>;
type ServerControl = Exclude<ServerMessage, { type: 'hello' }>;

export interface TunnelClientOptions {
  server: ServerEndpoint;
  authenticator: DeviceAuthenticator;
  /** Announced in the hello and the `x-fleetgate-agent` header, e.g. `0.1.0`. */
  agentVersion: string;
  backoff: {
    baseMs: number;
    capMs: number;
    restartCapMs?: number;
    stableAfterMs: number;
    random?: () => number;
  };
  liveness: { intervalMs: number; timeoutMs: number };
  log: Logger;
  /** The server opens a stream. */
  onStream: (open: IncomingOpen, mux: AgentMultiplexer) => void;
  /** A control message from the server (after its hello). */
  onControl: (message: ServerControl, mux: AgentMultiplexer) => void;
  /** Receive window per stream, in bytes. Default: the multiplexer's (`DEFAULT_WINDOW`, 4 MiB). */
  window?: number;
}

/** The part of `ws`'s `Sender` used here: its frame encoder (public in ws, missing from @types/ws). */
interface WebSocketFrameEncoder {
  frame(
    data: Buffer,
    options: {
      fin: boolean;
      mask: boolean;
      opcode: number;
      readOnly: boolean;
      rsv1: boolean;
      generateMask?: ((mask: Buffer) => void) | undefined;
    },
  ): Buffer[];
}
const { Sender } = wsExports as unknown as { Sender: WebSocketFrameEncoder };

/**
 * Sends a multiplexer's frames as binary messages on a client WebSocket (the agent's tunnel, `fleetgate
 * tunnel`), masked in place. A client must mask what it sends (RFC 6455 section 5.3), and `ws.send` masks into a
 * new copy of every message because it must assume the caller still reads the bytes; a multiplexer's frames
 * are the transport's once sent, so that copy, and the garbage collection of one more buffer per frame, are
 * saved (bench/tunnel: about a fifth of the CLI's CPU per MiB). The frame is encoded by ws's own `Sender.frame`
 * and written to the socket under the WebSocket, in order with what ws writes there itself (pongs, the close
 * frame): ws queues nothing of its own on a connection without compression.
 *
 * Over `wss:` no proxy sees the frames, so masking them protects nothing: an all-zero mask, which ws then
 * skips. Over plain `ws:` every frame gets a random mask.
 */
export class MaskedSender {
  private socket: Duplex | undefined;
  /** Called once the socket drains after a `send` answered false (the multiplexer's `transportDrained`). */
  onDrain: (() => void) | undefined;
  private drainWatched = false;
  private readonly options: Parameters<WebSocketFrameEncoder['frame']>[1];

  /** Call before the WebSocket opens: the socket is taken from the upgrade response. */
  constructor(
    private readonly ws: WebSocket,
    url: string,
  ) {
    const zeroMask = url.startsWith('wss:');
    this.options = {
      fin: true,
      mask: true,
      opcode: 2,
      // The frame may be masked where it lies.
      readOnly: false,
      rsv1: false,
      generateMask: zeroMask ? (mask: Buffer) => void mask.fill(0) : undefined,
    };
    ws.once('upgrade', (response) => {
      this.socket = response.socket;
    });
  }

  /**
   * Sends one frame; drops it once the WebSocket is closing or closed (the multiplexer's contract). Answers
   * false when the socket's buffer is full, and calls `onDrain` once it drained.
   */
  send(frame: Uint8Array): boolean {
    const socket = this.socket;
    if (this.ws.readyState !== WebSocket.OPEN || socket === undefined) return true;
    const data = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    const [header, payload] = Sender.frame(data, this.options);
    socket.cork();
    let room = socket.write(header!);
    if (payload) room = socket.write(payload);
    socket.uncork();
    if (!room && !this.drainWatched) {
      this.drainWatched = true;
      socket.once('drain', () => {
        this.drainWatched = false;
        this.onDrain?.();
      });
    }
    return room;
  }
}

/** Why the client stopped for good. */
export type TunnelStopReason = 'stopped' | 'decommissioned';

/** How one connection attempt ended. */
type AttemptOutcome =
  | { kind: 'closed'; code: number; reason: string; upMs: number }
  | { kind: 'refused'; status: number; message: string; reason?: string; retryAfterMs?: number }
  | { kind: 'network'; message: string };

/**
 * Events: `connected` (mux) after the server's hello; `disconnected` ({code, reason}) when a connection
 * ends; `retry` ({delayMs, attempt, cause}) before each wait; `stopped` (reason).
 */
export class TunnelClient extends EventEmitter {
  private readonly abort = new AbortController();
  private readonly backoff: Backoff;
  private socket: WebSocket | null = null;
  private mux: AgentMultiplexer | null = null;
  private running: Promise<TunnelStopReason> | null = null;

  constructor(private readonly options: TunnelClientOptions) {
    super();
    this.backoff = new Backoff(options.backoff);
  }

  /** The multiplexer of the live connection, once the server's hello arrived. */
  get multiplexer(): AgentMultiplexer | null {
    return this.mux?.peerHello && !this.mux.closed ? this.mux : null;
  }

  /** Starts connecting (at once) and keeps connected; resolves when the client stops for good. */
  start(): Promise<TunnelStopReason> {
    this.running ??= this.run();
    return this.running;
  }

  /** Closes the connection (`normal`) and stops reconnecting. */
  async stop(): Promise<void> {
    this.abort.abort(new Error('the agent is stopping'));
    this.mux?.close(CloseCode.normal, 'agent stopping');
    this.socket?.terminate();
    await this.running?.catch(() => {});
  }

  /** Drops the socket without a goodbye, as a network cut would (for tests and network changes). */
  dropConnection(): void {
    this.socket?.terminate();
  }

  private async run(): Promise<TunnelStopReason> {
    const { log } = this.options;
    const signal = this.abort.signal;
    for (;;) {
      if (signal.aborted) return this.stopped('stopped');
      let outcome: AttemptOutcome;
      try {
        outcome = await this.connectOnce(signal);
      } catch (error) {
        if (signal.aborted) return this.stopped('stopped');
        if (error instanceof EnrollmentError && error.reason === 'decommissioned') {
          log.error('the device was decommissioned: the agent stops (re-enroll it to bring it back)');
          return this.stopped('decommissioned');
        }
        // A credential that waiting cannot fix (rejected, misconfigured): keep trying, rarely.
        log.error('cannot authenticate', { error: (error as Error).message });
        this.backoff.toCap();
        outcome = { kind: 'network', message: (error as Error).message };
      }
      if (signal.aborted) return this.stopped('stopped');

      let minimumDelay = 0;
      switch (outcome.kind) {
        case 'closed':
          this.emit('disconnected', { code: outcome.code, reason: outcome.reason });
          if (outcome.code === CloseCode.decommissioned) {
            log.error('the server closed the tunnel: the device was decommissioned; the agent stops', {
              reason: outcome.reason,
            });
            return this.stopped('decommissioned');
          }
          if (outcome.code === CloseCode.unauthorized) this.options.authenticator.invalidate();
          if (outcome.code === CloseCode.unsupportedVersion) this.backoff.toCap();
          if (outcome.upMs >= this.options.backoff.stableAfterMs) this.backoff.reset();
          if (outcome.code === CloseCode.goingAway) this.backoff.serverRestarting();
          else this.backoff.restartOver();
          log.warn('tunnel closed', {
            code: outcome.code,
            reason: outcome.reason,
            upMs: Math.round(outcome.upMs),
          });
          break;
        case 'refused':
          log.warn('the server refused the tunnel', {
            status: outcome.status,
            message: outcome.message,
            ...(outcome.reason ? { reason: outcome.reason } : {}),
          });
          if (outcome.status === 401) this.options.authenticator.invalidate();
          if (outcome.status === 403) {
            if (outcome.reason === 'decommissioned' || /decommission/i.test(outcome.message)) {
              log.error('the device was decommissioned: the agent stops (re-enroll it to bring it back)');
              return this.stopped('decommissioned');
            }
            this.backoff.toCap();
          }
          if (outcome.status === 429) {
            if (outcome.retryAfterMs === undefined) this.backoff.toCap();
            else minimumDelay = outcome.retryAfterMs;
          }
          break;
        case 'network':
          log.warn('cannot reach the server', { error: outcome.message });
          break;
        default:
          assertNever(outcome);
      }
      const attempt = this.backoff.attempts;
      // Retry-After is a floor; jitter still spreads the herd above it.
      const delayMs = minimumDelay + this.backoff.next();
      this.emit('retry', { delayMs, attempt, cause: outcome.kind });
      log.info('reconnecting', { inMs: delayMs, attempt });
      if (!(await sleep(delayMs, signal))) return this.stopped('stopped');
    }
  }

  private stopped(reason: TunnelStopReason): TunnelStopReason {
    this.emit('stopped', reason);
    return reason;
  }

  /** One connection: authenticate, upgrade, run the multiplexer until the socket closes. */
  private async connectOnce(signal: AbortSignal): Promise<AttemptOutcome> {
    const { options } = this;
    const authorization = await options.authenticator.authorization(signal);
    const url = `${options.server.url.replace(/^http/, 'ws')}/api/v1/tunnel`;
    const maxFramePayload = MAX_FRAME_PAYLOAD;
    const socket = new WebSocket(url, {
      headers: { authorization, 'x-fleetgate-agent': options.agentVersion },
      perMessageDeflate: false,
      maxPayload: HEADER_SIZE + maxFramePayload,
      handshakeTimeout: 30_000,
      // ws's own sends (the close frame) unmasked over TLS too, as MaskedSender's.
      ...(url.startsWith('wss:') ? { generateMask: (mask: Buffer) => void mask.fill(0) } : {}),
      ...(options.server.ca ? { ca: options.server.ca } : {}),
    });
    socket.binaryType = 'nodebuffer';
    const sender = new MaskedSender(socket, url);
    this.socket = socket;

    return new Promise<AttemptOutcome>((resolve) => {
      let settled = false;
      const settle = (outcome: AttemptOutcome) => {
        if (settled) return;
        settled = true;
        this.socket = null;
        this.mux = null;
        resolve(outcome);
      };

      socket.on('unexpected-response', (_request, response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= 16 * 1024) chunks.push(chunk);
        });
        const done = () => {
          const answer = {
            status: response.statusCode ?? 0,
            headers: response.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          };
          const error = apiErrorOf(answer);
          const retryAfter = Number(response.headers['retry-after']);
          settle({
            kind: 'refused',
            status: answer.status,
            message: error.message ?? `HTTP ${answer.status}`,
            ...(error.reason ? { reason: error.reason } : {}),
            ...(Number.isFinite(retryAfter) && retryAfter >= 0 ? { retryAfterMs: retryAfter * 1000 } : {}),
          });
          socket.terminate();
        };
        response.on('end', done);
        response.on('error', done);
      });
      socket.on('error', (error) => {
        // Before 'open' this is the connection failing; after it, 'close' follows and tells the rest.
        if (!this.mux) settle({ kind: 'network', message: error.message });
      });
      socket.on('open', () => {
        const openedAt = performance.now();
        const mux = this.createMultiplexer(socket, sender);
        this.mux = mux;
        const stopLiveness = this.startLiveness(mux, socket);
        socket.on('message', (data: Buffer, isBinary: boolean) => {
          if (!isBinary) {
            mux.close(CloseCode.protocolError, 'text message on the tunnel');
            return;
          }
          mux.receive(data);
        });
        socket.on('close', (code: number, reason: Buffer) => {
          stopLiveness();
          mux.transportClosed(`socket closed (${code})`);
          // The CLOSE frame's code if the server sent one; otherwise the WebSocket's.
          const closedBy = mux.closed;
          const useMux = closedBy !== null && (closedBy.remote || code === 1006 || code === 1005);
          settle({
            kind: 'closed',
            code: useMux ? closedBy.code : code,
            reason: useMux ? closedBy.reason : reason.toString('utf8'),
            upMs: performance.now() - openedAt,
          });
        });
        mux.start();
      });
    });
  }

  private createMultiplexer(socket: WebSocket, sender: MaskedSender): AgentMultiplexer {
    const { options } = this;
    const mux: AgentMultiplexer = new Multiplexer({
      role: 'agent',
      software: `fleetgate-agent/${options.agentVersion}`,
      ...(options.window ? { window: options.window } : {}),
      // No `sendData`: each DATA frame is a copy of the bytes written to the stream, made before `write` returns,
      // which is what lets streams.ts read the device's service into a reused buffer.
      send: (frame) => sender.send(frame),
      onHello: () => {
        options.log.info('tunnel connected', {
          server: options.server.url,
          device: options.authenticator.label,
        });
        this.emit('connected', mux);
      },
      onControl: (message) => options.onControl(message, mux),
      onStream: (open) => options.onStream(open, mux),
      onClose: (close) => {
        // This side closed (stop, protocol error, liveness): tell the WebSocket the same code.
        if (!close.remote && socket.readyState === WebSocket.OPEN)
          socket.close(close.code, close.reason.slice(0, 120));
      },
    });
    sender.onDrain = () => mux.transportDrained();
    return mux;
  }

  /** Pings every interval; a missing pong terminates the socket. Answers the function that stops it. */
  private startLiveness(mux: AgentMultiplexer, socket: WebSocket): () => void {
    const { intervalMs, timeoutMs } = this.options.liveness;
    const timer = setInterval(() => {
      const timeout = setTimeout(() => {
        this.options.log.warn('no pong from the server in time: dropping the connection', { timeoutMs });
        mux.close(CloseCode.livenessTimeout, `no pong within ${timeoutMs} ms`);
        socket.terminate();
      }, timeoutMs);
      mux.ping().then(
        () => clearTimeout(timeout),
        () => clearTimeout(timeout),
      );
    }, intervalMs);
    return () => clearInterval(timer);
  }
}

function assertNever(value: never): never {
  throw new Error(`unreachable: ${JSON.stringify(value)}`);
}
