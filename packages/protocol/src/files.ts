/**
 * The file sub-protocol: what flows inside ONE tunnel stream opened with a `{file: …}` target (file transfer,
 * issue 16). Integrity is end to end: the agent hashes what it reads from or writes to the device's disk, the
 * other end hashes what it sent or received, and the two are compared before a download is complete or an
 * upload takes the place of the file.
 *
 *   type (u8) | payload length (u32, big-endian) | payload
 *
 *   type  name     direction        payload
 *   1     data     both ways        file bytes (at most MAX_FILE_PAYLOAD a message)
 *   2     commit   client → agent   JSON {"size","sha256"}: everything was sent; write it into place if it matches
 *   3     meta     agent → client   JSON {"size","sha256","mode"}: read: the file's size and SHA-256, sent first
 *   4     ready    agent → client   empty: write: the temporary file is made, send the data
 *   5     done     agent → client   JSON {"size","sha256"}: what was read or written; the last message
 *   6     error    agent → client   JSON {"code","message"}: refused or failed; the last message
 *
 * Read: `meta` (or `error`), the file's bytes as `data`, then `done` (or `error`: the file changed meanwhile,
 * or could not be read). Write: `ready` (or `error`), the client's `data` then `commit`, then `done` once the
 * file is in place (or `error`: sizes or SHA-256 differ, the disk failed). After `done` or `error` the agent
 * ends the stream.
 *
 * Every incoming message is checked before use (type, direction, length, JSON shape): a violation throws
 * `FileProtocolError`, and the decoder never holds more than one message.
 */
import { z } from 'zod';

/** Bytes before a message's payload: type and length. */
export const FILE_HEADER_SIZE = 5;

/** Largest payload of a data message (64 KiB). */
export const MAX_FILE_PAYLOAD = 64 * 1024;

/** Largest payload of a JSON message, in bytes. */
const MAX_FILE_JSON_PAYLOAD = 1024;

/** Longest path a file request may name, in characters (Linux's PATH_MAX is 4096 bytes). */
export const MAX_FILE_PATH = 4096;

/** A lowercase hexadecimal SHA-256. */
export const sha256Schema = z
  .string()
  .regex(/^[0-9a-f]{64}$/, 'a SHA-256 as 64 lowercase hexadecimal characters');

/** An absolute path on the device, without NUL; at most `MAX_FILE_PATH` characters. */
export const filePathSchema = z
  .string()
  .min(2)
  .max(MAX_FILE_PATH)
  .refine((path) => path.startsWith('/'), 'an absolute path (starting with /)')
  .refine((path) => !path.includes('\0'), 'a path without NUL characters')
  .refine((path) => !path.endsWith('/'), 'a path to a file, not ending with /');

/** Largest file size the protocol describes, in bytes (2^53 - 1: exact as a JSON number). */
const MAX_FILE_SIZE = Number.MAX_SAFE_INTEGER;

/**
 * What a `{file: …}` OPEN asks: read a regular file, or write one (`size` and `sha256` if the client knows them
 * ahead; `mode` for a new file, default 0644, or the mode of the file it replaces).
 */
export const fileRequestSchema = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('read'), path: filePathSchema }),
  z.strictObject({
    op: z.literal('write'),
    path: filePathSchema,
    size: z.number().int().min(0).max(MAX_FILE_SIZE).optional(),
    sha256: sha256Schema.optional(),
    mode: z.number().int().min(0).max(0o7777).optional(),
  }),
]);
export type FileRequest = z.infer<typeof fileRequestSchema>;

/** Why the agent refused or failed a transfer. */
export const FileErrorCode = {
  /** The file (read) or its directory (write) does not exist. */
  notFound: 'not-found',
  /** The agent's user may not read or write there. */
  permissionDenied: 'permission-denied',
  /** The path is a directory, a device, a socket…: only regular files are transferred. */
  notAFile: 'not-a-file',
  /** What arrived is not what was sent: sizes or SHA-256 differ. Nothing was written. */
  mismatch: 'mismatch',
  /** The disk failed (no space, read-only file system, I/O error). */
  io: 'io',
} as const;
export type FileErrorCodeValue = (typeof FileErrorCode)[keyof typeof FileErrorCode];

const fileSummarySchema = z.strictObject({
  size: z.number().int().min(0).max(MAX_FILE_SIZE),
  sha256: sha256Schema,
});
const fileMetaSchema = fileSummarySchema.extend({ mode: z.number().int().min(0).max(0o7777) });
const fileErrorSchema = z.strictObject({
  code: z.enum(Object.values(FileErrorCode) as [FileErrorCodeValue, ...FileErrorCodeValue[]]),
  message: z.string().max(512),
});

export type FileSummary = z.infer<typeof fileSummarySchema>;

export type FileClientMessage =
  | { type: 'data'; data: Uint8Array }
  | { type: 'commit'; size: number; sha256: string };
export type FileAgentMessage =
  | { type: 'data'; data: Uint8Array }
  | { type: 'meta'; size: number; sha256: string; mode: number }
  | { type: 'ready' }
  | { type: 'done'; size: number; sha256: string }
  | { type: 'error'; code: FileErrorCodeValue; message: string };
export type FileMessage = FileClientMessage | FileAgentMessage;

const FileMessageType = { data: 1, commit: 2, meta: 3, ready: 4, done: 5, error: 6 } as const;
type FileMessageTypeName = keyof typeof FileMessageType;
const fileTypeNames = new Map<number, FileMessageTypeName>(
  Object.entries(FileMessageType).map(([name, value]) => [value, name as FileMessageTypeName]),
);
/** Who may send each message (`data` both). */
const sentBy: Record<FileMessageTypeName, 'client' | 'agent' | 'both'> = {
  data: 'both',
  commit: 'client',
  meta: 'agent',
  ready: 'agent',
  done: 'agent',
  error: 'agent',
};

