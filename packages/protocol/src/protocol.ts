/**
 * The fleetgate tunnel wire format (DESIGN.md section 6), top to bottom:
 *
 *   1. version, frame types and close codes
 *   2. the frame codec (one frame = one transport message, e.g. one binary WebSocket message)
 *   3. control messages (JSON, validated with zod before use), one union per direction
 *   4. the stream multiplexer: open/accept, data, half-close, reset, per-stream credit windows,
 *      ping/pong, version exchange and typed connection close
 *
 * Nothing here knows about sockets: a `Multiplexer` sends frames through a `send(bytes)` function
 * it is given and is fed incoming frames through `receive(bytes)`.
 *
 * Frame layout (all integers big-endian):
 *
 *   type (u8) | flags (u8) | stream id (u32) | payload length (u32) | payload
 *
 * The flags byte is reserved and must be 0 in version 1 (a peer that sets one speaks a newer
 * dialect and is refused rather than misread). The length is explicit even though a WebSocket
 * message already has one, so a truncated or padded message is detected instead of being guessed at.
 */
import { Duplex } from 'node:stream';
import { z } from 'zod';

// ─── 1. Constants ──────────────────────────────────────────────────────────────────────────────

/** The protocol version each side announces in its hello; a peer with another version is closed. */
export const PROTOCOL_VERSION = 1;

/** Bytes before a frame's payload: type, flags, stream id, payload length. */
export const HEADER_SIZE = 10;

/** Largest payload a frame may carry unless the multiplexer is configured lower, in bytes (64 KiB). */
export const MAX_FRAME_PAYLOAD = 64 * 1024;

/**
 * Receive window per stream unless the multiplexer is configured otherwise, in bytes (4 MiB). A stream moves
 * at most one window per credit round trip, and a round trip laptop → CLI → server → agent crosses three busy
 * event loops: 10 ms or more on a loaded machine, so 1 MiB held one stream near 100 MiB/s, where a plain TCP
 * relay moves 400–700 MiB/s. A sender stalled on credit also costs CPU per byte (its socket paused and resumed,
 * smaller batches per wake-up): in bench/tunnel one stream took 9.5–14 ms of CPU per MiB with 1 MiB windows and
 * 4.3–7.5 with 4 MiB, run alternately. It is also what one stream may hold in memory on each receiving side
 * when its reader stops (as OpenSSH's 2 MiB channel window, or HTTP/2 implementations' few-MiB windows).
 */
export const DEFAULT_WINDOW = 4 * 1024 * 1024;

/** Largest credit a sender may hold on one stream, in bytes (as in HTTP/2: 2^31 - 1). */
export const MAX_WINDOW = 2 ** 31 - 1;

export const FrameType = {
  /** Open a stream; payload: JSON `OpenTarget`. Stream id chosen by the opener (parity by role). */
  open: 1,
  /** The stream is accepted; empty payload. The opener may now send up to the peer's window. */
  openOk: 2,
  /** The stream is refused; payload: JSON `{ code, reason }`. */
  openErr: 3,
  /** Stream bytes; never more than the sender's credit on that stream. */
  data: 4,
  /** Credit grant; payload: u32 increment in bytes, > 0. */
  window: 5,
  /** Half close: the sender writes no more on this stream; empty payload. */
  fin: 6,
  /** Abort the stream both ways; payload: JSON `{ code, reason }`. */
  reset: 7,
  /** Liveness probe on stream 0; payload: 8 opaque bytes, echoed in the PONG. */
  ping: 8,
  pong: 9,
  /** A control message on stream 0; payload: JSON validated against the direction's union. */
  control: 10,
  /** Close the whole connection; payload: u16 close code then a UTF-8 reason. Stream 0. */
  close: 11,
} as const;
export type FrameTypeName = keyof typeof FrameType;
export type FrameTypeValue = (typeof FrameType)[FrameTypeName];

const frameTypeNames = new Map<number, FrameTypeName>(
  Object.entries(FrameType).map(([name, value]) => [value, name as FrameTypeName]),
);
/** Frames that belong to the connection (stream id 0) rather than to one stream. */
const connectionFrames: ReadonlySet<FrameTypeName> = new Set(['ping', 'pong', 'control', 'close']);

/**
 * Why a connection closed. Values are in the WebSocket application range (4000–4999), so the
 * transport can use the same number as its close code.
 */
export const CloseCode = {
  /** Orderly close with nothing wrong. */
  normal: 4000,
  /** The server is shutting down or restarting; reconnect with backoff. */
  goingAway: 4001,
  /** The peer sent a frame that breaks this protocol. */
  protocolError: 4002,
  /** The peer speaks another protocol version. */
  unsupportedVersion: 4003,
  /** The credentials are not (or no longer) valid. */
  unauthorized: 4004,
  /** A newer connection of the same device replaced this one. */
  superseded: 4005,
  /** The device was decommissioned; do not reconnect. */
  decommissioned: 4006,
  /** No pong within the liveness timeout. */
  livenessTimeout: 4007,
  /** A bug on the side that closes; the cause is in its log. */
  internalError: 4008,
} as const;
export type CloseCodeName = keyof typeof CloseCode;
const closeCodeNames = new Map<number, CloseCodeName>(
  Object.entries(CloseCode).map(([name, value]) => [value, name as CloseCodeName]),
);

