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
import { bridge, type IncomingOpen, StreamErrorCode, type StreamErrorCodeValue } from '@fleetgate/protocol';
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
  // allowHalfOpen: the local service closing its side (FIN) must not close ours; the FIN travels on.
  const socket = net.connect({ host, port: target.port, allowHalfOpen: true, noDelay: true });
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
    if (stream.destroyed) {
      // The opener cancelled while we connected.
      socket.destroy();
      return;
    }
    // Failures end in resets both ways (see `bridge`); there is nothing more to do about them here.
    bridge(socket, stream).catch(() => {});
  });
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
