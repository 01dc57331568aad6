/**
 * The client side of the throughput benches' connections to "a service on the device": straight over TCP, or
 * through an HTTP CONNECT proxy (fleetgate's, or a plain relay), resolved once the bytes can flow.
 */
import net from 'node:net';

/** A TCP connection to `host`:`port` (default host 127.0.0.1), once connected. */
export function connectDirect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

/**
 * A tunnel through the CONNECT proxy at `proxyHost`:`proxyPort` (default host 127.0.0.1) to `authority`, once
 * the proxy answered 200. The service speaks only after a request, so no byte of it can arrive with the proxy's
 * answer.
 */
export function connectThrough(
  proxyPort: number,
  authority: string,
  authorization?: string,
  proxyHost = '127.0.0.1',
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: proxyHost, port: proxyPort });
    let head = '';
    const fail = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.off('error', fail);
      if (!head.startsWith('HTTP/1.1 200 ') || end + 4 !== head.length)
        return fail(new Error(`CONNECT ${authority} answered: ${JSON.stringify(head.slice(0, 300))}`));
      resolve(socket);
    };
    socket.on('data', onData);
    socket.once('error', fail);
    socket.once('connect', () =>
      socket.write(
        `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n` +
          (authorization ? `Proxy-Authorization: ${authorization}\r\n` : '') +
          '\r\n',
      ),
    );
  });
}
