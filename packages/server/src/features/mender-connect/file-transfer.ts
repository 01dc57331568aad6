import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';
import {
  encodeFileMessage,
  FileDecoder,
  FileErrorCode,
  type FileErrorCodeValue,
  type FileMessage,
  type FileRequest,
  StreamError,
  StreamErrorCode,
} from '@fleetgate/protocol';
import type { MenderConnection, SessionHandler } from './connections.ts';
import { decodeBody, encodeBody, errorTextOf, Proto, type ProtoMessage } from './protocol.ts';

/**
 * File transfer with a mender-connect device (proto 2, mender-connect session/filetransfer.go), as the file stream
 * the stream router relays: fleetgate's file sub-protocol (@fleetgate/protocol files.ts) on the person's side.
 *
 * - read: `stat` (size, mode; regular files only), then `get_file`: the device sends `file_chunk`s of 4 KiB with
 *   their `offset`, an empty one at the end, and waits for `ack{offset}` once 20 chunks are unacknowledged;
 *   fleetgate acknowledges every 10. fleetgate's protocol announces the SHA-256 before the bytes and the device
 *   cannot hash, so the file is first received into a temporary file (hashed on the way), then relayed.
 * - write: `put_file{path, mode}` answered by `ack{offset: 0}`, then `file_chunk`s of 4 KiB, at most 10
 *   unacknowledged (the device acknowledges the last chunk it wrote), an empty chunk at the end; the device then
 *   renames its temporary file into place. It hashes nothing and says nothing once the file is in place, so
 *   fleetgate reads the file back (`get_file`, retried while the device is still busy with the upload) and
 *   answers `done` with the SHA-256 of what is on the device's disk, or `mismatch`.
 *
 * Offsets are msgpack int64 (the device type-asserts `int64`): sent as BigInt, which msgpackr writes so.
 */

/** Bytes per `file_chunk` (mender-connect's `FileTransferBufSize`). */
const CHUNK = 4096;
/** Chunks sent ahead of the device's acknowledgement (its `ACKSlidingWindowSend`), and how often we acknowledge. */
const WINDOW = 10;
/** How long the device has to answer a step, in milliseconds. */
const ANSWER_TIMEOUT_MS = 30_000;
/** Bytes read from the temporary file per message to the person. */
const RELAY_PIECE = 64 * 1024;

/** A file error, as the person's side reads it (the device's own text, or what fleetgate found). */
class FileTransferError extends Error {
  constructor(
    readonly code: FileErrorCodeValue,
    message: string,
  ) {
    super(message.slice(0, 512));
  }
}

/** The device's error text, with the file protocol's code for it. */
function deviceError(text: string): FileTransferError {
  const lower = text.toLowerCase();
  const code = lower.includes('no such file')
    ? FileErrorCode.notFound
    : lower.includes('permission denied') || lower.includes('access denied')
      ? FileErrorCode.permissionDenied
      : lower.includes('directory') || lower.includes('irregular')
        ? FileErrorCode.notAFile
        : FileErrorCode.io;
  return new FileTransferError(code, text);
}

function integerOf(value: unknown): number | undefined {
  if (typeof value === 'bigint') return Number(value);
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  return undefined;
}

export class FileTransferStream extends Duplex implements SessionHandler {
  private readonly sid: string;
  private readonly decoder = new FileDecoder('client');
  private readonly inbox: ProtoMessage[] = [];
  private waiter: { resolve(message: ProtoMessage): void; reject(error: Error): void } | undefined;
  /** The device's error or the connection's loss: every later step fails with it. */
  private broken: Error | undefined;
  private finished = false;
  /** Write: set once the device is ready for the bytes. */
  private uploadReady: Promise<void> | undefined;
  private pendingBytes: Buffer = Buffer.alloc(0);
  private sent = 0;
  private readonly sentHash = createHash('sha256');
  private readonly inFlight: number[] = [];
  /** Read: the relay waits here for the person's side to take more. */
  private pull: (() => void) | undefined;

