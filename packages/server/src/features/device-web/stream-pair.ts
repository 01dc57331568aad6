import { Duplex } from 'node:stream';

/**
 * One end of an in-process pipe: what is written to one end is read from the other, with backpressure (a write
 * waits until the other end's reader asks for more), ends (`end()` on one is the end of the other's reading) and
 * destruction (destroying one destroys the other). The stream router relays a device stream to a `Duplex` of
 * the person's; for a device web page that person is Node's HTTP client, which needs a socket of its own.
 */
class PairEnd extends Duplex {
  other!: PairEnd;
  /** The callback of a write that waits for the other end's reader. */
  private waiting: (() => void) | undefined;

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.other.push(chunk)) callback();
    else this.other.waiting = callback;
  }

  override _read(): void {
    const callback = this.waiting;
    this.waiting = undefined;
    callback?.();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.other.push(null);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const callbackOfWrite = this.other.waiting;
    this.other.waiting = undefined;
    callbackOfWrite?.();
    if (!this.other.destroyed) this.other.destroy(error ?? undefined);
    callback(error);
  }
}

/**
 * The HTTP client's end: Node's `http.Agent` treats it as a socket, so it has the socket methods the agent and
 * the client call (keep-alive and delay settings mean nothing in memory), and `setTimeout`, which the agent uses
 * to drop a kept-alive connection after it idled that long.
 */
export class SocketEnd extends PairEnd {
  private idleMs = 0;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor() {
    super();
    const touch = () => this.armIdle();
    this.on('data', touch);
    this.on('close', () => clearTimeout(this.idleTimer));
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.armIdle();
    super._write(chunk, encoding, callback);
  }

  /** As `net.Socket#setTimeout`: 0 turns it off and removes `callback`. */
  setTimeout(ms: number, callback?: () => void): this {
    if (callback) {
      if (ms === 0) this.off('timeout', callback);
      else this.once('timeout', callback);
    }
    this.idleMs = ms;
    this.armIdle();
    return this;
  }

  private armIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.idleMs > 0 && !this.destroyed)
      this.idleTimer = setTimeout(() => this.emit('timeout'), this.idleMs).unref();
  }

  setKeepAlive(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

/** An in-process pipe: `[relayEnd, socketEnd]`, the router's end and the HTTP client's. */
export function streamPair(): [Duplex, SocketEnd] {
  const relayEnd = new PairEnd();
  const socketEnd = new SocketEnd();
  relayEnd.other = socketEnd;
  socketEnd.other = relayEnd;
  return [relayEnd, socketEnd];
}
