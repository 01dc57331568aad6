/**
 * The exec sub-protocol: what flows inside ONE tunnel stream opened with an `{exec: …}` target.
 *
 * The tunnel stream is a byte stream (a Duplex), so a process's stdin, stdout, stderr, window size
 * changes, signals and exit status are framed inside it:
 *
 *   type (u8) | payload length (u32, big-endian) | payload
 *
 *   type  name       direction        payload
 *   1     stdin      client → agent   bytes for the process's stdin (or the terminal's input)
 *   2     stdout     agent → client   bytes the process wrote to stdout (with a pty: the terminal output)
 *   3     stderr     agent → client   bytes the process wrote to stderr (never with a pty)
 *   4     eof-stdin  client → agent   empty: close the process's stdin (ignored with a pty)
 *   5     resize     client → agent   JSON {"cols","rows"}: the pty's new size
 *   6     signal     client → agent   JSON {"name"}: a signal for the process, e.g. "TERM" or "SIGTERM"
 *   7     exit       agent → client   JSON {"code"} or {"signal"}: the process ended; the last message
 *
 * After `exit` the agent ends the stream (FIN). The client may end its side after `eof-stdin`. Flow
 * control is the tunnel stream's own: the decoder is fed only as fast as its reader consumes.
 *
 * Every incoming message is checked before use: an unknown type, a message from the wrong direction,
 * a payload larger than the limit or a malformed JSON payload throws `ExecProtocolError`, and the
 * decoder never buffers more than one message (header + the largest payload allowed).
 */
import { z } from 'zod';

/** Bytes before a message's payload: type and length. */
export const EXEC_HEADER_SIZE = 5;

/** Largest payload of a stdin/stdout/stderr message unless the decoder is configured lower (64 KiB). */
export const MAX_EXEC_PAYLOAD = 64 * 1024;

/** Largest payload of a JSON message (resize, signal, exit), in bytes. */
const MAX_EXEC_JSON_PAYLOAD = 256;

export const ExecMessageType = {
  stdin: 1,
  stdout: 2,
  stderr: 3,
  eofStdin: 4,
  resize: 5,
  signal: 6,
  exit: 7,
} as const;
type ExecMessageTypeName = keyof typeof ExecMessageType;

const execTypeNames = new Map<number, ExecMessageTypeName>(
  Object.entries(ExecMessageType).map(([name, value]) => [value, name as ExecMessageTypeName]),
);

export const execResizeSchema = z.strictObject({
  cols: z.number().int().min(1).max(10_000),
  rows: z.number().int().min(1).max(10_000),
});

/** A signal name as `kill -l` spells it, with or without the `SIG` prefix. */
export const execSignalSchema = z.strictObject({
  name: z
    .string()
    .min(2)
    .max(16)
    .regex(/^(SIG)?[A-Z][A-Z0-9]*$/, 'a signal name such as TERM'),
});

/** Exit status: a code (0–255) when the process exited, or the signal that ended it. */
export const execExitSchema = z.union([
  z.strictObject({ code: z.number().int().min(0).max(255) }),
  z.strictObject({ signal: z.string().min(1).max(16) }),
]);
export type ExecExitStatus = z.infer<typeof execExitSchema>;

/** Messages a client (the SSH gateway, a test) sends to the agent. */
export type ExecClientMessage =
  | { type: 'stdin'; data: Uint8Array }
  | { type: 'eofStdin' }
  | { type: 'resize'; cols: number; rows: number }
  | { type: 'signal'; name: string };

/** Messages the agent sends to the client. */
export type ExecAgentMessage =
  | { type: 'stdout'; data: Uint8Array }
  | { type: 'stderr'; data: Uint8Array }
  | { type: 'exit'; status: ExecExitStatus };

export type ExecMessage = ExecClientMessage | ExecAgentMessage;

/** Which side sent a message: a decoder accepts only what its peer may send. */
export type ExecSender = 'client' | 'agent';

const sentBy: Record<ExecMessageTypeName, ExecSender> = {
  stdin: 'client',
  eofStdin: 'client',
  resize: 'client',
  signal: 'client',
  stdout: 'agent',
  stderr: 'agent',
  exit: 'agent',
};

