/**
 * The stream multiplexer over the tunnel wire format (protocol.ts): open/accept, data, half-close, reset,
 * per-stream credit windows, ping/pong, version exchange and typed connection close.
 *
 * Nothing here knows about sockets: a `Multiplexer` sends frames through a `send(bytes)` function it is given
 * and is fed incoming frames through `receive(bytes)`.
 */
import { Duplex } from 'node:stream';
import { z } from 'zod';
import {
  type AgentMessage,
  agentMessageSchema,
  CloseCode,
  type CloseCodeName,
  closeCodeName,
  DEFAULT_WINDOW,
  decodeFrame,
  decodeJson,
  encodeFrame,
  encodeJson,
  type Frame,
  FrameType,
  type FrameTypeName,
  HEADER_SIZE,
  type HelloMessage,
  type IncomingControl,
  MAX_FRAME_PAYLOAD,
  MAX_WINDOW,
  type OpenTarget,
  type OutgoingControl,
  openTargetSchema,
  PROTOCOL_VERSION,
  ProtocolError,
  type Role,
  type ServerMessage,
  StreamError,
  StreamErrorCode,
  type StreamErrorCodeValue,
  serverMessageSchema,
  streamErrorSchema,
  textDecoder,
  textEncoder,
  writeHeader,
} from './protocol.ts';

/**
 * What a multiplexer is built with. It keeps the object and calls the functions as its methods, so an
 * object holding many connections can pass one instance per connection whose functions live on a prototype.
 */
export interface MultiplexerOptions<R extends Role> {
  /** `agent` opens odd stream ids, `server` even ones, so both may open without colliding. */
  role: R;
  /**
   * Sends one encoded frame as one transport message. Must not throw for a closed transport. The bytes are
   * the transport's from then on: it may change them (mask them in place, say). Answers `false`, as a socket's
   * `write` does, when the transport's buffer is full: see `transportDrained`.
   */
  send: (frame: Uint8Array) => unknown;
  /**
   * Sends one DATA frame, given as its `HEADER_SIZE` header bytes and its payload, as one transport message.
   * Optional: a transport that writes its own message framing (a WebSocket frame header) can send the payload
   * where it lies, behind its header and this one, instead of a copy made to join them; without it DATA frames
   * are encoded and go through `send`. The header is the transport's; the payload is a view into a chunk
   * written to a stream (or received from the peer, when the server relays one stream into another): the
   * transport must not change it, and must send it or copy it before anything else changes it, i.e. hand it to
   * its socket at once. Must not throw for a closed transport. Answers `false` when the transport's buffer is
   * full, as `send` does.
   */
  sendData?: (header: Uint8Array, payload: Uint8Array) => unknown;
  /** Receive window per stream, in bytes: the most this side buffers for one stream. Default `DEFAULT_WINDOW` (4 MiB). */
  window?: number;
  /** Largest frame payload this side accepts, in bytes. Default `MAX_FRAME_PAYLOAD` (64 KiB). */
  maxFramePayload?: number;
  /** Most streams open at once (both directions); further OPENs are refused. Default 1024. */
  maxStreams?: number;
  /** Software version announced in the hello. */
  software?: string;
  /** A peer opens a stream: call `accept()` or `reject()`. Without a handler every OPEN is refused. */
  onStream?: (open: IncomingOpen) => void;
  /** A validated control message from the peer (the hello is reported through `onHello`). */
  onControl?: (message: Exclude<IncomingControl<R>, HelloMessage>) => void;
  /** The peer's hello arrived and its version is supported. */
  onHello?: (hello: HelloMessage) => void;
  /** The connection closed, by either side. Called once. The transport should be closed with `code`. */
  onClose?: (close: ConnectionClose) => void;
}

export interface ConnectionClose {
  /** A `CloseCode` value, or an unknown code a newer peer sent. */
  code: number;
  name: CloseCodeName | 'unknown';
  reason: string;
  /** True when the peer sent the CLOSE, false when this side closed. */
  remote: boolean;
}

export interface IncomingOpen {
  readonly streamId: number;
  readonly target: OpenTarget;
  /** Accepts the stream and returns it; the peer may start writing. */
  accept(): TunnelStream;
  /** Refuses the stream with a reason the opener sees in its `StreamError`. */
  reject(code: StreamErrorCodeValue, reason: string): void;
}

