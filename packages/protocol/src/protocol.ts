/**
 * The fleetgate tunnel wire format (DESIGN.md section 6), top to bottom:
 *
 *   1. version, frame types and close codes
 *   2. the frame codec (one frame = one transport message, e.g. one binary WebSocket message)
 *   3. control messages (JSON, validated with zod before use), one union per direction
 *
 * The stream multiplexer that speaks it (open/accept, data, half-close, reset, per-stream credit windows,
 * ping/pong, version exchange and typed connection close) is in multiplexer.ts.
 *
 * Frame layout (all integers big-endian):
 *
 *   type (u8) | flags (u8) | stream id (u32) | payload length (u32) | payload
 *
 * The flags byte is reserved and must be 0 in version 1 (a peer that sets one speaks a newer
 * dialect and is refused rather than misread). The length is explicit even though a WebSocket
 * message already has one, so a truncated or padded message is detected instead of being guessed at.
 */
import { z } from 'zod';
import { fileRequestSchema } from './files.ts';

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
/** The name of a close code, or `unknown` for a code a newer peer sent. */
export function closeCodeName(code: number): CloseCodeName | 'unknown' {
  return closeCodeNames.get(code) ?? 'unknown';
}

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

/** Writes a frame header (type, zero flags, stream id, payload length) into `bytes` at `at`. */
export function writeHeader(
  bytes: Uint8Array,
  at: number,
  type: number,
  streamId: number,
  length: number,
): void {
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
 * a command to run (`exec`), or a file to read or write (`file`, the file sub-protocol of files.ts).
 */
export const openTargetSchema = z.union([
  z.strictObject({
    port: z.number().int().min(1).max(65535),
    host: z.string().min(1).max(253).optional(),
  }),
  z.strictObject({ service: z.string().min(1).max(64) }),
  z.strictObject({ exec: execRequestSchema }),
  z.strictObject({ file: fileRequestSchema }),
]);
export type OpenTarget = z.infer<typeof openTargetSchema>;

/** The payload of OPEN_ERR and RESET: why a stream was refused or reset. */
export const streamErrorSchema = z.strictObject({
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

export const textEncoder = new TextEncoder();
/** UTF-8 that refuses malformed bytes: a peer's bad text is its protocol error, not replaced characters. */
export const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** A JSON payload (OPEN targets, OPEN_ERR and RESET reasons, control messages). */
export function encodeJson(value: unknown): Uint8Array {
  return textEncoder.encode(JSON.stringify(value));
}

/** Parses and validates a JSON payload; anything malformed is the peer's protocol error. */
export function decodeJson<T>(schema: z.ZodType<T>, payload: Uint8Array, what: string): T {
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
