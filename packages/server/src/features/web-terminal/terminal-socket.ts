import type { ExecExitStatus } from '@fleetgate/protocol';
import type { WebSocket } from 'ws';
import { keepAlive } from '../../infra/http/index.ts';
import {
  closeReason,
  type ExecOutput,
  ExecPeer,
  PersonClosed,
  whyStreamEnded,
} from '../remote-access/index.ts';
import {
  TerminalCloseCode,
  type TerminalCloseCodeValue,
  type TerminalEvent,
  terminalControlSchema,
} from './protocol.ts';

/** Output the browser has not taken yet, in bytes, above which the device's output waits (256 KiB). */
const SEND_HIGH_WATER = 256 * 1024;

/**
 * The browser's end of an exec stream (see `ExecPeer`), as `ExecChannel` is for an SSH channel: the device's
 * output goes to the browser as binary frames and a final `exit` frame; what the browser sends (input bytes,
 * resizes, see protocol.ts) goes to the device. Device output waits while the browser has more than
 * `SEND_HIGH_WATER` bytes not yet taken; the WebSocket is paused while the tunnel stream does not take more.
 */
export class TerminalSocket extends ExecPeer {
  /** The WebSocket is closed or closing: nothing more is sent on it. */
  private socketDone = false;

  /**
   * @param stopping whether the server is on its way out: its tunnels close first, and the sessions they carried
   *   end because of that, not because their devices went offline.
   */
  constructor(
    private readonly ws: WebSocket,
    private readonly stopping: () => boolean,
  ) {
    super();
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    // ws closes the socket after an error (a frame over maxPayload, a protocol violation): 'close' follows.
    ws.on('error', () => {});
    ws.on('close', () => {
      this.socketDone = true;
      // The browser went away (tab closed, reload, network) before the shell ended: a reset, so the agent hangs
      // up on the shell.
      if (!this.writableFinished) this.destroy(new PersonClosed('the browser closed the terminal'));
    });
    keepAlive(ws);
  }

  /** Sends a text frame to the browser. */
  event(event: TerminalEvent): void {
    if (!this.socketDone) this.ws.send(JSON.stringify(event));
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      this.send({ type: 'stdin', data });
      return;
    }
    let control: unknown;
    try {
      control = JSON.parse(data.toString('utf8'));
    } catch {
      this.fail(TerminalCloseCode.invalidMessage, 'a text frame must be a JSON control message');
      return;
    }
    const parsed = terminalControlSchema.safeParse(control);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      this.fail(
        TerminalCloseCode.invalidMessage,
        `invalid control message: ${issue ? `${issue.path.join('.') || 'type'}: ${issue.message}` : 'unknown'}`,
      );
      return;
    }
    switch (parsed.data.type) {
      case 'resize':
        this.send({ type: 'resize', cols: parsed.data.cols, rows: parsed.data.rows });
        break;
    }
  }

  protected override pauseInput(): void {
    this.ws.pause();
  }

  protected override resumeInput(): void {
    this.ws.resume();
  }

  /** Output waits for the browser only when it is behind: then it is done once what it queued has left. */
  protected override deliver(output: ExecOutput[], done: () => void): void {
    if (this.socketDone) {
      done();
      return;
    }
    let queued = output.length;
    let waiting = false;
    const sent = () => {
      queued -= 1;
      if (waiting && queued === 0) done();
    };
    for (const { data } of output) this.ws.send(data, { binary: true }, sent);
    if (this.ws.bufferedAmount <= SEND_HIGH_WATER) done();
    else waiting = true;
  }

  /** Tells the browser how the shell ended, and closes. */
  protected override ended(status: ExecExitStatus | undefined): void {
    if (status && 'code' in status) {
      this.finishWith(
        { type: 'exit', code: status.code },
        TerminalCloseCode.exited,
        `exited with code ${status.code}`,
      );
    } else if (status) {
      this.finishWith(
        { type: 'exit', signal: status.signal },
        TerminalCloseCode.exited,
        `ended by signal ${status.signal}`,
      );
    } else {
      const reason = 'the device ended the session without an exit status';
      this.finishWith({ type: 'ended', reason }, TerminalCloseCode.deviceGone, reason);
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.socketDone) {
      const { code, reason } = whyStreamEnded(error, this.stopping());
      this.finishWith({ type: 'ended', reason }, code, reason);
    }
    super._destroy(error, callback);
  }

  /** Bad input from the browser: it is told why, the socket closes and the stream to the device is reset. */
  private fail(code: TerminalCloseCodeValue, reason: string): void {
    this.finishWith({ type: 'ended', reason }, code, reason);
    this.destroy(new Error(reason));
  }

  /** The last text frame, then the close (once). */
  private finishWith(last: TerminalEvent, code: TerminalCloseCodeValue, reason: string): void {
    if (this.socketDone) return;
    this.event(last);
    this.socketDone = true;
    this.ws.close(code, closeReason(reason));
  }
}
