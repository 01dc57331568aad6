import type { Duplex } from 'node:stream';
import {
  CloseCode,
  type ConnectionClose,
  type HelloMessage,
  type IncomingControl,
  type IncomingOpen,
  Multiplexer,
  type MultiplexerOptions,
  type Role,
} from '@fleetgate/protocol';
import { WebSocket } from 'ws';

/** What the owner of a peer hears from its multiplexer. */
export type PeerEvents<R extends Role> = Pick<
  MultiplexerOptions<R>,
  'onStream' | 'onControl' | 'onHello' | 'onClose'
>;

/** The multiplexer settings a peer's owner chooses; the peer supplies `send` and the events. */
export type PeerSettings<R extends Role> = Pick<
  MultiplexerOptions<R>,
  'role' | 'software' | 'window' | 'maxFramePayload' | 'maxStreams'
>;

/**
 * The WebSocket class the hub's server makes for each connection: a `ws` WebSocket that knows its peer, so
 * that its listeners are shared functions rather than closures made for every connection.
 */
export class PeerSocket extends WebSocket {
  peer: TunnelPeer<Role> | undefined;
  /** The connection under the WebSocket, set by the hub once the handshake completed. */
  transport: Duplex | undefined;

  /**
   * Half-closes the connection once everything written to it (a CLOSE frame, say) has gone to the operating
   * system, without waiting for the peer's closing handshake. Resolves then, or at once when it already ended.
   */
  endAfterWrites(): Promise<void> {
    const transport = this.transport;
    if (!transport || transport.destroyed || transport.writableFinished) return Promise.resolve();
    // end()'s callback also runs when the stream errors or ended before: the promise always settles.
    return new Promise((resolve) => transport.end(() => resolve()));
  }
}

/** `ws.send` options for every frame: shared, since `ws` copies them. */
const BINARY = { binary: true } as const;

/**
 * One WebSocket carrying one `Multiplexer`: a device's tunnel, or the OpenSSH bastion's relay. One binary
 * message is one frame; a text message is a protocol error. The WebSocket closes with the multiplexer's close
 * code and reason, whichever side closed first.
 *
 * Liveness is not timed here: the hub's one sweep timer looks at `nextPingAt` and `pingSentAt` of every peer,
 * so an idle peer costs no timer of its own. The peer is its multiplexer's options object (its methods are on
 * the prototype), so an idle peer costs no closures either: the hub holds thousands.
 */
export class TunnelPeer<R extends Role> implements MultiplexerOptions<R> {
  readonly mux: Multiplexer<R>;
  readonly role: R;
  readonly software: string | undefined;
  readonly window: number | undefined;
  readonly maxFramePayload: number | undefined;
  readonly maxStreams: number | undefined;
  /** When the sweep sends the next ping (epoch ms). */
  nextPingAt = 0;
  /** When the unanswered ping was sent (epoch ms); 0 when none is outstanding. */
  pingSentAt = 0;
  /** The device at the other end of a device tunnel (its answers to pings count as signs of life); else 0. */
  deviceId = 0;

  /**
   * @param live the owner's set of open peers: the peer leaves it when it closes.
   * @param events where the multiplexer's events go; replaceable with `listen` until the peer's hello.
   */
  constructor(
    readonly ws: PeerSocket,
    settings: PeerSettings<R>,
    private events: PeerEvents<R>,
    private readonly live: Set<TunnelPeer<Role>>,
  ) {
    this.role = settings.role;
    this.software = settings.software;
    this.window = settings.window;
    this.maxFramePayload = settings.maxFramePayload;
    this.maxStreams = settings.maxStreams;
    this.mux = new Multiplexer<R>(this);
    ws.peer = this as TunnelPeer<Role>;
    ws.on('message', onMessage);
    ws.on('close', onClose);
    // Socket errors end in 'close' as well; without a listener they would be thrown.
    ws.on('error', ignore);
    live.add(this as TunnelPeer<Role>);
  }

  /** Sends the events from now on to `events` (an owner that could only be made once the peer existed). */
  listen(events: PeerEvents<R>): void {
    this.events = events;
  }

  /** Closes with a code and reason (idempotent). */
  close(code: number, reason: string): void {
    this.mux.close(code, reason);
  }

