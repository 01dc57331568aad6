import { Duplex } from 'node:stream';
import {
  encodeFileMessage,
  type FileAgentMessage,
  FileDecoder,
  type FileErrorCodeValue,
  type FileSummary,
} from '@fleetgate/protocol';

/** The agent refused or failed the transfer (its `error` message). */
export class FileRefusal extends Error {
  constructor(
    readonly code: FileErrorCodeValue,
    message: string,
  ) {
    super(message);
  }
}

/** The agent's first answer: the file's size, SHA-256 and mode (a read), or ready for the bytes (a write). */
export type FirstAnswer = Extract<FileAgentMessage, { type: 'meta' | 'ready' }>;

/**
 * The server's end of a file stream (the file sub-protocol of @fleetgate/protocol), which `StreamSession.relay`
 * bridges to the device's tunnel stream: what it pushes goes to the agent (`send`, `commit`); what the agent
 * sends is decoded here — `first` and `last` settle with the agent's first and last answers (or reject with a
 * `FileRefusal`, a protocol error, or the stream's loss), and file bytes go to the handler given to `receive`,
 * which calls back once more may come (so a slow HTTP client slows the device down through the stream's credit window).
 */
export class FilePeer extends Duplex {
  readonly first: Promise<FirstAnswer>;
  readonly last: Promise<FileSummary>;
  /** Where the file's bytes go (set by `receive`). */
  private onData: ((bytes: Buffer, done: () => void) => void) | undefined;
  /** Bytes that came before `receive` (with `meta`, in the same chunk), and the write waiting on them. */
  private early: { bytes: Buffer; done: () => void } | undefined;
  private readonly decoder = new FileDecoder('agent');
  private settleFirst!: { resolve: (answer: FirstAnswer) => void; reject: (error: Error) => void };
  private settleLast!: { resolve: (summary: FileSummary) => void; reject: (error: Error) => void };
  private pendingRead: (() => void) | undefined;

  constructor() {
    super({ allowHalfOpen: true });
    this.first = new Promise((resolve, reject) => {
      this.settleFirst = { resolve, reject };
    });
    this.last = new Promise((resolve, reject) => {
      this.settleLast = { resolve, reject };
    });
    // Awaited by the route when it gets that far; an early end must not be an unhandled rejection meanwhile.
    this.first.catch(() => {});
    this.last.catch(() => {});
  }

  /**
   * Where the file's bytes go from now on (a download); `handler` calls `done` when more may come. Bytes that
   * came before are handed over first: until then they wait, and so does the stream (no credit goes back).
   */
  receive(handler: (bytes: Buffer, done: () => void) => void): void {
    this.onData = handler;
    const early = this.early;
    this.early = undefined;
    if (early) handler(early.bytes, early.done);
  }

  /** Sends file bytes to the agent; resolves when the stream takes more (its credit window). */
  async send(bytes: Buffer): Promise<void> {
    if (this.destroyed) throw new Error('the transfer was cut');
    if (this.push(encodeFileMessage({ type: 'data', data: bytes }))) return;
    await new Promise<void>((resolve) => {
      this.pendingRead = resolve;
    });
  }

  /** Everything was sent: tells the agent what, and ends our side. */
  commit(summary: FileSummary): void {
    this.push(encodeFileMessage({ type: 'commit', ...summary }));
    this.push(null);
  }

  /** Ends our side without sending anything (a download). */
  sendNothing(): void {
    this.push(null);
  }

  override _read(): void {
    const resume = this.pendingRead;
    this.pendingRead = undefined;
    resume?.();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    let messages: FileAgentMessage[];
    try {
      messages = this.decoder.push(chunk) as FileAgentMessage[];
    } catch (error) {
      this.fail(error as Error);
      callback(error as Error);
      return;
    }
    const data: Buffer[] = [];
    for (const message of messages) {
      switch (message.type) {
        case 'data':
          data.push(Buffer.from(message.data));
          break;
        case 'meta':
        case 'ready':
          this.settleFirst.resolve(message);
          break;
        case 'done':
          this.settleLast.resolve({ size: message.size, sha256: message.sha256 });
          break;
        case 'error':
          this.fail(new FileRefusal(message.code, message.message));
          break;
      }
    }
    if (data.length === 0) {
      callback();
      return;
    }
    const bytes = data.length === 1 ? data[0]! : Buffer.concat(data);
    if (this.onData) this.onData(bytes, () => callback());
    else this.early = { bytes, done: () => callback() };
  }

  override _final(callback: (error?: Error | null) => void): void {
    try {
      this.decoder.end();
    } catch (error) {
      this.fail(error as Error);
    }
    this.fail(new Error('the device ended the transfer without saying how it went'));
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.fail(error ?? new Error('the transfer was cut before it ended'));
    this.pendingRead?.();
    callback(error);
  }

  /** Settles whatever is still open with `error` (settled promises ignore it). */
  private fail(error: Error): void {
    this.settleFirst.reject(error);
    this.settleLast.reject(error);
  }
}
