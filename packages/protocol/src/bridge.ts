/**
 * Joining two byte streams end to end: a tunnel stream and a TCP socket (the agent's connection to the
 * device port, the CLI's accepted local connection), or two tunnel streams (the server relaying a person's
 * stream to a device's). One helper, so half-close and reset behave the same at every hop.
 */
import type { Duplex } from 'node:stream';

/** A `net.Socket` without importing `node:net`: the protocol package knows no transport. */
interface Resettable {
  resetAndDestroy(): unknown;
}

function isResettable(stream: Duplex): stream is Duplex & Resettable {
  return typeof (stream as Partial<Resettable>).resetAndDestroy === 'function';
}

/**
 * Pipes `a` and `b` into each other, with backpressure both ways:
 * - an end (FIN) on one side ends the other's writing side, and nothing more (half-close): the other
 *   direction goes on until it ends too;
 * - an error, or a close before both directions finished (a RESET from the peer, a cancelled stream, a
 *   destroyed socket), aborts the other side: a TCP socket (anything with `resetAndDestroy()`) is reset, so
 *   the program on it sees ECONNRESET rather than a clean end (unless it already sent its FIN: then it is
 *   closed); a tunnel stream is destroyed with the error, which sends its peer a RESET with the reason.
 *
 * Resolves when both sides have closed after finishing both ways, or rejects with the first error.
 *
 * Why not `stream.pipeline(a, b, a)`: after a clean finish both ways it destroys the middle stream with
 * ERR_STREAM_DESTROYED, and it cannot reset a socket.
 */
export function bridge(a: Duplex, b: Duplex): Promise<void> {
  return new Promise((resolve, reject) => {
    let failure: Error | undefined;
    let closed = 0;
    const abort = (target: Duplex, error: Error) => {
      if (target.destroyed) return;
      // Not once its sending side has ended: while its FIN is on its way, libuv refuses the reset (EINVAL) and
      // Node then never closes the socket, so this bridge would wait for its close forever. Closing it plainly
      // still ends the connection (with a reset from the kernel if bytes were left unread).
      if (isResettable(target) && !target.writableEnded) {
        // A TLS socket has the method but throws ERR_INVALID_HANDLE_TYPE (only a plain TCP handle can send a
        // RST): it is destroyed instead.
        try {
          target.resetAndDestroy();
          return;
        } catch {}
      }
      target.destroy(error);
    };
    const watch = (self: Duplex, other: Duplex) => {
      // Registered before anything can fail, so that no error is ever unhandled.
      self.on('error', (error: Error) => {
        failure ??= error;
        abort(other, error);
      });
      self.once('close', () => {
        // Closed before finishing both ways (reset, cancel): the other side must not wait for it.
        if (!(self.readableEnded && self.writableFinished)) {
          abort(other, failure ?? new Error('the other side closed the connection'));
        }
        closed += 1;
        if (closed === 2) {
          if (failure) reject(failure);
          else resolve();
        }
      });
    };
    watch(a, b);
    watch(b, a);
    a.pipe(b);
    b.pipe(a);
  });
}