/** The peer broke the exec sub-protocol; the receiver should reset the stream. */
export class ExecProtocolError extends Error {
  override name = 'ExecProtocolError';
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

function header(type: ExecMessageTypeName, length: number): Buffer {
  const bytes = Buffer.allocUnsafe(EXEC_HEADER_SIZE);
  bytes.writeUInt8(ExecMessageType[type], 0);
  bytes.writeUInt32BE(length, 1);
  return bytes;
}

/**
 * Encodes one message. Data messages larger than `MAX_EXEC_PAYLOAD` are split into several, so a
 * caller may pass a chunk of any size. Answers one buffer (header and payload together).
 */
export function encodeExecMessage(message: ExecMessage): Buffer {
  switch (message.type) {
    case 'stdin':
    case 'stdout':
    case 'stderr': {
      const parts: Buffer[] = [];
      const data = message.data;
      // An empty data message carries nothing: encode it as nothing, rather than a message to ignore.
      for (let offset = 0; offset < data.length; offset += MAX_EXEC_PAYLOAD) {
        const piece = data.subarray(offset, offset + MAX_EXEC_PAYLOAD);
        parts.push(
          header(message.type, piece.length),
          Buffer.from(piece.buffer, piece.byteOffset, piece.length),
        );
      }
      return Buffer.concat(parts);
    }
    case 'eofStdin':
      return header('eofStdin', 0);
    case 'resize':
      return jsonMessage('resize', execResizeSchema.parse({ cols: message.cols, rows: message.rows }));
    case 'signal':
      return jsonMessage('signal', execSignalSchema.parse({ name: message.name }));
    case 'exit':
      return jsonMessage('exit', execExitSchema.parse(message.status));
    default:
      return assertNever(message);
  }
}

function jsonMessage(type: ExecMessageTypeName, value: unknown): Buffer {
  const payload = textEncoder.encode(JSON.stringify(value));
  return Buffer.concat([header(type, payload.length), payload]);
}

function assertNever(value: never): never {
  throw new Error(`unreachable: ${JSON.stringify(value)}`);
}

export interface ExecDecoderOptions {
  /** Who sends the bytes this decoder reads: messages only the other side may send are refused. */
  from: ExecSender;
  /** Largest data payload accepted, in bytes. Default `MAX_EXEC_PAYLOAD`. */
  maxPayload?: number;
}

/**
 * An incremental decoder: feed it the stream's chunks as they come (split anywhere) and it answers the
 * complete messages. After it threw once it stays failed: the stream is broken and must be reset.
 */
export class ExecDecoder {
  private readonly from: ExecSender;
  private readonly maxPayload: number;
  /** Bytes of an incomplete message; never more than a header plus `maxPayload`. */
  private pending: Buffer = Buffer.alloc(0);
  private failed: ExecProtocolError | null = null;

  constructor(options: ExecDecoderOptions) {
    this.from = options.from;
    this.maxPayload = options.maxPayload ?? MAX_EXEC_PAYLOAD;
  }

  /** Bytes held for an incomplete message. */
  get bufferedBytes(): number {
    return this.pending.length;
  }

  /** Decodes what `chunk` completes. Throws `ExecProtocolError` on garbage. */
  push(chunk: Uint8Array): ExecMessage[] {
    if (this.failed) throw this.failed;
    try {
      return this.decode(chunk);
    } catch (error) {
      this.failed = error instanceof ExecProtocolError ? error : new ExecProtocolError(String(error));
      this.pending = Buffer.alloc(0);
      throw this.failed;
    }
  }

  /** The stream ended: throws if it ended inside a message. */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.pending.length > 0) {
      this.failed = new ExecProtocolError(`stream ended inside a message (${this.pending.length} bytes)`);
      throw this.failed;
    }
  }

  private decode(chunk: Uint8Array): ExecMessage[] {
    const view = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let bytes = this.pending.length === 0 ? view : Buffer.concat([this.pending, view]);
    const messages: ExecMessage[] = [];
    while (bytes.length >= EXEC_HEADER_SIZE) {
      const typeByte = bytes.readUInt8(0);
      const type = execTypeNames.get(typeByte);
      if (type === undefined) throw new ExecProtocolError(`unknown exec message type ${typeByte}`);
      if (sentBy[type] !== this.from) {
        throw new ExecProtocolError(`${type} message from the ${this.from}, which may not send it`);
      }
      const length = bytes.readUInt32BE(1);
      const limit = this.limitOf(type);
      // Checked on the header alone, so an absurd length is refused before any of it is buffered.
      if (length > limit) {
        throw new ExecProtocolError(`${type} message of ${length} bytes exceeds the maximum of ${limit}`);
      }
      if (bytes.length < EXEC_HEADER_SIZE + length) break;
      const payload = bytes.subarray(EXEC_HEADER_SIZE, EXEC_HEADER_SIZE + length);
      messages.push(this.message(type, payload));
      bytes = bytes.subarray(EXEC_HEADER_SIZE + length);
    }
    // Copy the remainder: it may be a view into a large chunk the caller would otherwise keep alive.
    this.pending = Buffer.from(bytes);
    return messages;
  }

  private limitOf(type: ExecMessageTypeName): number {
    switch (type) {
      case 'stdin':
      case 'stdout':
      case 'stderr':
        return this.maxPayload;
      case 'eofStdin':
        return 0;
      case 'resize':
      case 'signal':
      case 'exit':
        return MAX_EXEC_JSON_PAYLOAD;
      default:
        return assertNever(type);
    }
  }

  private message(type: ExecMessageTypeName, payload: Buffer): ExecMessage {
    switch (type) {
      case 'stdin':
      case 'stdout':
      case 'stderr':
        // Copy: the payload is a view into a buffer that holds the following messages too.
        return { type, data: Buffer.from(payload) };
      case 'eofStdin':
        return { type };
      case 'resize':
        return { type, ...parseJson(execResizeSchema, payload, type) };
      case 'signal':
        return { type, ...parseJson(execSignalSchema, payload, type) };
      case 'exit':
        return { type, status: parseJson(execExitSchema, payload, type) };
      default:
        return assertNever(type);
    }
  }
}

function parseJson<T>(schema: z.ZodType<T>, payload: Uint8Array, type: string): T {
  let value: unknown;
  try {
    value = JSON.parse(textDecoder.decode(payload));
  } catch {
    throw new ExecProtocolError(`${type} message is not UTF-8 JSON`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ExecProtocolError(
      `${type} message invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message}`,
    );
  }
  return parsed.data;
}