interface PendingWrite {
  chunk: Uint8Array;
  offset: number;
  callback: (error?: Error | null) => void;
}

/**
 * The chunk a reader gets for a received DATA payload: a view into the received message rather than a copy,
 * unless the view would keep alive a message buffer more than twice its size (small frames that the
 * transport sliced out of a larger read), so the bytes held per stream stay within twice the window.
 */
function readerChunkOf(payload: Uint8Array): Buffer {
  // Small payloads: a copy from Node's shared pool is cheaper than an ArrayBuffer of their own.
  if (payload.length < 4096) return Buffer.from(payload);
  if (payload.length < payload.buffer.byteLength >> 1) {
    const copy = Buffer.allocUnsafeSlow(payload.length);
    copy.set(payload);
    return copy;
  }
  return Buffer.from(payload.buffer, payload.byteOffset, payload.length);
}

/**
 * One multiplexed stream, as a Node `Duplex`.
 *
 * Why a Duplex rather than a small event API: every user of a stream bridges it to a socket
 * (agent → 127.0.0.1:port, CLI → local listener, hub → SSH channel), and `pipeline(socket, stream,
 * socket)` then gives backpressure, half-close and error propagation with no glue code. Flow control
 * maps onto it directly:
 * - writing: `_write` hands bytes to the peer only as far as the credit goes and calls back when the
 *   whole chunk is sent, so a writer beyond the window sees `write() === false` and waits for 'drain'.
 *   While the transport's own buffer is full (`send` answered false) the callback also waits for the
 *   transport to drain: a fast writer's bytes then wait in its own socket, not in the transport's buffer
 *   (on the server, 16 streams' windows of 4 MiB each would otherwise queue up to 64 MiB for one device).
 *   The bytes go to the transport without a copy where it allows (`sendData`), as with a socket: a chunk
 *   must not change once written;
 * - reading: every DATA frame is pushed at once (the peer never has more than our window in flight,
 *   so `readableLength <= window` always holds) and credit is returned when bytes leave the readable
 *   buffer, i.e. when the application actually consumed them. `read()` is the single exit for both
 *   flowing and paused mode, so overriding it is where consumption is observed.
 */
export class TunnelStream extends Duplex {
  /** Bytes this side may still send before the peer grants more. */
  private sendCredit = 0;
  private pendingWrite: PendingWrite | null = null;
  /** The pending write is sent and waits for the transport to drain before it is called back. */
  private waitingForTransport = false;
  /** Totals for the receive window: bytes received and bytes whose credit was returned. */
  private received = 0;
  private credited = 0;
  private finReceived = false;
  private finSent = false;
  /** The peer reset or refused the stream, or the connection closed: send nothing more. */
  private silenced = false;
  /** @internal */ opening: boolean;

  /** @internal */
  constructor(
    readonly id: number,
    private readonly mux: Multiplexer<Role>,
    private readonly window: number,
    opening: boolean,
  ) {
    super({ readableHighWaterMark: window, allowHalfOpen: true });
    this.opening = opening;
  }

  /** Bytes received and not yet consumed by the reader; never more than the window. */
  get bufferedBytes(): number {
    return this.received - this.credited;
  }

  /** Bytes this side may still send now. */
  get credit(): number {
    return this.sendCredit;
  }

  /** @internal The stream is open both ways; the peer granted `credit` bytes. */
  markOpen(credit: number): void {
    this.opening = false;
    this.sendCredit = credit;
  }

  /** @internal */
  receiveData(payload: Uint8Array): void {
    if (this.opening) throw new ProtocolError(`data on stream ${this.id} before it was accepted`);
    if (this.finReceived) throw new ProtocolError(`data on stream ${this.id} after fin`);
    if (this.received - this.credited + payload.length > this.window) {
      throw new ProtocolError(`stream ${this.id} exceeded its flow control window of ${this.window} bytes`);
    }
    this.received += payload.length;
    this.push(readerChunkOf(payload));
    this.grantCredit();
  }