  private constructor(
    private readonly connection: MenderConnection,
    private readonly request: FileRequest,
  ) {
    super({ allowHalfOpen: true });
    this.sid = connection.newSession(this);
  }

  /** Opens the transfer's session; the file protocol's first answer (meta/ready or error) follows on the stream. */
  static async open(connection: MenderConnection, request: FileRequest): Promise<FileTransferStream> {
    const stream = new FileTransferStream(connection, request);
    try {
      const protocols = await connection.handshake(stream.sid);
      if (!protocols.includes(Proto.fileTransfer))
        throw new StreamError(
          StreamErrorCode.notAllowed,
          'file transfer is turned off in mender-connect on the device',
        );
    } catch (err) {
      stream.finished = true;
      stream.destroy();
      if (err instanceof StreamError) throw err;
      throw new StreamError(StreamErrorCode.refused, (err as Error).message);
    }
    if (request.op === 'read') void stream.download().catch((err: unknown) => stream.fail(err));
    else {
      stream.uploadReady = stream.startUpload();
      stream.uploadReady.catch((err: unknown) => stream.fail(err));
    }
    return stream;
  }

  // --- the device's messages ------------------------------------------------------------------------------

  receive(message: ProtoMessage): void {
    const { proto, typ } = message.hdr;
    if (typ === 'error' || (proto === Proto.control && typ === 'close')) {
      this.break(deviceError(typ === 'close' ? 'the device closed the session' : errorTextOf(message.body)));
      return;
    }
    if (proto !== Proto.fileTransfer) return;
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter.resolve(message);
    } else this.inbox.push(message);
  }

  connectionClosed(reason: string): void {
    this.break(new StreamError(StreamErrorCode.connectionClosed, reason));
    this.destroy(new StreamError(StreamErrorCode.connectionClosed, reason));
  }

  private break(error: Error): void {
    this.broken ??= error;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(error);
  }

  /** The device's next message, which must be of type `typ`. */
  private async expect(typ: string): Promise<ProtoMessage> {
    const message =
      this.inbox.shift() ??
      (await new Promise<ProtoMessage>((resolve, reject) => {
        if (this.broken) {
          reject(this.broken);
          return;
        }
        const timer = setTimeout(() => {
          this.waiter = undefined;
          reject(new StreamError(StreamErrorCode.timeout, 'the device stopped answering the file transfer'));
        }, ANSWER_TIMEOUT_MS);
        this.waiter = {
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        };
      }));
    if (message.hdr.typ !== typ)
      throw new FileTransferError(
        FileErrorCode.io,
        `the device sent ${message.hdr.typ} where ${typ} was due`,
      );
    return message;
  }

  private send(typ: string, fields: { body?: Buffer; offset?: number } = {}): void {
    this.connection.send({
      proto: Proto.fileTransfer,
      typ,
      sid: this.sid,
      ...(fields.offset === undefined ? {} : { props: { offset: BigInt(fields.offset) } }),
      ...(fields.body ? { body: fields.body } : {}),
    });
  }

  /**
   * `get_file` of `file`: every chunk to `sink` in order (awaited), acknowledged every `WINDOW` chunks; answers the
   * size and SHA-256 received. A device still busy with this session's upload says so: asked again shortly.
   */
  private async receiveFile(
    file: string,
    sink?: (bytes: Buffer) => Promise<void>,
    /** A file being renamed into place (the upload's read-back) may not be there yet: asked again too. */
    mayBeMissing = false,
  ) {
    for (let attempt = 0; ; attempt++) {
      this.send('get_file', { body: encodeBody({ path: file }) });
      try {
        const hash = createHash('sha256');
        let received = 0;
        let acknowledged = 0;
        for (;;) {
          const chunk = await this.expect('file_chunk');
          if (integerOf(chunk.hdr.props.offset) !== received)
            throw new FileTransferError(FileErrorCode.io, 'the device sent a chunk out of order');
          if (chunk.body.length === 0) {
            this.send('ack', { offset: received });
            return { size: received, sha256: hash.digest('hex') };
          }
          hash.update(chunk.body);
          await sink?.(chunk.body);
          received += chunk.body.length;
          if (received - acknowledged >= WINDOW * CHUNK) {
            this.send('ack', { offset: received });
            acknowledged = received;
          }
        }
      } catch (err) {
        const busy =
          err instanceof FileTransferError &&
          (/another file transfer is in progress/.test(err.message) ||
            (mayBeMissing && err.code === FileErrorCode.notFound));
        if (!busy || attempt >= 50) throw err;
        this.broken = undefined;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  // --- read -----------------------------------------------------------------------------------------------

  private async download(): Promise<void> {
    const file = this.request.path;
    this.send('stat', { body: encodeBody({ path: file }) });
    const info = decodeBody((await this.expect('file_info')).body);
    const goMode = integerOf(info.mode) ?? 0o644;
    if (!isOnlyPermissionBits(goMode))
      throw new FileTransferError(FileErrorCode.notAFile, `${file} is not a regular file`);
    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'fleetgate-mender-file-'));
    try {
      const spool = path.join(dir, 'file');
      const handle = await fs.promises.open(spool, 'w', 0o600);
      let summary: { size: number; sha256: string };
      try {
        summary = await this.receiveFile(file, async (bytes) => {
          await handle.write(bytes);
        });
      } finally {
        await handle.close();
      }
      this.answer({ type: 'meta', size: summary.size, sha256: summary.sha256, mode: goMode & 0o777 });
      const reader = await fs.promises.open(spool, 'r');
      try {
        const piece = Buffer.allocUnsafe(RELAY_PIECE);
        for (;;) {
          const { bytesRead } = await reader.read(piece, 0, RELAY_PIECE);
          if (bytesRead === 0) break;
          if (this.destroyed) return;
          if (!this.answer({ type: 'data', data: Buffer.from(piece.subarray(0, bytesRead)) }))
            await new Promise<void>((resolve) => {
              this.pull = resolve;
            });
        }
      } finally {
        await reader.close();
      }
      this.complete(summary);
    } finally {
      await fs.promises.rm(dir, { recursive: true, force: true });
    }
  }

  // --- write ----------------------------------------------------------------------------------------------

  private async startUpload(): Promise<void> {
    const { path: file } = this.request;
    const mode = this.request.op === 'write' ? this.request.mode : undefined;
    this.send('put_file', { body: encodeBody({ path: file, ...(mode === undefined ? {} : { mode }) }) });
    const ack = await this.expect('ack');
    if (integerOf(ack.hdr.props.offset) !== 0)
      throw new FileTransferError(
        FileErrorCode.io,
        'the device answered the upload with an unexpected offset',
      );
    this.answer({ type: 'ready' });
  }

  /** Sends one chunk once fewer than `WINDOW` are unacknowledged. */
  private async sendChunk(bytes: Buffer): Promise<void> {
    while (this.inFlight.length >= WINDOW) await this.takeAck();
    this.send('file_chunk', { offset: this.sent, body: bytes });
    this.inFlight.push(this.sent);
    this.sent += bytes.length;
  }

  /** One `ack`: the device wrote every chunk up to the one at its offset. */
  private async takeAck(): Promise<void> {
    const offset = integerOf((await this.expect('ack')).hdr.props.offset) ?? -1;
    while (this.inFlight.length && this.inFlight[0]! <= offset) this.inFlight.shift();
  }

  private async upload(messages: FileMessage[]): Promise<void> {
    await this.uploadReady;
    for (const message of messages) {
      if (this.finished) return;
      if (message.type === 'data') {
        this.sentHash.update(message.data);
        this.pendingBytes = Buffer.concat([this.pendingBytes, message.data]);
        while (this.pendingBytes.length >= CHUNK) {
          const chunk = this.pendingBytes.subarray(0, CHUNK);
          this.pendingBytes = this.pendingBytes.subarray(CHUNK);
          await this.sendChunk(Buffer.from(chunk));
        }
      } else if (message.type === 'commit') {
        if (this.pendingBytes.length) await this.sendChunk(this.pendingBytes);
        this.pendingBytes = Buffer.alloc(0);
        const sha256 = this.sentHash.digest('hex');
        if (message.size !== this.sent || message.sha256 !== sha256) {
          // The device removes its temporary file on an error: nothing takes the file's place.
          this.send('error', { body: encodeBody({ err: 'the upload does not match its commit' }) });
          throw new FileTransferError(
            FileErrorCode.mismatch,
            `the bytes sent (${this.sent}, SHA-256 ${sha256}) are not the file committed (${message.size}, ${message.sha256})`,
          );
        }
        // The end: an empty chunk, then every acknowledgement.
        await this.sendChunk(Buffer.alloc(0));
        while (this.inFlight.length) await this.takeAck();
        let written = await this.receiveFile(this.request.path, undefined, true);
        // Opened just before the rename and read just after the device let go: the old file. Once more.
        if (written.sha256 !== sha256) {
          await new Promise((resolve) => setTimeout(resolve, 200));
          written = await this.receiveFile(this.request.path, undefined, true);
        }
        if (written.size !== this.sent || written.sha256 !== sha256)
          throw new FileTransferError(
            FileErrorCode.mismatch,
            `the device's file (${written.size} bytes, SHA-256 ${written.sha256}) is not what was sent`,
          );
        this.complete(written);
      }
    }
  }

  // --- the person's side ----------------------------------------------------------------------------------

  private answer(message: FileMessage): boolean {
    return this.push(encodeFileMessage(message));
  }

  private complete(summary: { size: number; sha256: string }): void {
    if (this.finished) return;
    this.finished = true;
    this.answer({ type: 'done', size: summary.size, sha256: summary.sha256 });
    this.push(null);
    this.closeSession(false);
  }

  /** Ends the transfer with the file protocol's `error` when it is one, else resets the stream. */
  private fail(err: unknown): void {
    if (this.finished || this.destroyed) return;
    this.finished = true;
    if (err instanceof FileTransferError) {
      this.answer({ type: 'error', code: err.code, message: err.message });
      this.push(null);
      this.closeSession(false);
      return;
    }
    this.destroy(err instanceof Error ? err : new Error(String(err)));
  }

  private closeSession(abort: boolean): void {
    if (!this.connection.closed) {
      if (abort) this.send('error', { body: encodeBody({ err: 'the transfer was cancelled' }) });
      this.connection.send({ proto: Proto.control, typ: 'close', sid: this.sid });
    }
    this.connection.endSession(this.sid);
  }

  override _read(): void {
    const pull = this.pull;
    this.pull = undefined;
    pull?.();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    let messages: FileMessage[];
    try {
      messages = this.decoder.push(chunk);
    } catch (error) {
      callback(error as Error);
      return;
    }
    if (this.request.op === 'read' || this.finished) {
      callback();
      return;
    }
    // The callback waits for the device's acknowledgements: the person's bytes flow at the device's pace.
    this.upload(messages).then(
      () => callback(),
      (err: unknown) => {
        this.fail(err);
        callback();
      },
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.break(error ?? new StreamError(StreamErrorCode.cancelled, 'the transfer was cancelled'));
    const pull = this.pull;
    this.pull = undefined;
    pull?.();
    if (!this.finished) {
      this.finished = true;
      this.closeSession(true);
    }
    callback(error);
  }
}

/** Go file modes with only permission bits (and setuid, setgid, sticky): a regular file. */
function isOnlyPermissionBits(goMode: number): boolean {
  const setuid = 2 ** 23;
  const setgid = 2 ** 22;
  const sticky = 2 ** 20;
  let rest = goMode % 2 ** 32;
  for (const bit of [setuid, setgid, sticky]) if (Math.floor(rest / bit) % 2 === 1) rest -= bit;
  return rest < 2 ** 12;
}
