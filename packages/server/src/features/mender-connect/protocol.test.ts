import fc from 'fast-check';
import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  acceptOf,
  decodeMessage,
  encodeBody,
  encodeMessage,
  MAX_MESSAGE_FROM_DEVICE,
  MenderProtocolError,
  Proto,
} from './protocol.ts';

/** A device's message as mender-connect (Go, vmihailenco/msgpack) would send it. */
const validMessage = fc.record({
  proto: fc.constantFrom(1, 2, 3, 4, 0xffff),
  typ: fc.constantFrom('new', 'shell', 'forward', 'ack', 'stop', 'ping', 'accept'),
  sid: fc.stringMatching(/^[0-9a-f]{1,36}$/),
  props: fc.dictionary(
    fc.constantFrom('status', 'connection_id', 'user_id'),
    fc.oneof(fc.integer(), fc.string()),
  ),
  body: fc.uint8Array({ maxLength: 4096 }),
});

/** Decodes, and answers what happened: the message, or the protocol error. Anything else thrown fails the test. */
function outcome(data: Uint8Array): 'ok' | 'refused' {
  try {
    decodeMessage(data);
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(MenderProtocolError);
    return 'refused';
  }
}

describe('the mender-connect frame reader', () => {
  it('reads back every message fleetgate writes, header and body intact', () => {
    fc.assert(
      fc.property(validMessage, (message) => {
        const decoded = decodeMessage(encodeMessage(message));
        expect(decoded.hdr.proto).toBe(message.proto);
        expect(decoded.hdr.typ).toBe(message.typ);
        expect(decoded.hdr.sid).toBe(message.sid);
        expect(decoded.hdr.props).toEqual(message.props);
        expect(Buffer.from(decoded.body).equals(Buffer.from(message.body))).toBe(true);
      }),
    );
  });

  it('writes plain msgpack maps a Go reader understands (no msgpackr records)', () => {
    const bytes = encodeMessage({
      proto: Proto.control,
      typ: 'open',
      sid: 'a',
      body: encodeBody({ versions: [1] }),
    });
    // A map (fixmap 0x8_ or map16 0xde), never msgpackr's record extension (0xd4/0xc7… with type 0x72).
    expect([0xde, 0x82]).toContain(bytes[0]);
    expect(bytes.includes(Buffer.from([0xd4, 0x72]))).toBe(false);
    expect(acceptOf(pack({ version: 1, protocols: [2, 3] }))).toEqual({ version: 1, protocols: [2, 3] });
  });

  it('refuses random bytes with a protocol error, never another exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (data) => void outcome(data)),
      { numRuns: 2000 },
    );
  });

  it('refuses every truncation of a valid message', () => {
    fc.assert(
      fc.property(validMessage, fc.nat(), (message, cut) => {
        const bytes = encodeMessage(message);
        const at = cut % bytes.length;
        expect(outcome(bytes.subarray(0, at))).toBe('refused');
      }),
    );
  });

  it('refuses wrong types in every field', () => {
    const wrong = fc.oneof(
      fc.constant(null),
      fc.integer(),
      fc.double(),
      fc.string(),
      fc.boolean(),
      fc.array(fc.integer(), { maxLength: 3 }),
      fc.dictionary(fc.string(), fc.integer(), { maxKeys: 3 }),
      fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b)),
    );
    fc.assert(
      fc.property(
        fc.constantFrom('root', 'hdr', 'proto', 'typ', 'sid', 'props', 'body'),
        wrong,
        (field, value) => {
          const message: Record<string, unknown> = {
            hdr: { proto: 1, typ: 'shell', sid: 'x', props: {} },
            body: Buffer.from('a'),
          };
          const hdr = message.hdr as Record<string, unknown>;
          let bytes: Buffer;
          if (field === 'root') bytes = pack(value);
          else {
            if (field === 'hdr' || field === 'body') message[field] = value;
            else hdr[field] = value;
            bytes = pack(message);
          }
          const result = outcome(bytes);
          // Only values of the right type get through (an absent or nil optional field, a binary body…).
          if (result === 'ok') {
            const decoded = decodeMessage(bytes);
            expect(typeof decoded.hdr.proto).toBe('number');
            expect(typeof decoded.hdr.typ).toBe('string');
            expect(typeof decoded.hdr.sid).toBe('string');
            expect(Buffer.isBuffer(decoded.body)).toBe(true);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('refuses an oversized message before decoding it, and huge declared lengths without allocating them', () => {
    expect(outcome(Buffer.alloc(MAX_MESSAGE_FROM_DEVICE + 1, 0x90))).toBe('refused');
    // A map32 / bin32 / str32 / array32 that announces 4 GiB and holds a few bytes.
    for (const head of [0xdf, 0xc6, 0xdb, 0xdd])
      expect(outcome(Buffer.from([head, 0xff, 0xff, 0xff, 0xff, 0x01]))).toBe('refused');
    const before = process.memoryUsage().heapUsed;
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (tail) => {
        outcome(Buffer.concat([Buffer.from([0xdf, 0x7f, 0xff, 0xff, 0xff]), tail]));
        outcome(Buffer.concat([Buffer.from([0xdd, 0x7f, 0xff, 0xff, 0xff]), tail]));
      }),
      { numRuns: 2000 },
    );
    // Bounded memory: thousands of lying headers leave the heap about where it was (generous bound: GC timing).
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(64 * 1024 * 1024);
  });
});
