import { type ExecExitStatus, StreamError } from '@fleetgate/protocol';
import type { ServerChannel } from 'ssh2';
import {
  type ExecOutput,
  ExecPeer,
  PersonClosed,
  StreamCloseCode,
  whyStreamEnded,
} from '../remote-access/index.ts';

/** Why the relay ends when the person's ssh closed the channel first: nothing to tell them. */
const CLIENT_CLOSED = 'the SSH client closed the session';

/**
 * The SSH session channel's end of an exec stream (see `ExecPeer`): the device's output goes to the channel
 * (data, extended data, then exit-status / exit-signal); the person's data, EOF, window changes and signals go
 * to the device. Device output waits for the channel's 'drain' (the SSH client's window); the channel is paused
 * while the tunnel stream does not take more.
 */
export class ExecChannel extends ExecPeer {
  private channelClosed = false;

  constructor(private readonly channel: ServerChannel) {
    super();
    channel.on('data', (data: Buffer) => this.send({ type: 'stdin', data }));
    // The person's EOF: the command's stdin ends (a terminal ignores it). Not our end: resizes and signals may
    // still follow, and the device's output goes on until it exits.
    channel.on('end', () => this.send({ type: 'eofStdin' }));
    channel.on('error', () => {});
    channel.on('close', () => {
      this.channelClosed = true;
      // The person went away before the command ended: a reset, so the agent hangs up on it.
      if (!this.writableFinished) this.destroy(new PersonClosed(CLIENT_CLOSED));
    });
  }

  protected override pauseInput(): void {
    this.channel.pause();
  }

  protected override resumeInput(): void {
    this.channel.resume();
  }

  protected override deliver(output: ExecOutput[], done: () => void): void {
    let waiting = 0;
    let settled = false;
    const settle = () => {
      if (settled || waiting > 0) return;
      settled = true;
      done();
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
    for (const { type, data } of output) {
      if (this.channelClosed) break;
      const to = type === 'stdout' ? this.channel : this.channel.stderr;
      if (!to.write(data)) wait(to);
    }
    settle();
  }

  /** Tells the SSH client how the command ended, and closes the channel. */
  protected override ended(status: ExecExitStatus | undefined): void {
    if (this.channelClosed) return;
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

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.channelClosed) {
      this.tellWhyEnded(error);
      this.channel.close();
    }
    super._destroy(error, callback);
  }

  /**
   * An administrator ended the session, the person lost access, or the device went away: one line on the
   * person's standard error (ssh prints a channel's extended data there) and exit status 255, ssh's own status
   * for "the connection failed", before the channel closes; otherwise ssh would just stop, without a word.
   */
  private tellWhyEnded(error: Error | null): void {
    if (!error || error instanceof PersonClosed) return;
    const { code, reason } = whyStreamEnded(error, false);
    if (
      code !== StreamCloseCode.terminated &&
      code !== StreamCloseCode.accessRevoked &&
      !(error instanceof StreamError)
    )
      return;
    try {
      this.channel.stderr.write(`fleetgate: ${reason}\r\n`);
      this.channel.exit(255);
    } catch {
      // The channel is going anyway.
    }
  }
}
