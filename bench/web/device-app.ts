/**
 * "A web app on the device" for bench/web, in a process of its own: `GET /download?bytes=N` streams N zero bytes
 * (64 KiB chunks, with Content-Length, backpressure respected), `GET /small` answers a 1 KiB HTML page. It sends
 * `{ port }` to the parent when listening and exits when the parent disconnects.
 *
 *   tsx bench/web/device-app.ts
 */
import http from 'node:http';
import type net from 'node:net';

const CHUNK = Buffer.alloc(64 * 1024);
const SMALL = Buffer.from(`<!doctype html><title>small</title><p>${'x'.repeat(1024 - 40)}</p>`);

const server = http.createServer((request, response) => {
  const url = new URL(request.url ?? '/', 'http://device');
  if (url.pathname === '/small') {
    response.writeHead(200, { 'Content-Type': 'text/html', 'Content-Length': SMALL.length });
    response.end(SMALL);
    return;
  }
  if (url.pathname !== '/download') {
    response.writeHead(404).end();
    return;
  }
  let left = Number(url.searchParams.get('bytes') ?? 0);
  response.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': left });
  const pump = () => {
    while (left > 0) {
      const chunk = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
      left -= chunk.length;
      if (!response.write(chunk)) {
        response.once('drain', pump);
        return;
      }
    }
    response.end();
  };
  pump();
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.send!({ port: (server.address() as net.AddressInfo).port });
});
process.on('disconnect', () => process.exit(0));
