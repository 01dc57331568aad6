import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { WebSocketBytes } from './websocket-bytes.ts';

/**
 * Backpressure of a VNC WebSocket both ways, over real sockets on 127.0.0.1: a browser that does not read holds
 * the device's bytes back, and a device that does not read holds the browser's back.
 */
describe('WebSocketBytes', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  });

  /** A server's WebSocketBytes and the client WebSocket at its other end. */
  const pair = async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
    await new Promise((resolve) => wss.once('listening', resolve));
    const accepted = new Promise<WebSocketBytes>((resolve) =>
      wss.once('connection', (ws) => resolve(new WebSocketBytes(ws, () => false))),
    );
    const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, {
      perMessageDeflate: false,
    });
    client.binaryType = 'nodebuffer';
    await new Promise((resolve) => client.once('open', resolve));
    const bytes = await accepted;
    bytes.on('error', () => {});
    cleanups.push(() => {
      client.terminate();
      bytes.destroy();
      wss.close();
    });
    return { bytes, client };
  };
  const chunk = (i: number) => Buffer.alloc(64 * 1024, i % 251);
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it("holds the device's bytes back while the browser does not read, and delivers them all once it does", async () => {
    const { bytes, client } = await pair();
    client.pause();
    let written = 0;
    let sent = 0;
    while (bytes.write(chunk(sent))) {
      sent += 1;
      written += 64 * 1024;
      // Kernel buffers on loopback take a few MiB; far beyond them, the browser's pause was never felt.
      expect(written).toBeLessThan(64 * 1024 * 1024);
    }
    sent += 1;
    let drained = false;
    bytes.once('drain', () => {
      drained = true;
    });
    await sleep(300);
    expect(drained).toBe(false);

    let received = 0;
    let inOrder = true;
    client.on('message', (data: Buffer) => {
      if (data[0] !== Math.floor(received / (64 * 1024)) % 251) inOrder = false;
      received += data.length;
    });
    client.resume();
    await new Promise((resolve) => bytes.once('drain', resolve));
    await expect.poll(() => received, { timeout: 10_000 }).toBe(sent * 64 * 1024);
    expect(inOrder).toBe(true);
  });

  it("holds the browser's bytes back while the device does not read, and delivers them all once it does", async () => {
    const { bytes, client } = await pair();
    const frames = 512; // 32 MiB
    for (let i = 0; i < frames; i++) client.send(chunk(i));
    await sleep(500);
    // Not read on the device's side: the WebSocket stopped reading, the rest waits in the browser's queue.
    expect(bytes.readableLength).toBeLessThan(4 * 1024 * 1024);
    expect(client.bufferedAmount).toBeGreaterThan(0);

    let received = 0;
    bytes.on('data', (data: Buffer) => {
      received += data.length;
    });
    await expect.poll(() => received, { timeout: 10_000 }).toBe(frames * 64 * 1024);
  });
});
