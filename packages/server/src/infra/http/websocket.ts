import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import { badRequest } from '../errors/index.ts';
import { releaseUpgradeSocket } from './upgrades.ts';

/**
 * What the browser's WebSocket endpoints (the web terminal, VNC) share around `ws`: the handshake checked before
 * a session is opened for it, the socket handed to `ws`, and a keep-alive.
 */

/**
 * Refuses (`bad_request`) an upgrade that is not a WebSocket handshake `ws` would accept: checked before anything
 * is opened for it, since ws would refuse it only afterwards, by closing the socket.
 */
export function assertWebSocketHandshake(request: IncomingMessage): void {
  if (request.headers.upgrade?.toLowerCase() !== 'websocket')
    throw badRequest('this endpoint upgrades to "websocket" only');
  const key = request.headers['sec-websocket-key'];
  if (request.headers['sec-websocket-version'] !== '13' || !key || !/^[+/0-9A-Za-z]{21}[AQgw]==$/.test(key))
    throw badRequest('not a WebSocket handshake (Sec-WebSocket-Version 13 and a Sec-WebSocket-Key)');
}

/**
 * Completes the handshake of a request `assertWebSocketHandshake` accepted: the WebSocket, or undefined when the
 * handshake failed or the person went away meanwhile (the socket is closed then).
 */
export function acceptWebSocket(
  wss: WebSocketServer,
  request: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): Promise<WebSocket | undefined> {
  if (socket.destroyed) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    // A handshake ws refuses closes the socket without calling back.
    socket.once('close', () => resolve(undefined));
    wss.handleUpgrade(request, socket, head, (upgraded) => {
      // ws listens for socket errors from now on.
      releaseUpgradeSocket(socket);
      resolve(upgraded);
    });
  });
}

/** How often the server pings a browser's WebSocket, in milliseconds (30 s). */
export const PING_INTERVAL_MS = 30_000;

/**
 * Pings the browser every `PING_INTERVAL_MS`; a ping unanswered by the next one ends the connection (a browser
 * that went away without a close: sleep, network lost). Stops by itself when the socket closes.
 */
export function keepAlive(ws: WebSocket): void {
  let answered = true;
  ws.on('pong', () => {
    answered = true;
  });
  const pinger = setInterval(() => {
    if (!answered) {
      ws.terminate();
      return;
    }
    answered = false;
    ws.ping();
  }, PING_INTERVAL_MS).unref();
  ws.once('close', () => clearInterval(pinger));
}