  /** @internal */
  receiveWindow(increment: number): void {
    if (this.opening) throw new ProtocolError(`window on stream ${this.id} before it was accepted`);
    if (increment === 0) throw new ProtocolError(`window of 0 bytes on stream ${this.id}`);
    if (this.sendCredit + increment > MAX_WINDOW) {
      throw new ProtocolError(`window on stream ${this.id} overflows ${MAX_WINDOW} bytes`);
    }
    this.sendCredit += increment;
    this.flushWrite();
  }

  /** @internal */
  receiveFin(): void {
    if (this.opening) throw new ProtocolError(`fin on stream ${this.id} before it was accepted`);
    if (this.finReceived) throw new ProtocolError(`second fin on stream ${this.id}`);
    this.finReceived = true;
    this.push(null);
  }

  /** @internal The peer reset the stream, or the connection closed: fail it without answering. */
  abort(error: StreamError | null): void {
    this.silenced = true;
    this.pendingWrite = null;
    this.destroy(error ?? undefined);
  }

  override read(size?: number): Buffer | null {
    const chunk: Buffer | null = super.read(size);
    this.grantCredit();
    return chunk;
  }

  override _read(): void {
    // Nothing to pull: DATA frames are pushed as they arrive; the window bounds them.
  }

  /**
   * Returns credit for consumed bytes in batches of at least a quarter window. The peer can always
   * make progress: what it may not send is what we buffer plus less than a quarter window.
   */
  private grantCredit(): void {
    if (this.finReceived || this.destroyed || this.opening) return;
    const consumed = this.received - this.readableLength;
    const grant = consumed - this.credited;
    if (grant > 0 && grant >= Math.max(1, this.window >> 2)) {
      this.credited += grant;
      const payload = new Uint8Array(4);
      new DataView(payload.buffer).setUint32(0, grant);
      this.mux.sendStreamFrame('window', this.id, payload);
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (chunk.length === 0) {
      callback();
      return;
    }
    this.pendingWrite = { chunk, offset: 0, callback };
    this.flushWrite();
  }

  private flushWrite(): void {
    const pending = this.pendingWrite;
    if (pending === null) return;
    const maxPayload = this.mux.sendPayloadLimit;
    while (this.sendCredit > 0 && pending.offset < pending.chunk.length) {
      const size = Math.min(this.sendCredit, maxPayload, pending.chunk.length - pending.offset);
      this.mux.sendData(this.id, pending.chunk.subarray(pending.offset, pending.offset + size));
      pending.offset += size;
      this.sendCredit -= size;
    }
    // Sending can close the connection (a failing transport), which aborts this stream meanwhile.
    if (this.pendingWrite !== pending) return;
    if (pending.offset === pending.chunk.length && !this.waitingForTransport) {
      if (this.mux.transportFull) {
        this.waitingForTransport = true;
        this.mux.callBackWhenDrained(this);
        return;
      }
      this.pendingWrite = null;
      pending.callback();
    }
  }

  /** @internal The transport drained: the write it held back is done. */
  transportDrained(): void {
    const pending = this.pendingWrite;
    this.waitingForTransport = false;
    if (pending === null) return;
    this.pendingWrite = null;
    pending.callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.silenced) {
      this.finSent = true;
      this.mux.sendStreamFrame('fin', this.id, new Uint8Array(0));
    }
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // FIN both ways is a finished stream, whatever destroys it now: `stream.pipeline(socket, stream, socket)`,
    // for one, destroys it with ERR_STREAM_DESTROYED after a clean end. A RESET would report a failure to a
    // peer that already got everything.
    const cleanClose = this.finSent && this.finReceived;
    if (!this.silenced && !cleanClose) {
      // Destroyed locally before both sides finished: tell the peer, with our reason.
      const reset =
        error instanceof StreamError
          ? { code: error.code, reason: error.reason }
          : {
              code: error ? StreamErrorCode.internal : StreamErrorCode.cancelled,
              reason: error?.message ?? '',
            };
      this.mux.sendStreamFrame(
        'reset',
        this.id,
        encodeJson({ ...reset, reason: reset.reason.slice(0, 512) }),
      );
    }
    this.silenced = true;
    this.pendingWrite = null;
    this.mux.forget(this.id);
    callback(error);
  }
}