/** Why one stream was refused or reset. */
export const StreamErrorCode = {
  /** The local side cancelled (destroyed the stream without an error). */
  cancelled: 'cancelled',
  /** The target refused the connection (e.g. ECONNREFUSED on the device). */
  refused: 'refused',
  /** The target is outside an allow-list. */
  notAllowed: 'not-allowed',
  unreachable: 'unreachable',
  tooManyStreams: 'too-many-streams',
  timeout: 'timeout',
  /** The connection carrying the stream closed. */
  connectionClosed: 'connection-closed',
  internal: 'internal',
} as const;
export type StreamErrorCodeValue = (typeof StreamErrorCode)[keyof typeof StreamErrorCode];

/** The peer broke the protocol; the multiplexer closes with `CloseCode.protocolError` and this message. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

/** A stream was refused or reset, locally or by the peer. */
export class StreamError extends Error {
  override name = 'StreamError';
  constructor(
    readonly code: StreamErrorCodeValue,
    readonly reason: string,
  ) {
    super(`stream ${code}: ${reason}`);
  }
}

// ─── 2. Frame codec ────────────────────────────────────────────────────────────────────────────

export interface Frame {
  type: FrameTypeName;
  streamId: number;
  payload: Uint8Array;
}

/** Encodes one frame. Throws `RangeError` on a stream id or payload the format cannot carry. */
export function encodeFrame(frame: Frame): Uint8Array {
  if (!Number.isInteger(frame.streamId) || frame.streamId < 0 || frame.streamId > 0xffffffff) {
    throw new RangeError(`stream id out of range: ${frame.streamId}`);
  }
  if (frame.payload.length > 0xffffffff) throw new RangeError('payload too large');
  // Uninitialized (every byte is written below; zero-filling 64 KiB per frame showed in profiles) and not
  // from Node's shared pool: the frame owns its whole ArrayBuffer.
  const bytes = Buffer.allocUnsafeSlow(HEADER_SIZE + frame.payload.length);
  writeHeader(bytes, 0, FrameType[frame.type], frame.streamId, frame.payload.length);
  bytes.set(frame.payload, HEADER_SIZE);
  return bytes;
}

function writeHeader(bytes: Uint8Array, at: number, type: number, streamId: number, length: number): void {
  bytes[at] = type;
  bytes[at + 1] = 0;
  bytes[at + 2] = streamId >>> 24;
  bytes[at + 3] = (streamId >>> 16) & 0xff;
  bytes[at + 4] = (streamId >>> 8) & 0xff;
  bytes[at + 5] = streamId & 0xff;
  bytes[at + 6] = length >>> 24;
  bytes[at + 7] = (length >>> 16) & 0xff;
  bytes[at + 8] = (length >>> 8) & 0xff;
  bytes[at + 9] = length & 0xff;
}

/**
 * Decodes exactly one frame from one transport message and checks its shape: known type, zero
 * flags, payload length matching the message and at most `maxPayload` bytes, stream 0 for
 * connection frames and not for stream frames, and fixed payload sizes. Throws `ProtocolError`.
 * The payload is a view into `bytes`, not a copy.
 */
