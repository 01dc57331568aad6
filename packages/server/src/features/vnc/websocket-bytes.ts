import { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { keepAlive } from '../../infra/http/index.ts';
import { closeReason, StreamCloseCode, whyStreamEnded } from '../remote-access/index.ts';
import { VncCloseCode, type VncCloseCodeValue } from './protocol.ts';

/** Bytes queued to the browser and not yet taken, above which the device's bytes wait (1 MiB: a few frames). */
const SEND_HIGH_WATER = 1024 * 1024;

/**
 * After the browser closed, how long the device's port may keep its end open before the stream is reset, in
 * milliseconds (5 s): the close is passed on as a FIN, and a VNC server closes at once.
 */
const DEVICE_CLOSE_GRACE_MS = 5_000;

/**
 * A WebSocket as the byte stream websockify makes of it: each binary frame from the browser is bytes for the
 * device's port, the port's bytes go to the browser as binary frames. The stream router relays it to the device
 * (`StreamSession.relay`) with backpressure both ways: the WebSocket is paused while the device takes no more,
 * and the device's bytes wait while the browser is more than `SEND_HIGH_WATER` behind.
 *
 * Ends: the browser's close is a FIN to the device; the device's FIN closes the WebSocket with 1000; a reset
 * (an administrator's termination, a lost access, the device offline, the server stopping) closes it with the
 * matching `VncCloseCode` and reason.
 */
export class WebSocketBytes extends Duplex {
  /** The WebSocket is closed or closing: nothing more is sent on it. */
  private socketDone = false;
  private graceTimer: NodeJS.Timeout | undefined;

  /**
   * @param stopping whether the server is on its way out: its tunnels close first, and the sessions they carried
   *   end because of that, not because their devices went offline.
   */
  constructor(
    private readonly ws: WebSocket,
    private readonly stopping: () => boolean,
  ) {
    super();
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        this.fail(VncCloseCode.unsupportedData, 'only binary frames carry the VNC connection');
        return;
      }
      if (!this.push(data)) ws.pause();
    });
    // ws closes the socket after an error (a frame over maxPayload, a protocol violation): 'close' follows.
    ws.on('error', () => {});
    ws.on('close', () => {
      this.socketDone = true;
      if (this.destroyed) return;
      // The browser is gone: the device's port hears a FIN, and gets a little time to close its end too.
      this.push(null);
      this.graceTimer = setTimeout(() => this.destroy(), DEVICE_CLOSE_GRACE_MS).unref();
    });
    keepAlive(ws);
  }

  override _read(): void {
    if (!this.socketDone) this.ws.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    // The browser went away: what the device still sends has nowhere to go.
    if (this.socketDone) {
      callback();
      return;
    }
    let waiting = false;
    this.ws.send(chunk, { binary: true }, () => {
      if (waiting) callback();
    });
    if (this.ws.bufferedAmount <= SEND_HIGH_WATER) callback();
    else waiting = true;
  }

  /** The device's port closed its end (the VNC server hung up): the WebSocket closes normally. */
  override _final(callback: (error?: Error | null) => void): void {
    this.close(VncCloseCode.closed, 'the VNC server closed the connection');
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.graceTimer);
    if (!this.socketDone) {
      const { code, reason } = error
        ? whyStreamEnded(error, this.stopping())
        : { code: StreamCloseCode.deviceGone, reason: 'the session ended' };
      this.close(code, reason);
    }
    callback(error);
  }

  /** Bad input from the browser: it is told why, the socket closes and the stream to the device is reset. */
  private fail(code: VncCloseCodeValue, reason: string): void {
    this.close(code, reason);
    this.destroy(new Error(reason));
  }

  private close(code: VncCloseCodeValue, reason: string): void {
    if (this.socketDone) return;
    this.socketDone = true;
    this.ws.close(code, closeReason(reason));
  }
}