/**
 * Multiplexes streams and control messages over one message-oriented transport.
 *
 * Lifecycle: construct, call `start()` (sends the hello), feed every incoming transport message to
 * `receive()`, and call `transportClosed()` when the transport goes away. `receive()` never throws:
 * a malformed or out-of-order frame closes the connection with `CloseCode.protocolError` and a
 * reason. Memory is bounded: at most `maxStreams` streams, each buffering at most `window` bytes
 * received (held in at most twice that: payloads stay views into the received messages, see
 * `readerChunkOf`) and at most its writable high-water mark plus one chunk to send.
 */
export class Multiplexer<R extends Role> {
  readonly role: R;
  private readonly window: number;
  private readonly maxFramePayload: number;
  private readonly maxStreams: number;
  // The three maps are made on first use: a server holds thousands of idle connections that never open a
  // stream, and an empty Map still costs a backing store.
  private streams: Map<number, TunnelStream> | undefined;
  private pendingOpens:
    | Map<number, { resolve: (stream: TunnelStream) => void; reject: (error: Error) => void }>
    | undefined;
  private pendingPings:
    | Map<bigint, { sentAt: number; resolve: (rttMs: number) => void; reject: (error: Error) => void }>
    | undefined;
  /**
   * The transport said its buffer is full: streams whose write is sent wait for `transportDrained` before they
   * take the next, so a fast writer's bytes wait in its own socket (paused), not in the transport's buffer.
   */
  private full = false;
  private waitingForTransport: TunnelStream[] | undefined;
  private nextStreamId: number;
  private highestPeerStreamId = 0;
  private nextPing = 0n;
  private started = false;
  private closedWith: ConnectionClose | null = null;
  /** The peer's hello, once received. Frames before it are a protocol error. */
  peerHello: HelloMessage | null = null;

  constructor(private readonly options: MultiplexerOptions<R>) {
    this.role = options.role;
    this.window = options.window ?? DEFAULT_WINDOW;
    this.maxFramePayload = options.maxFramePayload ?? MAX_FRAME_PAYLOAD;
    this.maxStreams = options.maxStreams ?? 1024;
    this.nextStreamId = options.role === 'agent' ? 1 : 2;
    if (!Number.isInteger(this.window) || this.window < 1 || this.window > MAX_WINDOW) {
      throw new RangeError(`window must be an integer in 1..${MAX_WINDOW}`);
    }
  }

  /** How the connection closed, or null while it is open. */
  get closed(): ConnectionClose | null {
    return this.closedWith;
  }

  /** Number of streams open or opening. */
  get streamCount(): number {
    return this.streams?.size ?? 0;
  }

  /** @internal The transport's buffer is full: streams wait for it to drain before writing more. */
  get transportFull(): boolean {
    return this.full;
  }

  /** @internal */
  callBackWhenDrained(stream: TunnelStream): void {
    this.waitingForTransport ??= [];
    this.waitingForTransport.push(stream);
  }

  /**
   * Call when the transport, after answering `false` to a send, drained (a socket's 'drain'): the streams
   * whose writes waited for it go on. Streams wait only for a transport that answers `false`; one that never
   * does buffers whatever the streams' credit allows.
   */
  transportDrained(): void {
    this.full = false;
    const waiting = this.waitingForTransport;
    this.waitingForTransport = undefined;
    for (const stream of waiting ?? []) stream.transportDrained();
  }

  /** @internal Payload size this side sends: the smaller of both sides' limits. */
  get sendPayloadLimit(): number {
    return Math.min(this.maxFramePayload, this.peerHello?.maxFramePayload ?? this.maxFramePayload);
  }

  /** Sends the hello. Call once, before or after the peer's hello arrived. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const hello: HelloMessage = {
      type: 'hello',
      version: PROTOCOL_VERSION,
      role: this.role,
      window: this.window,
      maxFramePayload: this.maxFramePayload,
      ...(this.options.software === undefined ? {} : { software: this.options.software }),
    };
    this.sendFrame('control', 0, encodeJson(hello));
  }

  /** Opens a stream to `target`; resolves when the peer accepts, rejects with `StreamError` if refused. */
  open(target: OpenTarget): Promise<TunnelStream> {
    if (this.closedWith) {
      return Promise.reject(new StreamError(StreamErrorCode.connectionClosed, this.closedWith.reason));
    }
    if (!this.started) return Promise.reject(new Error('open() before start()'));
    if (this.streamCount >= this.maxStreams) {
      return Promise.reject(
        new StreamError(StreamErrorCode.tooManyStreams, `${this.maxStreams} streams open`),
      );
    }
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const stream = new TunnelStream(id, this, this.window, true);
    this.streamMap().set(id, stream);
    return new Promise((resolve, reject) => {
      this.pendingOpens ??= new Map();
      this.pendingOpens.set(id, { resolve, reject });
      this.sendFrame('open', id, encodeJson(openTargetSchema.parse(target)));
    });
  }

