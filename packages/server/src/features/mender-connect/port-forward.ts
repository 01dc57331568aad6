import { Duplex } from 'node:stream';
import { StreamError, StreamErrorCode } from '@fleetgate/protocol';
import type { MenderConnection, SessionHandler } from './connections.ts';
import {
  ControlType,
  encodeBody,
  errorTextOf,
  MAX_BODY_TO_DEVICE,
  PortForwardType,
  Proto,
  type ProtoMessage,
} from './protocol.ts';

/** The one connection of a port-forward session: fleetgate opens a session per stream. */
const CONNECTION_ID = '1';
/** How long the device has to answer `new` or acknowledge a `forward`, in milliseconds. */
const ANSWER_TIMEOUT_MS = 30_000;

/**
 * A stream to a TCP port on a mender-connect device (proto 3), as the Duplex the stream router relays: a session of
 * its own (handshake, then `new{remote_host, remote_port, protocol}`), bytes in `forward` messages, each answered
 * by an `ack` before the next (mender-connect session/portforward.go allows one unacknowledged `forward` per
 * connection each way, and reads at most 8,192 bytes a message). The device's bytes are acknowledged once the
 * reader took them, so a slow person slows the device rather than filling the server.
 *
 * The protocol has no half close: the device's `stop` ends both ways; ours is sent when the stream is destroyed.
 */
export class PortForwardStream extends Duplex implements SessionHandler {
  private readonly sid: string;
  private opened: { resolve(): void; reject(error: Error): void } | undefined;
  private waitingAck: ((error?: Error | null) => void) | undefined;
  private ackTimer: NodeJS.Timeout | undefined;
  private ackOwed = false;
  private stoppedByDevice = false;

  private constructor(private readonly connection: MenderConnection) {
    super({ allowHalfOpen: true });
    this.sid = connection.newSession(this);
  }

  /** Opens a forward to `host:port` on the device; rejects with a `StreamError` when the device refuses. */
  static async open(connection: MenderConnection, host: string, port: number): Promise<PortForwardStream> {
    const stream = new PortForwardStream(connection);
    try {
      const protocols = await connection.handshake(stream.sid);
      if (!protocols.includes(Proto.portForward))
        throw new StreamError(
          StreamErrorCode.notAllowed,
          'port forwarding is turned off in mender-connect on the device',
        );
      await stream.start(host, port);
      return stream;
    } catch (err) {
      stream.destroy();
      if (err instanceof StreamError) throw err;
      throw new StreamError(StreamErrorCode.refused, (err as Error).message);
    }
  }

  private start(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new StreamError(StreamErrorCode.timeout, 'the device did not answer the port forward')),
        ANSWER_TIMEOUT_MS,
      );
      this.opened = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.connection.send({
        proto: Proto.portForward,
        typ: PortForwardType.new,
        sid: this.sid,
        props: { connection_id: CONNECTION_ID },
        body: encodeBody({ remote_host: host, remote_port: port, protocol: 'tcp' }),
      });
    });
  }

  receive(message: ProtoMessage): void {
    if (message.hdr.proto === Proto.control) {
      if (message.hdr.typ === ControlType.close)
        this.destroy(new StreamError(StreamErrorCode.connectionClosed, 'the device closed the session'));
      else if (message.hdr.typ === ControlType.error) this.failed(errorTextOf(message.body));
      return;
    }
    if (message.hdr.proto !== Proto.portForward) return;
    switch (message.hdr.typ) {
      case PortForwardType.new:
        this.opened?.resolve();
        this.opened = undefined;
        return;
      case PortForwardType.forward:
        // The device waits for our `ack` before it sends more: acknowledged once the reader took these bytes.
        if (this.push(message.body)) this.acknowledge();
        else this.ackOwed = true;
        return;
      case PortForwardType.ack: {
        const callback = this.waitingAck;
        this.waitingAck = undefined;
        clearTimeout(this.ackTimer);
        callback?.();
        return;
      }
      case PortForwardType.stop:
        this.stoppedByDevice = true;
        this.push(null);
        // Nothing more goes to a connection the device closed; a write waiting for its ack is done.
        this.waitingAck?.();
        this.waitingAck = undefined;
        return;
      case PortForwardType.error:
        this.failed(errorTextOf(message.body));
        return;
      default:
        return;
    }
  }

  private failed(reason: string): void {
    // After the device's `stop`, its answers to what crossed it (an `ack`, a `forward`: "unknown connection")
    // say nothing about the stream, which ended cleanly.
    if (this.stoppedByDevice) return;
    if (this.opened) {
      this.opened.reject(new StreamError(StreamErrorCode.refused, reason));
      this.opened = undefined;
      return;
    }
    this.destroy(new StreamError(StreamErrorCode.refused, reason));
  }

  connectionClosed(reason: string): void {
    this.opened?.reject(new StreamError(StreamErrorCode.connectionClosed, reason));
    this.opened = undefined;
    this.destroy(new StreamError(StreamErrorCode.connectionClosed, reason));
  }

  private acknowledge(): void {
    this.ackOwed = false;
    this.connection.send({
      proto: Proto.portForward,
      typ: PortForwardType.ack,
      sid: this.sid,
      props: { connection_id: CONNECTION_ID },
    });
  }

  override _read(): void {
    if (this.ackOwed) this.acknowledge();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.forward(chunk, 0, callback);
  }

  /** Sends `chunk` from `offset` in messages the device can read, each after the previous one's `ack`. */
  private forward(chunk: Buffer, offset: number, callback: (error?: Error | null) => void): void {
    if (this.stoppedByDevice || offset >= chunk.length) {
      callback();
      return;
    }
    const piece = chunk.subarray(offset, offset + MAX_BODY_TO_DEVICE);
    this.waitingAck = (error) => {
      if (error) callback(error);
      else this.forward(chunk, offset + piece.length, callback);
    };
    this.ackTimer = setTimeout(() => {
      this.destroy(
        new StreamError(StreamErrorCode.timeout, 'the device did not acknowledge forwarded bytes'),
      );
    }, ANSWER_TIMEOUT_MS);
    this.connection.send({
      proto: Proto.portForward,
      typ: PortForwardType.forward,
      sid: this.sid,
      props: { connection_id: CONNECTION_ID },
      body: piece,
    });
  }

  override _final(callback: (error?: Error | null) => void): void {
    // No half close in the protocol: the device's connection stays open for its answer until either side ends.
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.ackTimer);
    const waiting = this.waitingAck;
    this.waitingAck = undefined;
    waiting?.(error ?? new StreamError(StreamErrorCode.cancelled, 'the stream was closed'));
    if (!this.connection.closed) {
      if (!this.stoppedByDevice)
        this.connection.send({
          proto: Proto.portForward,
          typ: PortForwardType.stop,
          sid: this.sid,
          props: { connection_id: CONNECTION_ID },
        });
      this.connection.send({ proto: Proto.control, typ: ControlType.close, sid: this.sid });
    }
    this.connection.endSession(this.sid);
    callback(error);
  }
}
