import { Duplex } from 'node:stream';
import {
  type ExecClientMessage,
  ExecDecoder,
  type ExecExitStatus,
  encodeExecMessage,
} from '@fleetgate/protocol';
import type { ServerChannel } from 'ssh2';
import type { SessionRecorder } from '../sessions/index.ts';

/**
 * The SSH session channel's end of an exec stream: a Duplex that `StreamSession.relay` bridges to the device's
 * tunnel stream. What the device sends (the exec sub-protocol: stdout, stderr, exit) is decoded onto the channel
 * (data, extended data, exit-status / exit-signal); what the person sends (data, EOF, window changes, signals)
 * is encoded towards the device.
 *
 * Backpressure both ways: device output waits for the channel's 'drain' (the SSH client's window), and the
 * channel is paused while the tunnel stream does not take more (its credit window).
 */
export class ExecChannel extends Duplex {
  private readonly decoder = new ExecDecoder({ from: 'agent' });
  private exitStatus: ExecExitStatus | undefined;
  private channelPaused = false;
  private channelClosed = false;
  private recorder: SessionRecorder | undefined;

  constructor(private readonly channel: ServerChannel) {
    super({ allowHalfOpen: true });
    channel.on('data', (data: Buffer) => this.send({ type: 'stdin', data }));
    // The person's EOF: the command's stdin ends (a terminal ignores it). Not our end: resizes and signals may
    // still follow, and the device's output goes on until it exits.
    channel.on('end', () => this.send({ type: 'eofStdin' }));
    channel.on('error', () => {});
    channel.on('close', () => {
      this.channelClosed = true;
      // The person went away before the command ended: a reset, so the agent hangs up on it.
      if (!this.writableFinished) this.destroy(new Error('the SSH client closed the session'));
    });
  }

  /** Records the terminal's output from now on (before the relay starts, so nothing is missed). */
  record(recorder: SessionRecorder): void {
    this.recorder = recorder;
  }

  /** Sends a message to the device (buffered until the stream is relayed). */
  send(message: ExecClientMessage): void {
    if (this.readableEnded || this.destroyed) return;
    if (message.type === 'resize') this.recorder?.resize(message.cols, message.rows);
    if (!this.push(encodeExecMessage(message)) && !this.channelPaused) {
      this.channelPaused = true;
      this.channel.pause();
    }
  }

  override _read(): void {
    if (this.channelPaused) {
      this.channelPaused = false;
      this.channel.resume();
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
    let waiting = 0;
    let done = false;
    const settle = () => {
      if (done || waiting > 0) return;
      done = true;
      callback();
    };
    const wait = (writable: NodeJS.WritableStream) => {
      waiting += 1;
      const resume = () => {
        writable.off('drain', resume);
        this.channel.off('close', resume);
        waiting -= 1;
        settle();
      };
      writable.on('drain', resume);
      // A channel that closes never drains: go on, the relay is ending anyway.
      this.channel.on('close', resume);
    };
    for (const message of messages) {
      switch (message.type) {
        case 'stdout':
          this.recorder?.output(message.data);
          if (!this.channelClosed && !this.channel.write(message.data)) wait(this.channel);
          break;
        case 'stderr':
          if (!this.channelClosed && !this.channel.stderr.write(message.data)) wait(this.channel.stderr);
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
    settle();
  }

  /** The device ended the stream (after `exit`): tell the SSH client how the command ended, and close. */
  override _final(callback: (error?: Error | null) => void): void {
    try {
      this.decoder.end();
    } catch (error) {
      callback(error as Error);
      return;
    }
    if (!this.channelClosed) {
      const status = this.exitStatus;
      if (status && 'code' in status) this.channel.exit(status.code);
      else if (status) {
        try {
          this.channel.exit(status.signal, false, '');
        } catch {
          // A signal SSH has no name for: report it as a shell would.
          this.channel.exit(255);
        }
      }
      this.channel.end();
    }
    this.recorder?.finish();
    // Our side towards the device ends too, so the relay finishes cleanly both ways.
    this.push(null);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.recorder?.finish();
    if (!this.channelClosed) this.channel.close();
    callback(error);
  }
}
