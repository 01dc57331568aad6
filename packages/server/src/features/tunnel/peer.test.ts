import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { binaryMessageStart } from './peer.ts';

/** ws's own frame parser, as a client reads what the server sends (not in @types/ws). */
interface Receiver {
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
  write(chunk: Buffer): boolean;
}
const { Receiver } = createRequire(import.meta.url)('ws') as {
  Receiver: new (options: { isServer: boolean; maxPayload: number }) => Receiver;
};

describe('binaryMessageStart (the server writing WebSocket frame headers itself)', () => {
  it("frames messages of any length that ws's client parser reads back whole, split into any chunks", () => {
    const received: Buffer[] = [];
    const errors: Error[] = [];
    const receiver = new Receiver({ isServer: false, maxPayload: 0 });
    receiver.on('message', (data, isBinary) => {
      expect(isBinary).toBe(true);
      received.push(data);
    });
    receiver.on('error', (error) => errors.push(error));
    // Every length class of RFC 6455 section 5.2 and its edges: 7 bits, 16 bits, 64 bits.
    const lengths = [10, 11, 125, 126, 127, 65_535, 65_536, 65_546, 200_000];
    for (let i = 0; i < 40; i++) lengths.push(10 + Math.floor(Math.random() * 70_000));
    const sent: Buffer[] = [];
    const wire: Buffer[] = [];
    for (const length of lengths) {
      const message = randomBytes(length);
      sent.push(message);
      // The header part (as the multiplexer's 10 bytes) in the same buffer as the WebSocket header.
      wire.push(binaryMessageStart(message.subarray(0, 10), length), message.subarray(10));
    }
    const bytes = Buffer.concat(wire);
    for (let offset = 0; offset < bytes.length; ) {
      const size = 1 + Math.floor(Math.random() * 100_000);
      receiver.write(bytes.subarray(offset, offset + size));
      offset += size;
    }
    expect(errors).toEqual([]);
    expect(received.length).toBe(sent.length);
    for (const [i, message] of sent.entries()) expect(received[i]!.equals(message)).toBe(true);
  });
});