export function decodeFrame(bytes: Uint8Array, maxPayload: number = MAX_FRAME_PAYLOAD): Frame {
  if (bytes.length < HEADER_SIZE) {
    throw new ProtocolError(`truncated frame: ${bytes.length} bytes, header needs ${HEADER_SIZE}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const typeByte = view.getUint8(0);
  const type = frameTypeNames.get(typeByte);
  if (type === undefined) throw new ProtocolError(`unknown frame type ${typeByte}`);
  const flags = view.getUint8(1);
  if (flags !== 0) throw new ProtocolError(`${type} frame with reserved flags 0x${flags.toString(16)}`);
  const streamId = view.getUint32(2);
  const length = view.getUint32(6);
  if (length > maxPayload) {
    throw new ProtocolError(`${type} frame payload of ${length} bytes exceeds the maximum of ${maxPayload}`);
  }
  if (bytes.length !== HEADER_SIZE + length) {
    throw new ProtocolError(
      `${bytes.length < HEADER_SIZE + length ? 'truncated' : 'oversized'} ${type} frame: ` +
        `header says ${length} payload bytes, message has ${bytes.length - HEADER_SIZE}`,
    );
  }
  const onConnection = connectionFrames.has(type);
  if (onConnection && streamId !== 0) throw new ProtocolError(`${type} frame on stream ${streamId}`);
  if (!onConnection && streamId === 0) throw new ProtocolError(`${type} frame on stream 0`);
  const expectSize = (size: number) => {
    if (length !== size)
      throw new ProtocolError(`${type} frame payload must be ${size} bytes, got ${length}`);
  };
  switch (type) {
    case 'openOk':
    case 'fin':
      expectSize(0);
      break;
    case 'window':
      expectSize(4);
      break;
    case 'ping':
    case 'pong':
      expectSize(8);
      break;
    case 'close':
      if (length < 2) throw new ProtocolError('close frame without a close code');
      break;
    case 'open':
    case 'openErr':
    case 'data':
    case 'reset':
    case 'control':
      break;
    default:
      assertNever(type);
  }
  return { type, streamId, payload: bytes.subarray(HEADER_SIZE) };
}

function assertNever(value: never): never {
  throw new Error(`unreachable: ${String(value)}`);
}

// ─── 3. Payloads and control messages ─────────────────────────────────────────────────────────

export type Role = 'agent' | 'server';

/** Most environment variables one exec may set. */
export const MAX_EXEC_ENV = 64;

/**
 * An exec request: run `command` through the user's shell (`$SHELL -c command`), or the user's login shell
 * when `command` is absent; with `pty` in a pseudo-terminal of that size, else with separate stdout and
 * stderr pipes. `env` is merged over the agent's environment. The stream then carries the exec
 * sub-protocol of exec.ts.
 */
export const execRequestSchema = z.strictObject({
  command: z
    .string()
    .min(1)
    .max(16 * 1024)
    .optional(),
  pty: z
    .strictObject({
      /** The terminal type, e.g. `xterm-256color`; becomes `TERM`. */
      term: z
        .string()
        .min(1)
        .max(64)
        .regex(/^[\w.+-]+$/, 'a terminal name'),
      cols: z.number().int().min(1).max(10_000),
      rows: z.number().int().min(1).max(10_000),
    })
    .optional(),
  env: z
    .record(
      z
        .string()
        .min(1)
        .max(128)
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'),
      z.string().max(8 * 1024),
    )
    .refine((env) => Object.keys(env).length <= MAX_EXEC_ENV, `at most ${MAX_EXEC_ENV} variables`)
    .optional(),
});
export type ExecRequest = z.infer<typeof execRequestSchema>;

/**
 * What an OPEN asks for: a TCP port (on the device, or a host its allow-list permits), a named service,
 * or a command to run (`exec`).
 */
export const openTargetSchema = z.union([
  z.strictObject({
    port: z.number().int().min(1).max(65535),
    host: z.string().min(1).max(253).optional(),
  }),
  z.strictObject({ service: z.string().min(1).max(64) }),
  z.strictObject({ exec: execRequestSchema }),
]);
export type OpenTarget = z.infer<typeof openTargetSchema>;

const streamErrorSchema = z.strictObject({
  code: z.enum(Object.values(StreamErrorCode) as [StreamErrorCodeValue, ...StreamErrorCodeValue[]]),
  reason: z.string().max(512),
});

/** First frame each way: version and the limits the sender will enforce on what it receives. */
export const helloSchema = z.strictObject({
  type: z.literal('hello'),
  version: z.number().int().min(0),
  role: z.enum(['agent', 'server']),
  /** Initial credit, in bytes, the sender grants the peer on every stream. */
  window: z.number().int().min(1).max(MAX_WINDOW),
  /** Largest frame payload, in bytes, the sender accepts. */
  maxFramePayload: z.number().int().min(1024).max(0xffffffff),
  /** Free-form software version, e.g. `fleetgate-agent/0.1.0`, for connection history. */
  software: z.string().max(128).optional(),
});
export type HelloMessage = z.infer<typeof helloSchema>;

/** Agent → server. */
export const agentMessageSchema = z.discriminatedUnion('type', [
  helloSchema,
  z.strictObject({
    type: z.literal('state-report'),
    hostname: z.string().max(253),
    os: z.string().max(256),
    kernel: z.string().max(256),
    agentVersion: z.string().max(64),
    uptimeSeconds: z.number().nonnegative(),
    cpuPercent: z.number().min(0).max(100).optional(),
    memory: z
      .strictObject({ totalBytes: z.number().nonnegative(), usedBytes: z.number().nonnegative() })
      .optional(),
    disk: z
      .strictObject({ totalBytes: z.number().nonnegative(), usedBytes: z.number().nonnegative() })
      .optional(),
    temperatureCelsius: z.number().optional(),
    ipAddresses: z.array(z.string().max(64)).max(64),
  }),
  z.strictObject({
    type: z.literal('variables-applied'),
    revision: z.number().int().nonnegative(),
    error: z.string().max(1024).optional(),
  }),
]);
export type AgentMessage = z.infer<typeof agentMessageSchema>;

/** Server → agent. */
export const serverMessageSchema = z.discriminatedUnion('type', [
  helloSchema,
  z.strictObject({
    type: z.literal('variables'),
    revision: z.number().int().nonnegative(),
    variables: z.record(z.string().max(256), z.string().max(64 * 1024)),
  }),
]);
export type ServerMessage = z.infer<typeof serverMessageSchema>;

/** Messages a side with role `R` sends; it receives the other union. */
export type OutgoingControl<R extends Role> = R extends 'agent' ? AgentMessage : ServerMessage;
export type IncomingControl<R extends Role> = R extends 'agent' ? ServerMessage : AgentMessage;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

function encodeJson(value: unknown): Uint8Array {
  return textEncoder.encode(JSON.stringify(value));
}

/** Parses and validates a JSON payload; anything malformed is the peer's protocol error. */
function decodeJson<T>(schema: z.ZodType<T>, payload: Uint8Array, what: string): T {
  let value: unknown;
  try {
    value = JSON.parse(textDecoder.decode(payload));
  } catch {
    throw new ProtocolError(`${what}: payload is not UTF-8 JSON`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ProtocolError(`${what}: invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
  }
  return parsed.data;
}

// ─── 4. Multiplexer ────────────────────────────────────────────────────────────────────────────

/**
 * What a multiplexer is built with. It keeps the object and calls the functions as its methods, so an
 * object holding many connections can pass one instance per connection whose functions live on a prototype.
 */
export interface MultiplexerOptions<R extends Role> {
  /** `agent` opens odd stream ids, `server` even ones, so both may open without colliding. */
  role: R;
  /**
   * Sends one encoded frame as one transport message. Must not throw for a closed transport. The bytes are
   * the transport's from then on: it may change them (mask them in place, say). Answers `false`, as a socket's
   * `write` does, when the transport's buffer is full: see `transportDrained`.
   */
  send: (frame: Uint8Array) => unknown;
  /**
   * Sends one DATA frame, given as its `HEADER_SIZE` header bytes and its payload, as one transport message.
   * Optional: a transport that writes its own message framing (a WebSocket frame header) can send the payload
   * where it lies, behind its header and this one, instead of a copy made to join them; without it DATA frames
   * are encoded and go through `send`. The header is the transport's; the payload is a view into a chunk
   * written to a stream (or received from the peer, when the server relays one stream into another): the
   * transport must not change it, and must send it or copy it before anything else changes it, i.e. hand it to
   * its socket at once. Must not throw for a closed transport. Answers `false` when the transport's buffer is
   * full, as `send` does.
   */
  sendData?: (header: Uint8Array, payload: Uint8Array) => unknown;
  /** Receive window per stream, in bytes: the most this side buffers for one stream. Default `DEFAULT_WINDOW` (4 MiB). */
  window?: number;
  /** Largest frame payload this side accepts, in bytes. Default `MAX_FRAME_PAYLOAD` (64 KiB). */
  maxFramePayload?: number;
  /** Most streams open at once (both directions); further OPENs are refused. Default 1024. */
  maxStreams?: number;
  /** Software version announced in the hello. */
  software?: string;
  /** A peer opens a stream: call `accept()` or `reject()`. Without a handler every OPEN is refused. */
  onStream?: (open: IncomingOpen) => void;
  /** A validated control message from the peer (the hello is reported through `onHello`). */
  onControl?: (message: Exclude<IncomingControl<R>, HelloMessage>) => void;
  /** The peer's hello arrived and its version is supported. */
  onHello?: (hello: HelloMessage) => void;
  /** The connection closed, by either side. Called once. The transport should be closed with `code`. */
  onClose?: (close: ConnectionClose) => void;
}

export interface ConnectionClose {
  /** A `CloseCode` value, or an unknown code a newer peer sent. */
  code: number;
  name: CloseCodeName | 'unknown';
  reason: string;
  /** True when the peer sent the CLOSE, false when this side closed. */
  remote: boolean;
}

export interface IncomingOpen {
  readonly streamId: number;
  readonly target: OpenTarget;
  /** Accepts the stream and returns it; the peer may start writing. */
  accept(): TunnelStream;
  /** Refuses the stream with a reason the opener sees in its `StreamError`. */
  reject(code: StreamErrorCodeValue, reason: string): void;
}

interface PendingWrite {
  chunk: Uint8Array;
  offset: number;
  callback: (error?: Error | null) => void;
}

/**
 * The chunk a reader gets for a received DATA payload: a view into the received message rather than a copy,
 * unless the view would keep alive a message buffer more than twice its size (small frames that the
 * transport sliced out of a larger read), so the bytes held per stream stay within twice the window.
 */
function readerChunkOf(payload: Uint8Array): Buffer {
  // Small payloads: a copy from Node's shared pool is cheaper than an ArrayBuffer of their own.
  if (payload.length < 4096) return Buffer.from(payload);
  if (payload.length < payload.buffer.byteLength >> 1) {
    const copy = Buffer.allocUnsafeSlow(payload.length);
    copy.set(payload);
    return copy;
  }
  return Buffer.from(payload.buffer, payload.byteOffset, payload.length);
}

/**
 * One multiplexed stream, as a Node `Duplex`.
 *
 * Why a Duplex rather than a small event API: every user of a stream bridges it to a socket
 * (agent → 127.0.0.1:port, CLI → local listener, hub → SSH channel), and `pipeline(socket, stream,
 * socket)` then gives backpressure, half-close and error propagation with no glue code. Flow control
 * maps onto it directly:
 * - writing: `_write` hands bytes to the peer only as far as the credit goes and calls back when the
 *   whole chunk is sent, so a writer beyond the window sees `write() === false` and waits for 'drain'.
 *   While the transport's own buffer is full (`send` answered false) the callback also waits for the
 *   transport to drain: a fast writer's bytes then wait in its own socket, not in the transport's buffer
 *   (on the server, 16 streams' windows of 4 MiB each would otherwise queue up to 64 MiB for one device).
 *   The bytes go to the transport without a copy where it allows (`sendData`), as with a socket: a chunk
 *   must not change once written;
 * - reading: every DATA frame is pushed at once (the peer never has more than our window in flight,
 *   so `readableLength <= window` always holds) and credit is returned when bytes leave the readable
 *   buffer, i.e. when the application actually consumed them. `read()` is the single exit for both
 *   flowing and paused mode, so overriding it is where consumption is observed.
 */
export class TunnelStream extends Duplex {
  /** Bytes this side may still send before the peer grants more. */
  private sendCredit = 0;
  private pendingWrite: PendingWrite | null = null;
  /** The pending write is sent and waits for the transport to drain before it is called back. */
  private waitingForTransport = false;
  /** Totals for the receive window: bytes received and bytes whose credit was returned. */
  private received = 0;
  private credited = 0;
  private finReceived = false;
  private finSent = false;
  /** The peer reset or refused the stream, or the connection closed: send nothing more. */
  private silenced = false;
  /** @internal */ opening: boolean;

  /** @internal */
  constructor(
    readonly id: number,
    private readonly mux: Multiplexer<Role>,
    private readonly window: number,
    opening: boolean,
  ) {
    super({ readableHighWaterMark: window, allowHalfOpen: true });
    this.opening = opening;
  }

  /** Bytes received and not yet consumed by the reader; never more than the window. */
  get bufferedBytes(): number {
    return this.received - this.credited;
  }

  /** Bytes this side may still send now. */
  get credit(): number {
    return this.sendCredit;
  }

  /** @internal The stream is open both ways; the peer granted `credit` bytes. */
  markOpen(credit: number): void {
    this.opening = false;
    this.sendCredit = credit;
  }

  /** @internal */
  receiveData(payload: Uint8Array): void {
    if (this.opening) throw new ProtocolError(`data on stream ${this.id} before it was accepted`);
    if (this.finReceived) throw new ProtocolError(`data on stream ${this.id} after fin`);
    if (this.received - this.credited + payload.length > this.window) {
      throw new ProtocolError(`stream ${this.id} exceeded its flow control window of ${this.window} bytes`);
    }
    this.received += payload.length;
    this.push(readerChunkOf(payload));
    this.grantCredit();
  }

  /** @internal */
  receiveWindow(increment: number): void {
    if (this.opening) throw new ProtocolError(`window on stream ${this.id} before it was accepted`);
    if (increment === 0) throw new ProtocolError(`window of 0 bytes on stream ${this.id}`);
    if (this.sendCredit + increment > MAX_WINDOW) {
      throw new ProtocolError(`window on stream ${this.id} overflows ${MAX_WINDOW} bytes`);
    }
    this.sendCredit += increment;
    this.flushWrite();
  }

  /** @internal */
  receiveFin(): void {
    if (this.opening) throw new ProtocolError(`fin on stream ${this.id} before it was accepted`);
    if (this.finReceived) throw new ProtocolError(`second fin on stream ${this.id}`);
    this.finReceived = true;
    this.push(null);
  }

  /** @internal The peer reset the stream, or the connection closed: fail it without answering. */
  abort(error: StreamError | null): void {
    this.silenced = true;
    this.pendingWrite = null;
    this.destroy(error ?? undefined);
  }

  override read(size?: number): Buffer | null {
    const chunk: Buffer | null = super.read(size);
    this.grantCredit();
    return chunk;
  }

  override _read(): void {
    // Nothing to pull: DATA frames are pushed as they arrive; the window bounds them.
  }

  /**
   * Returns credit for consumed bytes in batches of at least a quarter window. The peer can always
   * make progress: what it may not send is what we buffer plus less than a quarter window.
   */
  private grantCredit(): void {
    if (this.finReceived || this.destroyed || this.opening) return;
    const consumed = this.received - this.readableLength;
    const grant = consumed - this.credited;
    if (grant > 0 && grant >= Math.max(1, this.window >> 2)) {
      this.credited += grant;
      const payload = new Uint8Array(4);
      new DataView(payload.buffer).setUint32(0, grant);
      this.mux.sendStreamFrame('window', this.id, payload);
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (chunk.length === 0) {
      callback();
      return;
    }
    this.pendingWrite = { chunk, offset: 0, callback };
    this.flushWrite();
  }

  private flushWrite(): void {
    const pending = this.pendingWrite;
    if (pending === null) return;
    const maxPayload = this.mux.sendPayloadLimit;
    while (this.sendCredit > 0 && pending.offset < pending.chunk.length) {
      const size = Math.min(this.sendCredit, maxPayload, pending.chunk.length - pending.offset);
      this.mux.sendData(this.id, pending.chunk.subarray(pending.offset, pending.offset + size));
      pending.offset += size;
      this.sendCredit -= size;
    }
    // Sending can close the connection (a failing transport), which aborts this stream meanwhile.
    if (this.pendingWrite !== pending) return;
    if (pending.offset === pending.chunk.length && !this.waitingForTransport) {
      if (this.mux.transportFull) {
        this.waitingForTransport = true;
        this.mux.callBackWhenDrained(this);
        return;
      }
      this.pendingWrite = null;
      pending.callback();
    }
  }

  /** @internal The transport drained: the write it held back is done. */
  transportDrained(): void {
    const pending = this.pendingWrite;
    this.waitingForTransport = false;
    if (pending === null) return;
    this.pendingWrite = null;
    pending.callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.silenced) {
      this.finSent = true;
      this.mux.sendStreamFrame('fin', this.id, new Uint8Array(0));
    }
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // FIN both ways is a finished stream, whatever destroys it now: `stream.pipeline(socket, stream, socket)`,
    // for one, destroys it with ERR_STREAM_DESTROYED after a clean end. A RESET would report a failure to a
    // peer that already got everything.
    const cleanClose = this.finSent && this.finReceived;
    if (!this.silenced && !cleanClose) {
      // Destroyed locally before both sides finished: tell the peer, with our reason.
      const reset =
        error instanceof StreamError
          ? { code: error.code, reason: error.reason }
          : {
              code: error ? StreamErrorCode.internal : StreamErrorCode.cancelled,
              reason: error?.message ?? '',
            };
      this.mux.sendStreamFrame(
        'reset',
        this.id,
        encodeJson({ ...reset, reason: reset.reason.slice(0, 512) }),
      );
    }
    this.silenced = true;
    this.pendingWrite = null;
    this.mux.forget(this.id);
    callback(error);
  }
}

/**
 * Multiplexes streams and control messages over one message-oriented transport.
 *
 * Lifecycle: construct, call `start()` (sends the hello), feed every incoming transport message to
 * `receive()`, and call `transportClosed()` when the transport goes away. `receive()` never throws:
 * a malformed or out-of-order frame closes the connection with `CloseCode.protocolError` and a
 * reason. Memory is bounded: at most `maxStreams` streams, each buffering at most `window` bytes
 * received (held in at most twice that: payloads stay views into the received messages, see
 * `readerChunkOf`) and at most its writable high-water mark plus one chunk to send.
 */
export class Multiplexer<R extends Role> {
  readonly role: R;
  private readonly window: number;
  private readonly maxFramePayload: number;
  private readonly maxStreams: number;
  // The three maps are made on first use: a server holds thousands of idle connections that never open a
  // stream, and an empty Map still costs a backing store.
  private streams: Map<number, TunnelStream> | undefined;
  private pendingOpens:
    | Map<number, { resolve: (stream: TunnelStream) => void; reject: (error: Error) => void }>
    | undefined;
  private pendingPings:
    | Map<bigint, { sentAt: number; resolve: (rttMs: number) => void; reject: (error: Error) => void }>
    | undefined;
  /**
   * The transport said its buffer is full: streams whose write is sent wait for `transportDrained` before they
   * take the next, so a fast writer's bytes wait in its own socket (paused), not in the transport's buffer.
   */
  private full = false;
  private waitingForTransport: TunnelStream[] | undefined;
  private nextStreamId: number;
  private highestPeerStreamId = 0;
  private nextPing = 0n;
  private started = false;
  private closedWith: ConnectionClose | null = null;
  /** The peer's hello, once received. Frames before it are a protocol error. */
  peerHello: HelloMessage | null = null;

  constructor(private readonly options: MultiplexerOptions<R>) {
    this.role = options.role;
    this.window = options.window ?? DEFAULT_WINDOW;
    this.maxFramePayload = options.maxFramePayload ?? MAX_FRAME_PAYLOAD;
    this.maxStreams = options.maxStreams ?? 1024;
    this.nextStreamId = options.role === 'agent' ? 1 : 2;
    if (!Number.isInteger(this.window) || this.window < 1 || this.window > MAX_WINDOW) {
      throw new RangeError(`window must be an integer in 1..${MAX_WINDOW}`);
    }
  }

  /** How the connection closed, or null while it is open. */
  get closed(): ConnectionClose | null {
    return this.closedWith;
  }

  /** Number of streams open or opening. */
  get streamCount(): number {
    return this.streams?.size ?? 0;
  }

  /** @internal The transport's buffer is full: streams wait for it to drain before writing more. */
  get transportFull(): boolean {
    return this.full;
  }

  /** @internal */
  callBackWhenDrained(stream: TunnelStream): void {
    this.waitingForTransport ??= [];
    this.waitingForTransport.push(stream);
  }

  /**
   * Call when the transport, after answering `false` to a send, drained (a socket's 'drain'): the streams
   * whose writes waited for it go on. Streams wait only for a transport that answers `false`; one that never
   * does buffers whatever the streams' credit allows.
   */
  transportDrained(): void {
    this.full = false;
    const waiting = this.waitingForTransport;
    this.waitingForTransport = undefined;
    for (const stream of waiting ?? []) stream.transportDrained();
  }

  /** @internal Payload size this side sends: the smaller of both sides' limits. */
  get sendPayloadLimit(): number {
    return Math.min(this.maxFramePayload, this.peerHello?.maxFramePayload ?? this.maxFramePayload);
  }

  /** Sends the hello. Call once, before or after the peer's hello arrived. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const hello: HelloMessage = {
      type: 'hello',
      version: PROTOCOL_VERSION,
      role: this.role,
      window: this.window,
      maxFramePayload: this.maxFramePayload,
      ...(this.options.software === undefined ? {} : { software: this.options.software }),
    };
    this.sendFrame('control', 0, encodeJson(hello));
  }

  /** Opens a stream to `target`; resolves when the peer accepts, rejects with `StreamError` if refused. */
  open(target: OpenTarget): Promise<TunnelStream> {
    if (this.closedWith) {
      return Promise.reject(new StreamError(StreamErrorCode.connectionClosed, this.closedWith.reason));
    }
    if (!this.started) return Promise.reject(new Error('open() before start()'));
    if (this.streamCount >= this.maxStreams) {
      return Promise.reject(
        new StreamError(StreamErrorCode.tooManyStreams, `${this.maxStreams} streams open`),
      );
    }
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const stream = new TunnelStream(id, this, this.window, true);
    this.streamMap().set(id, stream);
    return new Promise((resolve, reject) => {
      this.pendingOpens ??= new Map();
      this.pendingOpens.set(id, { resolve, reject });
      this.sendFrame('open', id, encodeJson(openTargetSchema.parse(target)));
    });
  }

  /** Sends a control message to the peer. */
  sendControl(message: Exclude<OutgoingControl<R>, HelloMessage>): void {
    this.sendFrame('control', 0, encodeJson(message));
  }

  /** Sends a PING; resolves with the round trip in milliseconds. Timeouts are the caller's policy. */
  ping(): Promise<number> {
    if (this.closedWith) return Promise.reject(new Error(`connection closed: ${this.closedWith.reason}`));
    const id = this.nextPing++;
    const payload = new Uint8Array(8);
    new DataView(payload.buffer).setBigUint64(0, id);
    return new Promise((resolve, reject) => {
      this.pendingPings ??= new Map();
      this.pendingPings.set(id, { sentAt: performance.now(), resolve, reject });
      this.sendFrame('ping', 0, payload);
    });
  }

  /** Closes the connection: sends CLOSE, fails every stream, reports through `onClose`. Idempotent. */
  close(code: number, reason: string): void {
    if (this.closedWith) return;
    const payload = new Uint8Array(2 + Math.min(reason.length * 3, 1024));
    new DataView(payload.buffer).setUint16(0, code);
    const { written } = textEncoder.encodeInto(reason.slice(0, 256), payload.subarray(2));
    this.sendFrame('close', 0, payload.subarray(0, 2 + written));
    this.shutdown(code, reason, false);
  }

  /** The transport went away without a CLOSE frame: fail every stream, report `goingAway`. */
  transportClosed(reason = 'transport closed'): void {
    this.shutdown(CloseCode.goingAway, reason, false);
  }

  /**
   * Feeds one incoming transport message (one frame). Never throws. The message is handed over: DATA
   * payloads reach readers as views into it, so the caller must not reuse its memory.
   */
  receive(message: Uint8Array): void {
    if (this.closedWith) return;
    try {
      this.handle(decodeFrame(message, this.maxFramePayload));
    } catch (error) {
      if (error instanceof ProtocolError) this.close(CloseCode.protocolError, error.message);
      else this.close(CloseCode.internalError, 'internal error');
    }
  }

  private handle(frame: Frame): void {
    if (this.peerHello === null && frame.type !== 'control') {
      throw new ProtocolError(`${frame.type} frame before hello`);
    }
    switch (frame.type) {
      case 'control':
        this.handleControl(frame.payload);
        return;
      case 'open':
        this.handleOpen(frame.streamId, frame.payload);
        return;
      case 'openOk': {
        const stream = this.localOpening(frame.streamId, 'openOk');
        if (!stream) return;
        stream.markOpen(this.peerHello!.window);
        this.pendingOpens?.get(stream.id)?.resolve(stream);
        this.pendingOpens?.delete(stream.id);
        return;
      }
      case 'openErr': {
        const stream = this.localOpening(frame.streamId, 'openErr');
        if (!stream) return;
        const { code, reason } = decodeJson(streamErrorSchema, frame.payload, 'openErr');
        const error = new StreamError(code, reason);
        this.pendingOpens?.get(stream.id)?.reject(error);
        this.pendingOpens?.delete(stream.id);
        stream.abort(null);
        return;
      }
      case 'data':
        this.streamFor(frame)?.receiveData(frame.payload);
        return;
      case 'window': {
        const stream = this.streamFor(frame);
        const view = new DataView(frame.payload.buffer, frame.payload.byteOffset, 4);
        stream?.receiveWindow(view.getUint32(0));
        return;
      }
      case 'fin':
        this.streamFor(frame)?.receiveFin();
        return;
      case 'reset': {
        const stream = this.streamFor(frame);
        const { code, reason } = decodeJson(streamErrorSchema, frame.payload, 'reset');
        if (!stream) return;
        const error = new StreamError(code, reason);
        const pending = this.pendingOpens?.get(stream.id);
        if (pending) {
          // Reset while we waited for OPEN_OK: the opener sees it as a refusal.
          this.pendingOpens!.delete(stream.id);
          pending.reject(error);
          stream.abort(null);
        } else if (stream.opening) {
          // The peer cancelled its own OPEN before we accepted: nobody holds the stream yet.
          stream.abort(null);
        } else {
          stream.abort(error);
        }
        return;
      }
      case 'ping':
        this.sendFrame('pong', 0, frame.payload);
        return;
      case 'pong': {
        const id = new DataView(frame.payload.buffer, frame.payload.byteOffset, 8).getBigUint64(0);
        const pending = this.pendingPings?.get(id);
        if (!pending) return; // late or unsolicited pongs are harmless
        this.pendingPings!.delete(id);
        // Idle connections have one ping out at a time: drop the map between pings.
        if (this.pendingPings!.size === 0) this.pendingPings = undefined;
        pending.resolve(performance.now() - pending.sentAt);
        return;
      }
      case 'close': {
        const view = new DataView(frame.payload.buffer, frame.payload.byteOffset, 2);
        let reason: string;
        try {
          reason = textDecoder.decode(frame.payload.subarray(2));
        } catch {
          reason = '(reason not UTF-8)';
        }
        this.shutdown(view.getUint16(0), reason, true);
        return;
      }
      default:
        assertNever(frame.type);
    }
  }

  private handleControl(payload: Uint8Array): void {
    const schema = this.role === 'agent' ? serverMessageSchema : agentMessageSchema;
    const message = decodeJson<AgentMessage | ServerMessage>(schema, payload, 'control message');
    if (message.type === 'hello') {
      if (this.peerHello !== null) throw new ProtocolError('second hello');
      if (message.version !== PROTOCOL_VERSION) {
        this.close(
          CloseCode.unsupportedVersion,
          `peer speaks protocol version ${message.version}, this side speaks ${PROTOCOL_VERSION}`,
        );
        return;
      }
      if (message.role === this.role) throw new ProtocolError(`both sides claim role ${this.role}`);
      this.peerHello = message;
      this.options.onHello?.(message);
      return;
    }
    if (this.peerHello === null) throw new ProtocolError(`control message ${message.type} before hello`);
    this.options.onControl?.(message as Exclude<IncomingControl<R>, HelloMessage>);
  }

  private handleOpen(id: number, payload: Uint8Array): void {
    const peerParity = this.role === 'agent' ? 0 : 1;
    if (id % 2 !== peerParity) throw new ProtocolError(`peer opened stream ${id} with this side's id parity`);
    if (id <= this.highestPeerStreamId) {
      throw new ProtocolError(`stream id ${id} not above the last opened (${this.highestPeerStreamId})`);
    }
    this.highestPeerStreamId = id;
    const target = decodeJson(openTargetSchema, payload, 'open target');
    const refuse = (code: StreamErrorCodeValue, reason: string) =>
      this.sendFrame('openErr', id, encodeJson({ code, reason: reason.slice(0, 512) }));
    if (!this.options.onStream) {
      refuse(StreamErrorCode.refused, 'this side accepts no streams');
      return;
    }
    if (this.streamCount >= this.maxStreams) {
      refuse(StreamErrorCode.tooManyStreams, `${this.maxStreams} streams open`);
      return;
    }
    const stream = new TunnelStream(id, this as Multiplexer<Role>, this.window, true);
    this.streamMap().set(id, stream);
    let answered = false;
    this.options.onStream({
      streamId: id,
      target,
      accept: () => {
        if (answered) throw new Error(`stream ${id} already answered`);
        answered = true;
        if (stream.destroyed) return stream; // cancelled by the peer meanwhile; the caller sees 'close'
        stream.markOpen(this.peerHello!.window);
        this.sendFrame('openOk', id, new Uint8Array(0));
        return stream;
      },
      reject: (code, reason) => {
        if (answered) throw new Error(`stream ${id} already answered`);
        answered = true;
        if (stream.destroyed) return;
        refuse(code, reason);
        stream.abort(null);
      },
    });
  }

  /**
   * The open stream a frame is for; undefined when the stream existed and is closed (frames in flight
   * when it closed are dropped); a protocol error when the id was never opened.
   */
  private streamFor(frame: Frame): TunnelStream | undefined {
    const stream = this.streams?.get(frame.streamId);
    if (stream) return stream;
    if (this.wasOpened(frame.streamId)) return undefined;
    throw new ProtocolError(`${frame.type} frame for unknown stream ${frame.streamId}`);
  }

  /** A stream this side opened and still waits on; OPEN_OK / OPEN_ERR for anything else is an error. */
  private localOpening(id: number, type: FrameTypeName): TunnelStream | undefined {
    const stream = this.streamFor({ type, streamId: id, payload: new Uint8Array(0) });
    if (!stream) return undefined;
    if (!this.pendingOpens?.has(id))
      throw new ProtocolError(`${type} for stream ${id}, which is not opening`);
    return stream;
  }

  private streamMap(): Map<number, TunnelStream> {
    this.streams ??= new Map();
    return this.streams;
  }

  private wasOpened(id: number): boolean {
    const ownParity = this.role === 'agent' ? 1 : 0;
    return id % 2 === ownParity ? id < this.nextStreamId : id <= this.highestPeerStreamId;
  }

  /** @internal */
  sendStreamFrame(type: FrameTypeName, streamId: number, payload: Uint8Array): void {
    if (this.closedWith || !this.streams?.has(streamId)) return;
    this.sendFrame(type, streamId, payload);
  }

  /** @internal Sends a DATA frame: through the transport's `sendData` when it has one, else encoded. */
  sendData(streamId: number, payload: Uint8Array): void {
    if (this.closedWith || !this.streams?.has(streamId)) return;
    if (!this.options.sendData) {
      this.sendFrame('data', streamId, payload);
      return;
    }
    // From Node's shared pool: a header costs no ArrayBuffer of its own.
    const header = Buffer.allocUnsafe(HEADER_SIZE);
    writeHeader(header, 0, FrameType.data, streamId, payload.length);
    try {
      if (this.options.sendData(header, payload) === false) this.full = true;
    } catch {
      this.shutdown(CloseCode.internalError, 'transport send failed', false);
    }
  }

  /** @internal */
  forget(id: number): void {
    this.streams?.delete(id);
    const pending = this.pendingOpens?.get(id);
    if (pending) {
      this.pendingOpens!.delete(id);
      pending.reject(new StreamError(StreamErrorCode.cancelled, 'stream destroyed while opening'));
    }
  }

  private sendFrame(type: FrameTypeName, streamId: number, payload: Uint8Array): void {
    if (this.closedWith) return;
    this.sendEncoded(encodeFrame({ type, streamId, payload }));
  }

  private sendEncoded(message: Uint8Array): void {
    try {
      if (this.options.send(message) === false) this.full = true;
    } catch {
      // A transport that throws is gone: close without trying to send again, so nothing escapes.
      this.shutdown(CloseCode.internalError, 'transport send failed', false);
    }
  }

  private shutdown(code: number, reason: string, remote: boolean): void {
    if (this.closedWith) return;
    const close: ConnectionClose = { code, name: closeCodeNames.get(code) ?? 'unknown', reason, remote };
    this.closedWith = close;
    const error = new StreamError(StreamErrorCode.connectionClosed, reason);
    const pendingOpens = this.pendingOpens;
    this.pendingOpens = undefined;
    for (const pending of pendingOpens?.values() ?? []) pending.reject(error);
    this.waitingForTransport = undefined;
    const streams = this.streams;
    this.streams = undefined;
    for (const stream of streams?.values() ?? []) stream.abort(stream.opening ? null : error);
    const pendingPings = this.pendingPings;
    this.pendingPings = undefined;
    for (const ping of pendingPings?.values() ?? []) ping.reject(new Error(`connection closed: ${reason}`));
    this.options.onClose?.(close);
  }
}