  /** @internal Multiplexer option. */
  send(frame: Uint8Array): undefined {
    // ws queues while the socket is busy and drops (with an error to a callback we do not pass) once it
    // is closing: a send never throws for a closed transport.
    this.ws.send(frame, BINARY);
  }

  /**
   * @internal Multiplexer option: a DATA frame as one WebSocket message written straight to the socket, its
   * payload where it lies (a chunk a person's client or an SSH channel wrote, or one relayed from another
   * stream) behind one small buffer holding both headers, instead of joined to them in a copy first. It goes
   * out in order with ws's own writes (`send` above, pongs, the close frame): ws writes to the socket at once
   * when, as here, it compresses nothing.
   */
  sendData(header: Uint8Array, payload: Uint8Array): boolean {
    const socket = this.ws.transport;
    // Nothing more once the close handshake began (RFC 6455 section 5.5.1), as ws.send would.
    if (this.ws.readyState !== WebSocket.OPEN || socket === undefined) return true;
    socket.cork();
    socket.write(binaryMessageStart(header, header.length + payload.length));
    const room = socket.write(payload);
    socket.uncork();
    // The multiplexer holds its streams' writes back from a full socket until 'drain'. One listener per
    // filling: the multiplexer is full exactly from the first `false` (this listener) until the drain.
    if (!room && !this.mux.transportFull) socket.once('drain', () => this.mux.transportDrained());
    return room;
  }

  /** @internal Multiplexer option: without the owner's handler, the multiplexer refuses every OPEN. */
  get onStream(): ((open: IncomingOpen) => void) | undefined {
    return this.events.onStream;
  }

  /** @internal Multiplexer option. */
  onHello(hello: HelloMessage): void {
    this.events.onHello?.(hello);
  }

  /** @internal Multiplexer option. */
  onControl(message: Exclude<IncomingControl<R>, HelloMessage>): void {
    this.events.onControl?.(message);
  }

  /** @internal Multiplexer option. */
  onClose(close: ConnectionClose): void {
    if (close.code === CloseCode.livenessTimeout) {
      // A silent peer would not answer the closing handshake either: do not wait for it.
      this.ws.terminate();
    } else {
      this.ws.close(close.code, truncateReason(close.reason));
    }
    this.live.delete(this as TunnelPeer<Role>);
    this.events.onClose?.(close);
  }
}

// Listeners shared by every peer's WebSocket: `this` is the socket, a `PeerSocket` made by the hub.
function onMessage(this: WebSocket, data: WebSocket.RawData, isBinary: boolean): void {
  const mux = (this as PeerSocket).peer?.mux;
  if (!mux) return;
  if (!isBinary) {
    mux.close(CloseCode.protocolError, 'text messages are not part of the protocol');
    return;
  }
  mux.receive(data as Buffer);
}

function onClose(this: WebSocket): void {
  (this as PeerSocket).peer?.mux.transportClosed('the WebSocket closed');
}

function ignore(): void {}

/**
 * The start of one unmasked (server to client), unfragmented binary WebSocket message of `length` bytes: the
 * frame header of RFC 6455 section 5.2 (FIN and opcode 2, then the length in 7, 7 + 16 or 7 + 64 bits), followed
 * by `first`, the message's first bytes.
 */
export function binaryMessageStart(first: Uint8Array, length: number): Buffer {
  const lengthBytes = length < 126 ? 0 : length < 0x10000 ? 2 : 8;
  const bytes = Buffer.allocUnsafe(2 + lengthBytes + first.length);
  bytes[0] = 0x82;
  if (lengthBytes === 0) {
    bytes[1] = length;
  } else if (lengthBytes === 2) {
    bytes[1] = 126;
    bytes.writeUInt16BE(length, 2);
  } else {
    bytes[1] = 127;
    bytes.writeUInt32BE(Math.floor(length / 0x100000000), 2);
    bytes.writeUInt32BE(length >>> 0, 6);
  }
  bytes.set(first, 2 + lengthBytes);
  return bytes;
}

/** A WebSocket close reason is at most 123 bytes of UTF-8. */
export function truncateReason(reason: string): string {
  let text = reason.slice(0, 123);
  while (Buffer.byteLength(text) > 123) text = text.slice(0, -1);
  return text;
}
