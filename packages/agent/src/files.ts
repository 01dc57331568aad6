/**
 * File transfer: the server opens a stream with target `{file: {op: 'read' | 'write', path, …}}` and the agent
 * reads or writes that file, speaking the file sub-protocol of @fleetgate/protocol (files.ts) inside the stream.
 * The agent runs it only when its exec service is on (agent.ts): writing any file is as strong as a shell.
 *
 * - Read: only a regular file (following symlinks). Its first `size` bytes (fstat at open) are hashed, the
 *   SHA-256 sent ahead (`meta`, so the server can give it as a header), then read again and sent while hashed
 *   again; a second hash that differs (the file changed meanwhile) ends the transfer with `mismatch`, so the
 *   receiver never takes a changed file for the one announced. Reading twice costs disk time, not memory.
 * - Write: into a temporary file beside the target (same file system, so the rename is atomic), renamed into
 *   place only once the client's `commit` says how many bytes and which SHA-256 it sent, and both (and the
 *   `size`/`sha256` of the request, when given) equal what reached the disk, after fsync. Anything else — a
 *   mismatch, a stream reset or lost connection, a full disk — removes the temporary file: the path holds the old
 *   file or the whole new one, never a part.
 *
 * Backpressure: reads wait for the stream's 'drain' (the peer's credit window); writes go to disk one message at
 * a time while the stream is paused, so a slow disk stops returning credit to the sender.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import {
  encodeFileMessage,
  FileDecoder,
  FileErrorCode,
  type FileErrorCodeValue,
  type FileMessage,
  type FileRequest,
  type IncomingOpen,
  StreamError,
  StreamErrorCode,
  type TunnelStream,
} from '@fleetgate/protocol';
import type { Logger } from './log.ts';

export interface FileTransferOptions {
  log: Logger;
}

/** Bytes read from disk at a time. */
const READ_SIZE = 64 * 1024;

/** A refusal or failure told to the client as an `error` message. */
class TransferError extends Error {
  constructor(
    readonly code: FileErrorCodeValue,
    message: string,
  ) {
    super(message);
  }
}

/** The stream went away (reset, connection lost): nobody to tell anything. */
class StreamGone extends Error {}

/** Answers an OPEN for `{file: …}`. */
export function handleFileStream(
  open: IncomingOpen,
  request: FileRequest,
  options: FileTransferOptions,
): void {
  const stream = open.accept();
  stream.on('error', () => {});
  const transfer = request.op === 'read' ? readFile(stream, request.path) : writeFile(stream, request);
  transfer.then(
    (summary) => {
      options.log.info('file transferred', { op: request.op, path: request.path, ...summary });
      if (!stream.destroyed) stream.end();
    },
    (error: unknown) => {
      if (error instanceof StreamGone || stream.destroyed) {
        options.log.info('file transfer abandoned', { op: request.op, path: request.path });
        stream.destroy();
        return;
      }
      const refusal =
        error instanceof TransferError
          ? error
          : new TransferError(FileErrorCode.io, `unexpected failure: ${(error as Error).message}`);
      options.log.info('file transfer refused', {
        op: request.op,
        path: request.path,
        reason: refusal.message,
      });
      stream.write(encodeFileMessage({ type: 'error', code: refusal.code, message: refusal.message }));
      stream.end();
    },
  );
}

/** Writes one message, waiting for credit when the stream's buffer is full. */
async function send(stream: TunnelStream, message: FileMessage): Promise<void> {
  if (stream.destroyed || stream.writableEnded) throw new StreamGone();
  if (stream.write(encodeFileMessage(message))) return;
  await new Promise<void>((resolve, reject) => {
    const onDrain = () => {
      stream.off('close', onClose);
      resolve();
    };
    const onClose = () => {
      stream.off('drain', onDrain);
      reject(new StreamGone());
    };
    stream.once('drain', onDrain);
    stream.once('close', onClose);
  });
}

/** A file system error as the client should read it. */
function transferErrorOf(error: unknown, filePath: string, doing: string): TransferError {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return new TransferError(FileErrorCode.notFound, `${filePath}: no such file or directory`);
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new TransferError(
        FileErrorCode.permissionDenied,
        `${filePath}: the agent may not ${doing} it (${code}); choose a path its user may ${doing}`,
      );
    case 'EISDIR':
      return new TransferError(FileErrorCode.notAFile, `${filePath} is a directory: name a file`);
    default:
      return new TransferError(
        FileErrorCode.io,
        `${filePath}: cannot ${doing} it: ${code ?? (error as Error).message}`,
      );
  }
}

function notAFile(filePath: string, stats: fs.Stats): TransferError {
  const kind = stats.isDirectory() ? 'a directory' : 'not a regular file (a device, socket or pipe)';
  return new TransferError(
    FileErrorCode.notAFile,
    `${filePath} is ${kind}: only regular files are transferred`,
  );
}

/** Hashes (and with `each`, hands on) the first `size` bytes of `handle`. Answers the hex SHA-256. */
async function readThrough(
  handle: fsp.FileHandle,
  size: number,
  each?: (bytes: Buffer) => Promise<void>,
): Promise<string> {
  const hash = createHash('sha256');
  let position = 0;
  while (position < size) {
    // A new buffer per read when handing bytes on: the stream may hold on to them until it has credit.
    const buffer = Buffer.allocUnsafe(Math.min(READ_SIZE, size - position));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0)
      throw new TransferError(FileErrorCode.mismatch, 'the file got shorter while it was read: try again');
    const bytes = buffer.subarray(0, bytesRead);
    hash.update(bytes);
    if (each) await each(bytes);
    position += bytesRead;
  }
  return hash.digest('hex');
}

