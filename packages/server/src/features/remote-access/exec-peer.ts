import { Duplex } from 'node:stream';
import {
  type ExecClientMessage,
  ExecDecoder,
  type ExecExitStatus,
  encodeExecMessage,
} from '@fleetgate/protocol';
import type { SessionRecorder } from '../sessions/index.ts';

/** What the device's command wrote, in order: its output to the person's terminal or pipes. */
export type ExecOutput = { type: 'stdout' | 'stderr'; data: Uint8Array };

/**
 * A person's end of an exec stream (an SSH session channel, a web terminal's WebSocket): a Duplex that
 * `StreamSession.relay` bridges to the device's tunnel stream. It encodes what the person sends (`send`) into
 * the exec sub-protocol of @fleetgate/protocol and decodes what the device sends, keeps the exit status and
 * feeds the session's recorder; a surface says how its input pauses and resumes, where output goes and how the
 * end is told.
 *
 * Backpressure both ways: the person's input is paused while the tunnel stream does not take more (its credit
 * window), and the device's output waits for `deliver` to call back (the person's window or buffer).
 */
export abstract class ExecPeer extends Duplex {
  private readonly decoder = new ExecDecoder({ from: 'agent' });
  private exitStatus: ExecExitStatus | undefined;
  private inputPaused = false;
  protected recorder: SessionRecorder | undefined;

  constructor() {
    super({ allowHalfOpen: true });
  }

  /** Records the terminal's output from now on (before the relay starts, so nothing is missed). */
  record(recorder: SessionRecorder): void {
    this.recorder = recorder;
  }

  /** Sends a message to the device (buffered until the stream is relayed). */
  send(message: ExecClientMessage): void {
    if (this.readableEnded || this.destroyed) return;
    if (message.type === 'resize') this.recorder?.resize(message.cols, message.rows);
    if (!this.push(encodeExecMessage(message)) && !this.inputPaused) {
      this.inputPaused = true;
      this.pauseInput();
    }
  }

  /** Stops reading the person's input until `resumeInput`. */
  protected abstract pauseInput(): void;
  protected abstract resumeInput(): void;
  /** Passes the device's output on to the person; calls `done` once more may come. */
  protected abstract deliver(output: ExecOutput[], done: () => void): void;
  /** The device ended the stream: tell the person how the command ended (`undefined`: it did not say). */
  protected abstract ended(status: ExecExitStatus | undefined): void;

  override _read(): void {
    if (this.inputPaused) {
      this.inputPaused = false;
      this.resumeInput();
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    let messages: ReturnType<ExecDecoder['push']>;
    try {
      messages = this.decoder.push(chunk);
    } catch (error) {
      callback(error as Error);
      return;
    }
    const output: ExecOutput[] = [];
    for (const message of messages) {
      switch (message.type) {
        case 'stdout':
        case 'stderr':
          this.recorder?.output(message.data);
          output.push(message);
          break;
        case 'exit':
          this.exitStatus = message.status;
          break;
        case 'stdin':
        case 'eofStdin':
        case 'resize':
        case 'signal':
          // The decoder only lets the agent's messages through.
          break;
      }
    }
    if (output.length === 0) callback();
    else this.deliver(output, () => callback());
  }

  /** The device ended the stream (after `exit`): the person is told how the command ended, and we end too. */
  override _final(callback: (error?: Error | null) => void): void {
    try {
      this.decoder.end();
    } catch (error) {
      callback(error as Error);
      return;
    }
    this.ended(this.exitStatus);
    this.recorder?.finish();
    // Our side towards the device ends too, so the relay finishes cleanly both ways.
    this.push(null);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.recorder?.finish();
    callback(error);
  }
}