  /** Sends a control message to the peer. */
  sendControl(message: Exclude<OutgoingControl<R>, HelloMessage>): void {
    this.sendFrame('control', 0, encodeJson(message));
  }

  /** Sends a PING; resolves with the round trip in milliseconds. Timeouts are the caller's policy. */
  ping(): Promise<number> {
    if (this.closedWith) return Promise.reject(new Error(`connection closed: ${this.closedWith.reason}`));
    const id = this.nextPing++;
    const payload = new Uint8Array(8);
    new DataView(payload.buffer).setBigUint64(0, id);
    return new Promise((resolve, reject) => {
      this.pendingPings ??= new Map();
      this.pendingPings.set(id, { sentAt: performance.now(), resolve, reject });
      this.sendFrame('ping', 0, payload);
    });
  }

  /** Closes the connection: sends CLOSE, fails every stream, reports through `onClose`. Idempotent. */
  close(code: number, reason: string): void {
    if (this.closedWith) return;
    const payload = new Uint8Array(2 + Math.min(reason.length * 3, 1024));
    new DataView(payload.buffer).setUint16(0, code);
    const { written } = textEncoder.encodeInto(reason.slice(0, 256), payload.subarray(2));
    this.sendFrame('close', 0, payload.subarray(0, 2 + written));
    this.shutdown(code, reason, false);
  }

  /** The transport went away without a CLOSE frame: fail every stream, report `goingAway`. */
  transportClosed(reason = 'transport closed'): void {
    this.shutdown(CloseCode.goingAway, reason, false);
  }

  /**
   * Feeds one incoming transport message (one frame). Never throws. The message is handed over: DATA
   * payloads reach readers as views into it, so the caller must not reuse its memory.
   */
  receive(message: Uint8Array): void {
    if (this.closedWith) return;
    try {
      this.handle(decodeFrame(message, this.maxFramePayload));
    } catch (error) {
      if (error instanceof ProtocolError) this.close(CloseCode.protocolError, error.message);
      else this.close(CloseCode.internalError, 'internal error');
    }
  }

  private handle(frame: Frame): void {
    if (this.peerHello === null && frame.type !== 'control') {
      throw new ProtocolError(`${frame.type} frame before hello`);
    }
    switch (frame.type) {
      case 'control':
        this.handleControl(frame.payload);
        return;
      case 'open':
        this.handleOpen(frame.streamId, frame.payload);
        return;
      case 'openOk': {
        const stream = this.localOpening(frame.streamId, 'openOk');
        if (!stream) return;
        stream.markOpen(this.peerHello!.window);
        this.pendingOpens?.get(stream.id)?.resolve(stream);
        this.pendingOpens?.delete(stream.id);
        return;
      }
      case 'openErr': {
        const stream = this.localOpening(frame.streamId, 'openErr');
        if (!stream) return;
        const { code, reason } = decodeJson(streamErrorSchema, frame.payload, 'openErr');
        const error = new StreamError(code, reason);
        this.pendingOpens?.get(stream.id)?.reject(error);
        this.pendingOpens?.delete(stream.id);
        stream.abort(null);
        return;
      }
      case 'data':
        this.streamFor(frame)?.receiveData(frame.payload);
        return;
      case 'window': {
        const stream = this.streamFor(frame);
        const view = new DataView(frame.payload.buffer, frame.payload.byteOffset, 4);
        stream?.receiveWindow(view.getUint32(0));
        return;
      }
      case 'fin':
        this.streamFor(frame)?.receiveFin();
        return;
      case 'reset': {
        const stream = this.streamFor(frame);
        const { code, reason } = decodeJson(streamErrorSchema, frame.payload, 'reset');
        if (!stream) return;
        const error = new StreamError(code, reason);
        const pending = this.pendingOpens?.get(stream.id);
        if (pending) {
          // Reset while we waited for OPEN_OK: the opener sees it as a refusal.
          this.pendingOpens!.delete(stream.id);
          pending.reject(error);
          stream.abort(null);
        } else if (stream.opening) {
          // The peer cancelled its own OPEN before we accepted: nobody holds the stream yet.
          stream.abort(null);
        } else {
          stream.abort(error);
        }
        return;
      }
      case 'ping':
        this.sendFrame('pong', 0, frame.payload);
        return;
      case 'pong': {
        const id = new DataView(frame.payload.buffer, frame.payload.byteOffset, 8).getBigUint64(0);
        const pending = this.pendingPings?.get(id);
        if (!pending) return; // late or unsolicited pongs are harmless
        this.pendingPings!.delete(id);
        // Idle connections have one ping out at a time: drop the map between pings.
        if (this.pendingPings!.size === 0) this.pendingPings = undefined;
        pending.resolve(performance.now() - pending.sentAt);
        return;
      }
      case 'close': {
        const view = new DataView(frame.payload.buffer, frame.payload.byteOffset, 2);
        let reason: string;
        try {
          reason = textDecoder.decode(frame.payload.subarray(2));
        } catch {
          reason = '(reason not UTF-8)';
        }
        this.shutdown(view.getUint16(0), reason, true);
        return;
      }
      default:
        assertNever(frame.type);
    }
  }

