import type { ExecExitStatus } from '@fleetgate/protocol';
import type { ServerChannel } from 'ssh2';
import { type ExecOutput, ExecPeer } from '../remote-access/index.ts';

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
      if (!this.writableFinished) this.destroy(new Error('the SSH client closed the session'));
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
    if (!this.channelClosed) this.channel.close();
    super._destroy(error, callback);
  }
}