/** The peer broke the file sub-protocol; the receiver should reset the stream. */
export class FileProtocolError extends Error {
  override name = 'FileProtocolError';
}

function header(type: FileMessageTypeName, length: number): Buffer {
  const bytes = Buffer.allocUnsafe(FILE_HEADER_SIZE);
  bytes.writeUInt8(FileMessageType[type], 0);
  bytes.writeUInt32BE(length, 1);
  return bytes;
}

function jsonMessage(type: FileMessageTypeName, value: unknown): Buffer {
  const payload = Buffer.from(JSON.stringify(value), 'utf8');
  return Buffer.concat([header(type, payload.length), payload]);
}

/** Encodes one message; data of any size is split into messages of at most `MAX_FILE_PAYLOAD`. */
export function encodeFileMessage(message: FileMessage): Buffer {
  switch (message.type) {
    case 'data': {
      const parts: Buffer[] = [];
      const data = message.data;
      for (let offset = 0; offset < data.length; offset += MAX_FILE_PAYLOAD) {
        const piece = data.subarray(offset, offset + MAX_FILE_PAYLOAD);
        parts.push(header('data', piece.length), Buffer.from(piece.buffer, piece.byteOffset, piece.length));
      }
      return Buffer.concat(parts);
    }
    case 'commit':
      return jsonMessage('commit', fileSummarySchema.parse({ size: message.size, sha256: message.sha256 }));
    case 'meta':
      return jsonMessage(
        'meta',
        fileMetaSchema.parse({ size: message.size, sha256: message.sha256, mode: message.mode }),
      );
    case 'ready':
      return header('ready', 0);
    case 'done':
      return jsonMessage('done', fileSummarySchema.parse({ size: message.size, sha256: message.sha256 }));
    case 'error':
      return jsonMessage(
        'error',
        fileErrorSchema.parse({ code: message.code, message: message.message.slice(0, 512) }),
      );
    default:
      return assertNever(message);
  }
}

function assertNever(value: never): never {
  throw new Error(`unreachable: ${JSON.stringify(value)}`);
}

/**
 * An incremental decoder of what one side sends (`from`): feed it the stream's chunks as they come (split
 * anywhere) and it answers the complete messages. After it threw once it stays failed.
 */
export class FileDecoder {
  private pending: Buffer = Buffer.alloc(0);
  private failed: FileProtocolError | null = null;

  constructor(private readonly from: 'client' | 'agent') {}

  /** Decodes what `chunk` completes. Throws `FileProtocolError` on garbage. */
  push(chunk: Uint8Array): FileMessage[] {
    if (this.failed) throw this.failed;
    try {
      return this.decode(chunk);
    } catch (error) {
      this.failed = error instanceof FileProtocolError ? error : new FileProtocolError(String(error));
      this.pending = Buffer.alloc(0);
      throw this.failed;
    }
  }

  /** The stream ended: throws if it ended inside a message. */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.pending.length > 0)
      throw new FileProtocolError(`the stream ended inside a message (${this.pending.length} bytes)`);
  }

  private decode(chunk: Uint8Array): FileMessage[] {
    let bytes =
      this.pending.length === 0
        ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length)
        : Buffer.concat([this.pending, chunk]);
    const messages: FileMessage[] = [];
    while (bytes.length >= FILE_HEADER_SIZE) {
      const typeByte = bytes.readUInt8(0);
      const type = fileTypeNames.get(typeByte);
      if (type === undefined) throw new FileProtocolError(`unknown file message type ${typeByte}`);
      const sender = sentBy[type];
      if (sender !== 'both' && sender !== this.from)
        throw new FileProtocolError(`a ${type} message from the ${this.from}`);
      const length = bytes.readUInt32BE(1);
      const limit = type === 'data' ? MAX_FILE_PAYLOAD : MAX_FILE_JSON_PAYLOAD;
      if (length > limit)
        throw new FileProtocolError(`${type} message of ${length} bytes exceeds the maximum of ${limit}`);
      if (bytes.length < FILE_HEADER_SIZE + length) break;
      const payload = bytes.subarray(FILE_HEADER_SIZE, FILE_HEADER_SIZE + length);
      bytes = bytes.subarray(FILE_HEADER_SIZE + length);
      messages.push(this.message(type, payload));
    }
    // Copied: the caller's chunk may be reused once we return.
    this.pending = Buffer.from(bytes);
    return messages;
  }

  private message(type: FileMessageTypeName, payload: Buffer): FileMessage {
    switch (type) {
      case 'data':
        // A copy of our own: the stream's buffer may be reused.
        return { type, data: Buffer.from(payload) };
      case 'ready':
        if (payload.length !== 0) throw new FileProtocolError('a ready message with a payload');
        return { type };
      case 'commit':
        return { type, ...parseJson(fileSummarySchema, payload, type) };
      case 'meta':
        return { type, ...parseJson(fileMetaSchema, payload, type) };
      case 'done':
        return { type, ...parseJson(fileSummarySchema, payload, type) };
      case 'error':
        return { type, ...parseJson(fileErrorSchema, payload, type) };
      default:
        return assertNever(type);
    }
  }
}

function parseJson<T>(schema: z.ZodType<T>, payload: Buffer, what: string): T {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    throw new FileProtocolError(`${what}: payload is not UTF-8 JSON`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new FileProtocolError(
      `${what}: invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message}`,
    );
  }
  return parsed.data;
}
