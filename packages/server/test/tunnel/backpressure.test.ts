/**
 * A device that stops reading its tunnel (a slow agent, a congested uplink) while people push into several
 * streams to it: the server does not queue every stream's window (4 MiB each) for that device's connection in
 * its own memory; each stream waits with at most a chunk handed over, and the people's connections are paused
 * instead. Once the device reads again, every byte arrives, in order. The server, the agent's tunnel, the
 * people's streams and the service on the device are real listeners and clients.
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { DEFAULT_WINDOW } from '@fleetgate/protocol';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  eventually,
  listen,
  type newDevice,
  onlineDevice,
  requestPortStream,
  startTunnelServer,
  streamOpened,
  type TestAgent,
} from './helpers.ts';

const MiB = 1024 * 1024;
/** People's streams to the device, and what each writes: a piece of its own, again and again. */
const STREAMS = 8;
const PIECE = MiB;
const PIECES = 16;

let server: Awaited<ReturnType<typeof startTunnelServer>>;
let device: Awaited<ReturnType<typeof newDevice>>;
let agent: TestAgent;
let sink: net.Server;
let sinkPort: number;
/** What the service on the device received on each connection, once it ended: byte count and SHA-256. */
const received: { bytes: number; sha256: string }[] = [];

beforeAll(async () => {
  // The agent stops reading for a while: its pings must not go unanswered for too long meanwhile.
  server = await startTunnelServer({ tunnelPingTimeoutMs: 60_000 });
  sink = net.createServer((socket) => {
    const hash = createHash('sha256');
    let bytes = 0;
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    socket.once('end', () => received.push({ bytes, sha256: hash.digest('hex') }));
    socket.on('error', () => {});
  });
  sinkPort = await listen(sink);
  ({ device, agent } = await onlineDevice(server, 'backpressure-fleet', [sinkPort]));
});

afterAll(async () => {
  agent?.close();
  sink?.close();
  await server?.close();
});

it("a device that stops reading does not make the server buffer every stream's window", async () => {
  const people: Duplex[] = [];
  try {
    for (let i = 0; i < STREAMS; i += 1) {
      const { socket } = streamOpened(
        await requestPortStream(server.baseUrl, server.adminToken, device.uuid, sinkPort),
      );
      socket.on('error', () => {});
      people.push(socket);
    }
    // The server's connection to the device: what it writes there and the device has not taken yet waits in
    // this socket's buffer, in the server's memory.
    const toDevice = server.app.tunnels.tunnelOf(device.id)?.peer.ws.transport;
    if (!toDevice) throw new Error('the device has no live tunnel');

    // The device stops reading; every person writes far more than a window, as fast as their socket takes it.
    agent.ws.pause();
    const expected: string[] = [];
    for (const socket of people) {
      const piece = randomBytes(PIECE);
      const hash = createHash('sha256');
      for (let n = 0; n < PIECES; n += 1) {
        socket.write(piece);
        hash.update(piece);
      }
      socket.end();
      expected.push(hash.digest('hex'));
    }
    expect(STREAMS * DEFAULT_WINDOW).toBeGreaterThanOrEqual(16 * MiB);
    expect(PIECE * PIECES).toBeGreaterThan(2 * DEFAULT_WINDOW);

    // Until nothing moves any more for 300 ms: the most the server held for the device meanwhile.
    let mostHeld = 0;
    let last = '';
    let stableSince = Date.now();
    await eventually(
      () => {
        mostHeld = Math.max(mostHeld, toDevice.writableLength);
        const now = `${toDevice.writableLength} ${people.map((s) => s.writableLength).join(' ')}`;
        if (now !== last) {
          last = now;
          stableSince = Date.now();
        }
        return Date.now() - stableSince >= 300;
      },
      8000,
      'the streams to settle',
    );

    // The people were held back: every one of them still has bytes waiting on their side...
    for (const socket of people)
      expect(socket.writableLength, 'bytes a person still holds').toBeGreaterThan(0);
    expect(received).toEqual([]);
    // ...and the server held far less than the streams' windows (32 MiB) for the device that does not read.
    expect(mostHeld, 'bytes the server held for the device').toBeLessThan(2 * MiB);

    // The device reads again: every stream's bytes arrive, all of them and in order.
    agent.ws.resume();
    await eventually(() => received.length === STREAMS, 20_000, 'every stream to arrive');
    expect(received.map((r) => r.bytes)).toEqual(new Array(STREAMS).fill(PIECE * PIECES));
    expect(received.map((r) => r.sha256).sort()).toEqual(expected.sort());
  } finally {
    for (const socket of people) socket.destroy();
  }
});
