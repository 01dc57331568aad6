import {
  CloseCode,
  type ConnectionClose,
  Multiplexer,
  type MultiplexerOptions,
  type Role,
} from '@fleetgate/protocol';
import type { WebSocket } from 'ws';

/**
 * One WebSocket carrying one `Multiplexer`: a device's tunnel, or a person's (`fleetgate tunnel`). One binary
 * message is one frame; a text message is a protocol error. The WebSocket closes with the multiplexer's close
 * code and reason, whichever side closed first.
 *
 * Liveness is not timed here: the hub's one sweep timer looks at `nextPingAt` and `pingSentAt` of every peer,
 * so an idle peer costs no timer of its own.
 */
export class TunnelPeer<R extends Role> {
  readonly mux: Multiplexer<R>;
  /** When the sweep sends the next ping (epoch ms). */
  nextPingAt = 0;
  /** When the unanswered ping was sent (epoch ms); 0 when none is outstanding. */
  pingSentAt = 0;
  /** The device at the other end of a device tunnel (its answers to pings count as signs of life); else 0. */
  deviceId = 0;

  constructor(
    readonly ws: WebSocket,
    options: Omit<MultiplexerOptions<R>, 'send' | 'onClose'> & { onClose: (close: ConnectionClose) => void },
  ) {
    const { onClose, ...muxOptions } = options;
    this.mux = new Multiplexer<R>({
      ...muxOptions,
      // ws queues while the socket is busy and drops (with an error to a callback we do not pass) once it
      // is closing: a send never throws for a closed transport.
      send: (frame) => ws.send(frame, { binary: true }),
      onClose: (close) => {
        if (close.code === CloseCode.livenessTimeout) {
          // A silent peer would not answer the closing handshake either: do not wait for it.
          ws.terminate();
        } else {
          ws.close(close.code, truncateReason(close.reason));
        }
        onClose(close);
      },
    });
    ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        this.mux.close(CloseCode.protocolError, 'text messages are not part of the protocol');
        return;
      }
      this.mux.receive(data as Buffer);
    });
    ws.on('close', () => this.mux.transportClosed('the WebSocket closed'));
    // Socket errors end in 'close' as well; without a listener they would be thrown.
    ws.on('error', () => {});
  }

  /** Closes with a code and reason (idempotent). */
  close(code: number, reason: string): void {
    this.mux.close(code, reason);
  }
}

/** A WebSocket close reason is at most 123 bytes of UTF-8. */
export function truncateReason(reason: string): string {
  let text = reason.slice(0, 123);
  while (Buffer.byteLength(text) > 123) text = text.slice(0, -1);
  return text;
}
