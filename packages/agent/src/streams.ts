/**
 * Port streams: the server opens a stream with target `{port}` (or `{host, port}`) and the agent bridges
 * it to a TCP connection on the device.
 *
 * The local allow-list is the device's own word on what may be reached, whatever the server says: a
 * port outside it, or a host outside the allowed hosts, is refused with `not-allowed` before any socket
 * is opened. The stream is accepted only once the TCP connection is up, so the person at the other end
 * sees `refused` / `unreachable` / `timeout` as an OPEN_ERR instead of a stream that dies at once.
 */
import net from 'node:net';
import {
  bridge,
  type IncomingOpen,
  StreamErrorCode,
  type StreamErrorCodeValue,
  type TunnelStream,
} from '@fleetgate/protocol';
import type { Logger } from './log.ts';

export interface PortStreamOptions {
  /** Ports streams may reach. */
  allowedPorts: readonly number[];
  /** Hosts streams may reach; a target without `host` means 127.0.0.1. */
  allowedHosts: readonly string[];
  connectTimeoutMs: number;
  log: Logger;
}

/** Answers an OPEN for `{port, host?}`: refuses it, or connects and pipes both ways. */
export function handlePortStream(
  open: IncomingOpen,
  target: { port: number; host?: string },
  options: PortStreamOptions,
): void {
  const host = target.host ?? '127.0.0.1';
  if (!options.allowedPorts.includes(target.port)) {
    open.reject(StreamErrorCode.notAllowed, `port ${target.port} is not in the device's allow-list`);
    return;
  }
  if (!options.allowedHosts.includes(host)) {
    open.reject(StreamErrorCode.notAllowed, `host ${host} is not in the device's allow-list`);
    return;
  }
  const reads = new ReusedReads();
  // allowHalfOpen: the local service closing its side (FIN) must not close ours; the FIN travels on.
  const socket = net.connect({
    host,
    port: target.port,
    allowHalfOpen: true,
    noDelay: true,
    onread: reads,
  });
  reads.socket = socket;
  const timer = setTimeout(
    () => socket.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })),
    options.connectTimeoutMs,
  );
  const onConnectError = (error: NodeJS.ErrnoException) => {
    clearTimeout(timer);
    const code = streamErrorCodeOf(error);
    options.log.debug('stream target unreachable', { host, port: target.port, code: error.code });
    open.reject(code, `${host}:${target.port}: ${error.code ?? error.message}`);
  };
  socket.once('error', onConnectError);
  socket.once('connect', () => {
    clearTimeout(timer);
    socket.off('error', onConnectError);
    const stream = open.accept();
    reads.stream = stream;
    if (stream.destroyed) {
      // The opener cancelled while we connected.
      socket.destroy();
      return;
    }
    // Failures end in resets both ways (see `bridge`); there is nothing more to do about them here.
    bridge(socket, stream).catch(() => {});
  });
}

/** Bytes of one read from the device's service. */
const READ_SIZE = 64 * 1024;

/**
 * The `onread` option of the socket to the device's service: each read lands in one buffer of the stream's own,
 * written to the tunnel stream at once, and reused for the next read while the stream took the bytes before the
 * write returned (it copies them into a frame when it has credit); when it holds on to them (no credit yet), the
 * next read gets a new buffer. Node otherwise allocates 64 KiB for every read and hands it through the socket's
 * `Readable` machinery; this way a read costs neither (bench/tunnel, device → laptop: the agent's CPU per MiB,
 * BENCHMARKS.md).
 *
 * The socket still ends, errors and closes as usual (`bridge` pipes its end into the stream), but emits no
 * 'data': its bytes reach the stream only here. A full stream pauses the reads until it drains.
 */
class ReusedReads {
  socket: net.Socket | undefined;
  /** Where the bytes go: set once the stream is accepted, in the socket's 'connect', before any read. */
  stream: TunnelStream | undefined;
  private current = Buffer.allocUnsafe(READ_SIZE);

  /** The buffer of the next read (Node asks after every read). */
  readonly buffer = (): Buffer => this.current;

  /** Called by Node with each read; answering false stops reading until `socket.resume()`. */
  readonly callback = (length: number, buffer: Uint8Array): boolean => {
    const stream = this.stream;
    if (stream === undefined || stream.destroyed || stream.writableEnded) return false;
    const room = stream.write(buffer.subarray(0, length));
    if (stream.writableLength > 0) this.current = Buffer.allocUnsafe(READ_SIZE);
    if (!room) stream.once('drain', () => this.socket?.resume());
    return room;
  };
}

/** ECONNREFUSED → refused; timeouts → timeout; anything else (no route, host down, DNS) → unreachable. */
export function streamErrorCodeOf(error: NodeJS.ErrnoException): StreamErrorCodeValue {
  switch (error.code) {
    case 'ECONNREFUSED':
      return StreamErrorCode.refused;
    case 'ETIMEDOUT':
      return StreamErrorCode.timeout;
    default:
      return StreamErrorCode.unreachable;
  }
}
