/**
 * "A service on the device" for throughput benchmarks: a plain TCP server in a child process of its own (so it
 * has its own event loop, as a device's service would), speaking a one-line protocol that works the same over
 * any path to it — a direct connection, a relay, a CONNECT tunnel:
 *
 *   `PUT <n>\n` then n bytes   → it counts them and answers `OK <n>\n` once all arrived, then ends;
 *   `GET <n>\n`                → it sends n bytes, then ends.
 *
 * `upload` and `download` are the client's side, on a connected socket. Forked with `serve`, this file is the
 * child: it sends `{ port }` when listening and exits when the parent disconnects (also when the parent dies,
 * which closes the IPC channel). It imports nothing of fleetgate, so the child stays small. Started without an
 * IPC channel (`serve <host> <port>`, e.g. inside a network namespace: {@link byteServiceArgs}), it prints
 * `listening <port>` instead and runs until it is killed.
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

/** What the service sends and the client writes: 1 MiB of random bytes, repeated. */
const CHUNK = 1024 * 1024;
/** A transfer that makes no progress for this long has failed. */
const STALL_MS = 60_000;

export interface ByteService {
  port: number;
  pid: number;
  /** Ends the child process. */
  stop(): void;
}

/** Starts the service in a child process of its own. */
export function startByteService(): Promise<ByteService> {
  const child = fork(fileURLToPath(import.meta.url), ['serve'], {
    execArgv: process.execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', (message: { port: number }) =>
      resolve({ port: message.port, pid: child.pid!, stop: () => child.kill('SIGKILL') }),
    );
    child.once('exit', (code) => reject(new Error(`the byte service ended before listening (code ${code})`)));
  });
}

/** Writes `bytes` from a repeated chunk with backpressure; resolves once all were handed to the socket. */
function writeBytes(socket: net.Socket, bytes: number, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    let left = bytes;
    const write = () => {
      while (left > 0) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= piece.length;
        if (!socket.write(piece)) {
          socket.once('drain', write);
          return;
        }
      }
      socket.off('error', reject);
      resolve();
    };
    socket.once('error', reject);
    write();
  });
}

/** Reads one `\n`-terminated line, then hands every later byte to `rest`. */
function onLine(socket: net.Socket, line: (text: string) => void, rest: (chunk: Buffer) => void): void {
  let head = Buffer.alloc(0);
  let inHead = true;
  socket.on('data', (chunk: Buffer) => {
    if (!inHead) return rest(chunk);
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf(10);
    if (end < 0) {
      if (head.length > 64) socket.destroy(new Error('no request line'));
      return;
    }
    inHead = false;
    line(head.subarray(0, end).toString('latin1'));
    if (end + 1 < head.length) rest(head.subarray(end + 1));
  });
}

/**
 * Node arguments (after `process.execPath`) that run the service on `host`:`port` without an IPC channel: it
 * prints `listening <port>` once it listens. With this process's `execArgv`, so TypeScript runs as here.
 */
export function byteServiceArgs(host: string, port: number): string[] {
  return [...process.execArgv, fileURLToPath(import.meta.url), 'serve', host, String(port)];
}

function serve(host: string, port: number): void {
  const chunk = randomBytes(CHUNK);
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    let expected = 0;
    let received = 0;
    let putting = false;
    // A client that leaves without a request (a bench measuring connection set-up) gets a clean end; one that
    // ends an upload short is reset.
    socket.once('end', () => {
      if (!putting) socket.end();
      else if (received < expected) socket.destroy();
    });
    onLine(
      socket,
      (line) => {
        const [verb, count] = line.split(' ');
        const n = Number(count);
        if (!Number.isSafeInteger(n) || n < 0) return void socket.destroy();
        if (verb === 'GET') {
          void writeBytes(socket, n, chunk).then(
            () => socket.end(),
            () => socket.destroy(),
          );
        } else if (verb === 'PUT') {
          putting = true;
          expected = n;
          if (n === 0) socket.end('OK 0\n');
        } else {
          socket.destroy();
        }
      },
      (data) => {
        received += data.length;
        if (received === expected) socket.end(`OK ${received}\n`);
        else if (received > expected) socket.destroy();
      },
    );
  });
  server.listen(port, host, () => {
    const bound = (server.address() as net.AddressInfo).port;
    if (process.send) process.send({ port: bound });
    else process.stdout.write(`listening ${bound}\n`);
  });
  process.on('disconnect', () => process.exit(0));
}

/** Fails the transfer on `socket` when nothing moves for STALL_MS. */
function watch(socket: net.Socket, what: string, fail: (error: Error) => void): void {
  socket.setTimeout(STALL_MS, () => {
    const error = new Error(`${what}: nothing moved for ${STALL_MS / 1000} s`);
    socket.destroy(error);
    fail(error);
  });
}

const clientChunk = randomBytes(CHUNK);

/** Sends `bytes` to the service over `socket` (connected, nothing read from it yet); resolves when it confirmed. */
export function upload(socket: net.Socket, bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let answer = '';
    watch(socket, 'the upload', reject);
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
    });
    socket.once('error', reject);
    socket.once('close', () => {
      if (answer === `OK ${bytes}\n`) resolve();
      else reject(new Error(`the service answered ${JSON.stringify(answer)} to an upload of ${bytes} bytes`));
    });
    socket.write(`PUT ${bytes}\n`);
    writeBytes(socket, bytes, clientChunk).then(() => socket.end(), reject);
  });
}

/** Asks the service for `bytes` over `socket` and reads them all; resolves when the service ended. */
export function download(socket: net.Socket, bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let received = 0;
    watch(socket, 'the download', reject);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    socket.once('error', reject);
    socket.once('end', () => socket.end());
    socket.once('close', () => {
      if (received === bytes) resolve();
      else reject(new Error(`received ${received} bytes of ${bytes}`));
    });
    socket.write(`GET ${bytes}\n`);
  });
}

if (process.argv[2] === 'serve' && process.argv[1] === fileURLToPath(import.meta.url)) {
  serve(process.argv[3] ?? '127.0.0.1', Number(process.argv[4] ?? 0));
}