  private handleControl(payload: Uint8Array): void {
    const schema = this.role === 'agent' ? serverMessageSchema : agentMessageSchema;
    const message = decodeJson<AgentMessage | ServerMessage>(schema, payload, 'control message');
    if (message.type === 'hello') {
      if (this.peerHello !== null) throw new ProtocolError('second hello');
      if (message.version !== PROTOCOL_VERSION) {
        this.close(
          CloseCode.unsupportedVersion,
          `peer speaks protocol version ${message.version}, this side speaks ${PROTOCOL_VERSION}`,
        );
        return;
      }
      if (message.role === this.role) throw new ProtocolError(`both sides claim role ${this.role}`);
      this.peerHello = message;
      this.options.onHello?.(message);
      return;
    }
    if (this.peerHello === null) throw new ProtocolError(`control message ${message.type} before hello`);
    this.options.onControl?.(message as Exclude<IncomingControl<R>, HelloMessage>);
  }

  private handleOpen(id: number, payload: Uint8Array): void {
    const peerParity = this.role === 'agent' ? 0 : 1;
    if (id % 2 !== peerParity) throw new ProtocolError(`peer opened stream ${id} with this side's id parity`);
    if (id <= this.highestPeerStreamId) {
      throw new ProtocolError(`stream id ${id} not above the last opened (${this.highestPeerStreamId})`);
    }
    this.highestPeerStreamId = id;
    const refuse = (code: StreamErrorCodeValue, reason: string) =>
      this.sendFrame('openErr', id, encodeJson({ code, reason: reason.slice(0, 512) }));
    // A target this side does not know (a newer peer's kind, or a field added to a known one) is refused on its
    // stream alone: the connection and its other streams go on, and the peer learns this side cannot do it.
    const target = decodeJson(z.record(z.string(), z.unknown()), payload, 'open target');
    const known = openTargetSchema.safeParse(target);
    if (!known.success) {
      const issue = known.error.issues[0];
      refuse(
        StreamErrorCode.notAllowed,
        `unsupported target ${JSON.stringify(Object.keys(target))}: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`,
      );
      return;
    }
    if (!this.options.onStream) {
      refuse(StreamErrorCode.refused, 'this side accepts no streams');
      return;
    }
    if (this.streamCount >= this.maxStreams) {
      refuse(StreamErrorCode.tooManyStreams, `${this.maxStreams} streams open`);
      return;
    }
    const stream = new TunnelStream(id, this as Multiplexer<Role>, this.window, true);
    this.streamMap().set(id, stream);
    let answered = false;
    this.options.onStream({
      streamId: id,
      target: known.data,
      accept: () => {
        if (answered) throw new Error(`stream ${id} already answered`);
        answered = true;
        if (stream.destroyed) return stream; // cancelled by the peer meanwhile; the caller sees 'close'
        stream.markOpen(this.peerHello!.window);
        this.sendFrame('openOk', id, new Uint8Array(0));
        return stream;
      },
      reject: (code, reason) => {
        if (answered) throw new Error(`stream ${id} already answered`);
        answered = true;
        if (stream.destroyed) return;
        refuse(code, reason);
        stream.abort(null);
      },
    });
  }

