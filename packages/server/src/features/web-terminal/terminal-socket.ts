import { Duplex } from 'node:stream';
import {
  type ExecClientMessage,
  ExecDecoder,
  type ExecExitStatus,
  encodeExecMessage,
  StreamError,
  StreamErrorCode,
} from '@fleetgate/protocol';
import type { WebSocket } from 'ws';
import type { SessionRecorder } from '../sessions/index.ts';
import {
  closeReason,
  TerminalCloseCode,
  type TerminalCloseCodeValue,
  type TerminalEvent,
  terminalControlSchema,
} from './protocol.ts';

/** Output the browser has not taken yet, in bytes, above which the device's output waits (256 KiB). */
const SEND_HIGH_WATER = 256 * 1024;

/** How often the server pings the browser, in milliseconds (30 s); a ping unanswered by the next one ends it. */
const PING_INTERVAL_MS = 30_000;

/**
 * The browser's end of an exec stream: a Duplex that `StreamSession.relay` bridges to the device's tunnel stream,
 * as `ExecChannel` is for an SSH channel. What the device sends (the exec sub-protocol: output, exit) goes to the
 * browser as binary frames and a final `exit` frame; what the browser sends (input bytes, resizes, see
 * protocol.ts) is encoded towards the device.
 *
 * Backpressure both ways: device output waits while the browser has more than `SEND_HIGH_WATER` bytes not yet
 * taken, and the WebSocket is paused while the tunnel stream does not take more (its credit window).
 */
export class TerminalSocket extends Duplex {
  private readonly decoder = new ExecDecoder({ from: 'agent' });
  private exitStatus: ExecExitStatus | undefined;
  private socketPaused = false;
  /** The WebSocket is closed or closing: nothing more is sent on it. */
  private socketDone = false;
  private recorder: SessionRecorder | undefined;
  private readonly pinger: NodeJS.Timeout;

  /**
   * @param stopping whether the server is on its way out: its tunnels close first, and the sessions they carried
   *   end because of that, not because their devices went offline.
   */
  constructor(
    private readonly ws: WebSocket,
    private readonly stopping: () => boolean,
  ) {
    super({ allowHalfOpen: true });
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    // ws closes the socket after an error (a frame over maxPayload, a protocol violation): 'close' follows.
    ws.on('error', () => {});
    ws.on('close', () => {
      this.socketDone = true;
      clearInterval(this.pinger);
      // The browser went away (tab closed, reload, network) before the shell ended: a reset, so the agent hangs
      // up on the shell.
      if (!this.writableFinished) this.destroy(new Error('the browser closed the terminal'));
    });
    let answered = true;
    ws.on('pong', () => {
      answered = true;
    });
    this.pinger = setInterval(() => {
      if (!answered) {
        ws.terminate();
        return;
      }
      answered = false;
      ws.ping();
    }, PING_INTERVAL_MS).unref();
  }

  /** Records the terminal's output from now on (before the relay starts, so nothing is missed). */
  record(recorder: SessionRecorder): void {
    this.recorder = recorder;
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

  /** Sends a message to the device (buffered until the stream is relayed). */
  private send(message: ExecClientMessage): void {
    if (this.readableEnded || this.destroyed) return;
    if (message.type === 'resize') this.recorder?.resize(message.cols, message.rows);
    if (!this.push(encodeExecMessage(message)) && !this.socketPaused) {
      this.socketPaused = true;
      this.ws.pause();
    }
  }

  override _read(): void {
    if (this.socketPaused) {
      this.socketPaused = false;
      this.ws.resume();
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
    // Output waits for the browser only when it is behind: then this write is done once what it queued has left.
    let queued = 0;
    let waiting = false;
    const sent = () => {
      queued -= 1;
      if (waiting && queued === 0) callback();
    };
    for (const message of messages) {
      switch (message.type) {
        case 'stdout':
        case 'stderr':
          this.recorder?.output(message.data);
          if (!this.socketDone) {
            queued += 1;
            this.ws.send(message.data, { binary: true }, sent);
          }
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
    if (queued === 0 || this.ws.bufferedAmount <= SEND_HIGH_WATER) callback();
    else waiting = true;
  }

  /** The device ended the stream (after `exit`): tell the browser how the shell ended, and close. */
  override _final(callback: (error?: Error | null) => void): void {
    try {
      this.decoder.end();
    } catch (error) {
      callback(error as Error);
      return;
    }
    const status = this.exitStatus;
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
    this.recorder?.finish();
    // Our side towards the device ends too, so the relay finishes cleanly both ways.
    this.push(null);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.recorder?.finish();
    clearInterval(this.pinger);
    if (!this.socketDone) {
      const { code, reason } = this.stopping()
        ? { code: TerminalCloseCode.serverStopping, reason: 'the server is stopping: reconnect in a moment' }
        : whyEnded(error);
      this.finishWith({ type: 'ended', reason }, code, reason);
    }
    callback(error);
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

/**
 * Why a session ended, from the error its stream was reset with: the stream router resets it with the reason an
 * administrator's termination or a lost access gave (features/sessions), the tunnel with a `StreamError` when
 * the device's connection closed.
 */
function whyEnded(error: Error | null): { code: TerminalCloseCodeValue; reason: string } {
  if (error instanceof StreamError) {
    if (error.code === StreamErrorCode.connectionClosed)
      return {
        code: TerminalCloseCode.deviceGone,
        reason: `the device went offline (its connection closed${error.reason ? `: ${error.reason}` : ''})`,
      };
    return {
      code: TerminalCloseCode.deviceGone,
      reason: `the device reset the session (${error.code}${error.reason ? `: ${error.reason}` : ''})`,
    };
  }
  const message = error?.message ?? 'the session ended';
  if (message.startsWith('terminated by')) return { code: TerminalCloseCode.terminated, reason: message };
  if (message.startsWith('access revoked')) return { code: TerminalCloseCode.accessRevoked, reason: message };
  return { code: TerminalCloseCode.deviceGone, reason: message };
}
