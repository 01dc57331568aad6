/**
 * The one-hop baseline for bench/connect: a trivial HTTP CONNECT proxy in Node, in a process of its own as
 * fleetgate's server is. `CONNECT 127.0.0.1:<port>` is answered 200 once a TCP connection to that port is up,
 * then both are piped to each other with backpressure and half-close both ways; no authentication, no tunnel,
 * nothing else. It sends `{ port }` to the parent when listening and exits when the parent disconnects.
 *
 *   tsx bench/connect/relay.ts
 */
import http from 'node:http';
import net from 'node:net';

const server = http.createServer((_request, response) => {
  response.writeHead(405, { connection: 'close' }).end();
});
server.on('connect', (request: http.IncomingMessage, client: net.Socket, head: Buffer) => {
  client.on('error', () => {});
  const target = /^127\.0\.0\.1:(\d{1,5})$/.exec(request.url ?? '');
  if (!target) {
    client.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    return;
  }
  const device = net.connect({ host: '127.0.0.1', port: Number(target[1]), allowHalfOpen: true }, () => {
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length) device.write(head);
    client.pipe(device);
    device.pipe(client);
  });
  device.on('error', () => client.destroy());
  client.on('error', () => device.destroy());
});
server.listen(0, '127.0.0.1', () => {
  process.send!({ port: (server.address() as net.AddressInfo).port });
});
process.on('disconnect', () => process.exit(0));