  /**
   * The open stream a frame is for; undefined when the stream existed and is closed (frames in flight
   * when it closed are dropped); a protocol error when the id was never opened.
   */
  private streamFor(frame: Frame): TunnelStream | undefined {
    const stream = this.streams?.get(frame.streamId);
    if (stream) return stream;
    if (this.wasOpened(frame.streamId)) return undefined;
    throw new ProtocolError(`${frame.type} frame for unknown stream ${frame.streamId}`);
  }

  /** A stream this side opened and still waits on; OPEN_OK / OPEN_ERR for anything else is an error. */
  private localOpening(id: number, type: FrameTypeName): TunnelStream | undefined {
    const stream = this.streamFor({ type, streamId: id, payload: new Uint8Array(0) });
    if (!stream) return undefined;
    if (!this.pendingOpens?.has(id))
      throw new ProtocolError(`${type} for stream ${id}, which is not opening`);
    return stream;
  }

  private streamMap(): Map<number, TunnelStream> {
    this.streams ??= new Map();
    return this.streams;
  }

  private wasOpened(id: number): boolean {
    const ownParity = this.role === 'agent' ? 1 : 0;
    return id % 2 === ownParity ? id < this.nextStreamId : id <= this.highestPeerStreamId;
  }

  /** @internal */
  sendStreamFrame(type: FrameTypeName, streamId: number, payload: Uint8Array): void {
    if (this.closedWith || !this.streams?.has(streamId)) return;
    this.sendFrame(type, streamId, payload);
  }

  /** @internal Sends a DATA frame: through the transport's `sendData` when it has one, else encoded. */
  sendData(streamId: number, payload: Uint8Array): void {
    if (this.closedWith || !this.streams?.has(streamId)) return;
    if (!this.options.sendData) {
      this.sendFrame('data', streamId, payload);
      return;
    }
    // From Node's shared pool: a header costs no ArrayBuffer of its own.
    const header = Buffer.allocUnsafe(HEADER_SIZE);
    writeHeader(header, 0, FrameType.data, streamId, payload.length);
    try {
      if (this.options.sendData(header, payload) === false) this.full = true;
    } catch {
      this.shutdown(CloseCode.internalError, 'transport send failed', false);
    }
  }

  /** @internal */
  forget(id: number): void {
    this.streams?.delete(id);
    const pending = this.pendingOpens?.get(id);
    if (pending) {
      this.pendingOpens!.delete(id);
      pending.reject(new StreamError(StreamErrorCode.cancelled, 'stream destroyed while opening'));
    }
  }

  private sendFrame(type: FrameTypeName, streamId: number, payload: Uint8Array): void {
    if (this.closedWith) return;
    this.sendEncoded(encodeFrame({ type, streamId, payload }));
  }

  private sendEncoded(message: Uint8Array): void {
    try {
      if (this.options.send(message) === false) this.full = true;
    } catch {
      // A transport that throws is gone: close without trying to send again, so nothing escapes.
      this.shutdown(CloseCode.internalError, 'transport send failed', false);
    }
  }

  private shutdown(code: number, reason: string, remote: boolean): void {
    if (this.closedWith) return;
    const close: ConnectionClose = { code, name: closeCodeName(code), reason, remote };
    this.closedWith = close;
    const error = new StreamError(StreamErrorCode.connectionClosed, reason);
    const pendingOpens = this.pendingOpens;
    this.pendingOpens = undefined;
    for (const pending of pendingOpens?.values() ?? []) pending.reject(error);
    this.waitingForTransport = undefined;
    const streams = this.streams;
    this.streams = undefined;
    for (const stream of streams?.values() ?? []) stream.abort(stream.opening ? null : error);
    const pendingPings = this.pendingPings;
    this.pendingPings = undefined;
    for (const ping of pendingPings?.values() ?? []) ping.reject(new Error(`connection closed: ${reason}`));
    this.options.onClose?.(close);
  }
}

function assertNever(value: never): never {
  throw new Error(`unreachable: ${String(value)}`);
}
