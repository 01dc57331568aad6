import { createHash, randomBytes, randomInt } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { StreamError, type TunnelStream } from '@fleetgate/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningAgent, removeTemporaryDirs, runAgent, waitFor } from './helpers.ts';
import { type HubConnection, readUntilEnd, startTestHub, type TestHub } from './hub.ts';

/** A TCP server on 127.0.0.1 that keeps half-open connections (so each direction closes on its own). */
async function tcpServer(
  onConnection: (socket: net.Socket) => void,
): Promise<{ port: number; server: net.Server }> {
  const server = net.createServer({ allowHalfOpen: true }, onConnection);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, server };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const { port, server } = await tcpServer(() => {});
  server.close();
  await once(server, 'close');
  return port;
}

describe('port streams', () => {
  let hub: TestHub;
  let agent: RunningAgent;
  let connection: HubConnection;
  const servers: net.Server[] = [];
  const ports: Record<string, number> = {};
  /** What the "server speaks first" service saw from the other side, per connection. */
  const heardByGreeter: Promise<string>[] = [];
  let echoResets = 0;
  let flood: { written: number; paused: boolean; socket?: net.Socket } = { written: 0, paused: false };
  /** The SHA-256 of everything the talker sent, per connection, once it ended. */
  const toldByTalker: Promise<string>[] = [];

  beforeAll(async () => {
    // Echo, and when the client half-closes: a last line, then our own FIN.
    const echo = await tcpServer((socket) => {
      socket.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ECONNRESET') echoResets += 1;
      });
      socket.on('data', (chunk) => socket.write(chunk));
      socket.on('end', () => socket.end('bye\n'));
    });
    // Speaks first and half-closes at once; keeps reading what the client still sends.
    const greeter = await tcpServer((socket) => {
      socket.end('hello, then FIN\n');
      heardByGreeter.push(readUntilEnd(socket).then((b) => b.toString()));
    });
    // Writes as fast as it may, pausing when the socket says so.
    const flooder = await tcpServer((socket) => {
      flood = { written: 0, paused: false, socket };
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = () => {
        while (!socket.destroyed) {
          flood.written += chunk.length;
          if (!socket.write(chunk)) {
            flood.paused = true;
            socket.once('drain', pump);
            return;
          }
        }
      };
      socket.on('error', () => {});
      pump();
    });
    // Sends 1 MiB in small writes of 100 to 6,000 bytes, one per turn of the event loop, then ends: the agent
    // reads them one by one, and runs out of credit (64 KiB) with part of a read still to send.
    const talker = await tcpServer((socket) => {
      const hash = createHash('sha256');
      let left = 1024 * 1024;
      socket.on('error', () => {});
      toldByTalker.push(
        new Promise((resolve) => {
          const talk = () => {
            if (socket.destroyed) return;
            if (left === 0) {
              socket.end();
              resolve(hash.digest('hex'));
              return;
            }
            const piece = randomBytes(Math.min(left, randomInt(100, 6000)));
            left -= piece.length;
            hash.update(piece);
            socket.write(piece);
            setImmediate(talk);
          };
          talk();
        }),
      );
    });
    servers.push(echo.server, greeter.server, flooder.server, talker.server);
    ports.talker = talker.port;
    ports.echo = echo.port;
    ports.greeter = greeter.port;
    ports.flooder = flooder.port;
    ports.closed = await closedPort();

    hub = await startTestHub({ window: 64 * 1024 });
    agent = runAgent(hub.url, {
      allowedPorts: [ports.echo, ports.greeter, ports.flooder, ports.closed, ports.talker],
      connectTimeout: 2,
    });
    connection = await hub.nextConnection();
    await connection.hello;
  });
  afterAll(async () => {
    await agent.stop();
    await hub.close();
    for (const server of servers) server.close();
    flood.socket?.destroy();
    removeTemporaryDirs();
  });

  it('pipes a stream to a local port; our FIN reaches the service, and its FIN reaches us', async () => {
    const stream = await connection.open({ port: ports.echo! });
    const received = readUntilEnd(stream);
    stream.write('one\n');
    stream.end('two\n');
    // The service saw our FIN (it answers "bye" only on 'end') and then sent its own.
    expect((await received).toString()).toBe('one\ntwo\nbye\n');
  });

  it('carries the service half-closing first while we keep writing', async () => {
    const stream = await connection.open({ port: ports.greeter! });
    const received = readUntilEnd(stream);
    expect((await received).toString()).toBe('hello, then FIN\n');
    // Our direction is still open after the service's FIN.
    stream.write('still ');
    stream.end('talking');
    await waitFor(() => heardByGreeter.length > 0, 5000, 'the greeter connection');
    expect(await heardByGreeter.at(-1)).toBe('still talking');
  });

  it('refuses ports outside the allow-list and hosts not allowed, and maps ECONNREFUSED to refused', async () => {
    const code = async (target: Parameters<HubConnection['open']>[0]) => {
      try {
        await connection.open(target);
        return 'opened';
      } catch (error) {
        return error instanceof StreamError ? error.code : String(error);
      }
    };
    expect(await code({ port: 1 })).toBe('not-allowed');
    expect(await code({ port: ports.echo!, host: '10.1.2.3' })).toBe('not-allowed');
    expect(await code({ port: ports.closed! })).toBe('refused');
    // The connection is fine after refusals.
    const stream = await connection.open({ port: ports.echo! });
    const received = readUntilEnd(stream);
    stream.end('ok');
    expect((await received).toString()).toBe('okbye\n');
  });

  it('a slow reader on one stream does not stall another, and nothing buffers without bound', async () => {
    const stalled: TunnelStream = await connection.open({ port: ports.flooder! });
    // Nobody reads `stalled`: the flooder must be held back by the window, not buffered in the agent.
    await waitFor(() => flood.paused, 5000, 'the flooder to be paused by backpressure');
    const before = flood.written;
    for (let i = 0; i < 20; i += 1) {
      const stream = await connection.open({ port: ports.echo! });
      const received = readUntilEnd(stream);
      stream.end(`ping ${i}`);
      expect((await received).toString()).toBe(`ping ${i}bye\n`);
    }
    // The stalled stream holds at most its window; the flooder wrote only what kernel buffers and the
    // agent's stream buffers (a window plus a high-water mark) hold, and made no progress since.
    expect(stalled.bufferedBytes).toBeLessThanOrEqual(64 * 1024);
    expect(flood.written - before).toBeLessThan(1024 * 1024);
    expect(flood.written).toBeLessThan(32 * 1024 * 1024);
    // Reading resumes the flow.
    const resumedFrom = flood.written;
    stalled.resume();
    await waitFor(() => flood.written > resumedFrom + 4 * 1024 * 1024, 10_000, 'the flood to flow again');
    stalled.destroy();
  });

  it("carries many small writes intact while the reader waits and the agent's credit runs out", async () => {
    const stream = await connection.open({ port: ports.talker! });
    // Not read until the service sent everything: the agent holds reads back while it has no credit.
    await waitFor(() => toldByTalker.length > 0, 5000, 'the talker connection');
    const told = await toldByTalker.at(-1)!;
    const received = await readUntilEnd(stream);
    expect(received.length).toBe(1024 * 1024);
    expect(createHash('sha256').update(received).digest('hex')).toBe(told);
    stream.end();
    await once(stream, 'close');
  });

  it('a reset from the server resets the local connection (the service sees ECONNRESET, not a FIN)', async () => {
    const stream = await connection.open({ port: ports.echo! });
    stream.write('x');
    await once(stream, 'data');
    const resetsBefore = echoResets;
    stream.destroy();
    await waitFor(() => echoResets > resetsBefore, 5000, 'the echo service to see a reset');
    await waitFor(() => connection.mux.streamCount === 0, 5000, 'the stream to be forgotten');
  });

  it('a reset from the service resets the stream', async () => {
    const resetter = await tcpServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
    servers.push(resetter.server);
    const other = runAgent(hub.url, { allowedPorts: [resetter.port] });
    const otherConnection = await hub.nextConnection();
    await otherConnection.hello;
    const stream = await otherConnection.open({ port: resetter.port });
    const error = await new Promise<unknown>((resolve) => {
      stream.on('error', resolve);
      stream.on('end', () => resolve('clean end'));
      stream.resume();
      stream.write('x');
    });
    expect(error).toBeInstanceOf(StreamError);
    expect((error as StreamError).reason).toMatch(/ECONNRESET/);
    await other.stop();
  });
});