async function readFile(stream: TunnelStream, filePath: string) {
  // Checked before opening: opening a FIFO for reading would wait for a writer.
  let stats: fs.Stats;
  try {
    stats = await fsp.stat(filePath);
  } catch (error) {
    throw transferErrorOf(error, filePath, 'read');
  }
  if (!stats.isFile()) throw notAFile(filePath, stats);
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(filePath, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (error) {
    throw transferErrorOf(error, filePath, 'read');
  }
  try {
    const opened = await handle.stat();
    if (!opened.isFile()) throw notAFile(filePath, opened);
    const size = opened.size;
    const sha256 = await readThrough(handle, size).catch((error: unknown) => {
      throw error instanceof TransferError ? error : transferErrorOf(error, filePath, 'read');
    });
    await send(stream, { type: 'meta', size, sha256, mode: opened.mode & 0o7777 });
    const sent = await readThrough(handle, size, (bytes) =>
      send(stream, { type: 'data', data: bytes }),
    ).catch((error: unknown) => {
      throw error instanceof TransferError || error instanceof StreamGone
        ? error
        : transferErrorOf(error, filePath, 'read');
    });
    if (sent !== sha256) {
      throw new TransferError(
        FileErrorCode.mismatch,
        `${filePath} changed while it was read (SHA-256 ${sent}, announced ${sha256}): try again`,
      );
    }
    await send(stream, { type: 'done', size, sha256 });
    return { size, sha256 };
  } finally {
    await handle.close().catch(() => {});
  }
}

async function writeFile(stream: TunnelStream, request: Extract<FileRequest, { op: 'write' }>) {
  // A symlink is written through, as `cp` and scp do: the file it points to is replaced.
  let target = request.path;
  let existing: fs.Stats | undefined;
  try {
    const link = await fsp.lstat(target);
    if (link.isSymbolicLink()) target = await fsp.realpath(target);
    existing = await fsp.stat(target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
      throw transferErrorOf(error, request.path, 'write');
  }
  if (existing && !existing.isFile()) throw notAFile(request.path, existing);
  const directory = path.dirname(target);
  try {
    const dir = await fsp.stat(directory);
    if (!dir.isDirectory())
      throw new TransferError(FileErrorCode.notFound, `${directory} is not a directory`);
  } catch (error) {
    if (error instanceof TransferError) throw error;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new TransferError(
        FileErrorCode.notFound,
        `directory ${directory} does not exist: create it first`,
      );
    throw transferErrorOf(error, directory, 'write');
  }
  const mode = request.mode ?? (existing ? existing.mode & 0o7777 : 0o644);
  const temporary = path.join(
    directory,
    `.${path.basename(target)}.fleetgate-${randomBytes(6).toString('hex')}.part`,
  );
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(temporary, 'wx', 0o600);
  } catch (error) {
    throw transferErrorOf(error, directory, 'write');
  }
  let placed = false;
  try {
    await send(stream, { type: 'ready' });
    const decoder = new FileDecoder('client');
    const hash = createHash('sha256');
    let written = 0;
    let commit: { size: number; sha256: string } | undefined;
    try {
      // Ends when the client ends its side after `commit`; throws when the stream is reset or lost. Not destroyed
      // on a refusal inside the loop: the refusal is still to be sent.
      for await (const chunk of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
        for (const message of decoder.push(chunk)) {
          if (message.type === 'commit' && commit === undefined) {
            commit = { size: message.size, sha256: message.sha256 };
            continue;
          }
          if (message.type !== 'data' || commit !== undefined)
            throw new StreamError(StreamErrorCode.internal, `unexpected ${message.type} message`);
          if (request.size !== undefined && written + message.data.length > request.size) {
            throw new TransferError(
              FileErrorCode.mismatch,
              `more than the announced ${request.size} bytes arrived: nothing was written`,
            );
          }
          await handle.write(message.data);
          hash.update(message.data);
          written += message.data.length;
        }
      }
      decoder.end();
    } catch (error) {
      if (error instanceof TransferError) throw error;
      if (error instanceof StreamError && !stream.destroyed) {
        stream.destroy(error);
      }
      throw new StreamGone((error as Error).message);
    }
    if (commit === undefined) throw new StreamGone('the stream ended without a commit');
    const sha256 = hash.digest('hex');
    const expected = [
      ['the size the client sent', commit.size, written],
      ['the size announced', request.size ?? written, written],
    ] as const;
    for (const [what, want, got] of expected) {
      if (want !== got)
        throw new TransferError(
          FileErrorCode.mismatch,
          `${got} bytes arrived, ${what} is ${want}: nothing was written; send it again`,
        );
    }
    for (const [what, want] of [
      ['the SHA-256 of what was sent', commit.sha256],
      ['the SHA-256 you gave', request.sha256 ?? sha256],
    ] as const) {
      if (want !== sha256)
        throw new TransferError(
          FileErrorCode.mismatch,
          `the SHA-256 of what arrived (${sha256}) is not ${what} (${want}): nothing was written`,
        );
    }
    try {
      await handle.chmod(mode);
      await handle.sync();
      await handle.close();
      await fsp.rename(temporary, target);
      placed = true;
    } catch (error) {
      throw transferErrorOf(error, request.path, 'write');
    }
    await syncDirectory(directory);
    await send(stream, { type: 'done', size: written, sha256 });
    return { size: written, sha256 };
  } finally {
    if (!placed) {
      await handle.close().catch(() => {});
      await fsp.rm(temporary, { force: true }).catch(() => {});
    }
  }
}

/** Makes the rename durable (the directory entry); a file system without directory fsync is left as it is. */
async function syncDirectory(directory: string): Promise<void> {
  try {
    const handle = await fsp.open(directory, fs.constants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // EINVAL on some file systems; the rename itself is done.
  }
}
