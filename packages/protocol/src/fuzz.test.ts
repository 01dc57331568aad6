import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CloseCode,
  type ConnectionClose,
  decodeFrame,
  encodeFrame,
  type Frame,
  type FrameTypeName,
  Multiplexer,
  type TunnelStream,
} from './index.ts';

const window = 4096;
const maxFramePayload = 1024;
const maxStreams = 8;

const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const agentHello = encodeFrame({
  type: 'control',
  streamId: 0,
  payload: json({ type: 'hello', version: 1, role: 'agent', window: 65536, maxFramePayload: 65536 }),
});

/** A server-side multiplexer that accepts every stream and never reads, to make buffering visible. */
function serverUnderAttack() {
  const accepted: TunnelStream[] = [];
  const sent: Frame[] = [];
  let closed: ConnectionClose | undefined;
  const mux = new Multiplexer({
    role: 'server',
    window,
    maxFramePayload,
    maxStreams,
    send: (bytes) => sent.push(decodeFrame(bytes, Number.MAX_SAFE_INTEGER)),
    onStream: (open) => {
      const stream = open.accept();
      stream.on('error', () => {}); // resets and connection closes surface here
      accepted.push(stream);
    },
    onControl: () => {},
    onClose: (close) => {
      closed = close;
    },
  });
  mux.start();
  const feed = (bytes: Uint8Array) => {
    expect(() => mux.receive(bytes)).not.toThrow();
    // Bounded: never more streams than allowed, never more buffered per stream than the window.
    expect(mux.streamCount).toBeLessThanOrEqual(maxStreams);
    for (const stream of accepted) {
      expect(stream.bufferedBytes).toBeLessThanOrEqual(window);
      expect(stream.readableLength).toBeLessThanOrEqual(window);
    }
  };
  return { mux, sent, feed, closed: () => closed };
}

const frame = (type: FrameTypeName, streamId: number, payload: Uint8Array | number[] = []) =>
  encodeFrame({ type, streamId, payload: Uint8Array.from(payload) });
const u32 = (value: number) => {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value);
  return bytes;
};
const openFrame = (id: number) => frame('open', id, json({ port: 22 }));

describe('protocol fuzzing: hostile frames close the connection with a reason', () => {
  const cases: [string, Uint8Array[], RegExp][] = [
    ['data before hello', [frame('data', 1, [1])], /data frame before hello/],
    [
      'control before hello',
      [frame('control', 0, json({ type: 'variables-applied', revision: 1 }))],
      /before hello/,
    ],
    ['data on a stream never opened', [agentHello, frame('data', 5, [1])], /data frame for unknown stream 5/],
    ['fin on a stream never opened', [agentHello, frame('fin', 7)], /unknown stream 7/],
    ['open with the server parity', [agentHello, openFrame(2)], /id parity/],
    [
      'open ids out of order',
      [agentHello, openFrame(5), openFrame(3)],
      /stream id 3 not above the last opened \(5\)/,
    ],
    [
      'open ok for a stream the server did not open',
      [agentHello, openFrame(1), frame('openOk', 1)],
      /not opening/,
    ],
    [
      'oversized frame',
      [agentHello, openFrame(1), frame('data', 1, new Uint8Array(maxFramePayload + 1))],
      /exceeds the maximum of 1024/,
    ],
    [
      'truncated frame',
      [agentHello, openFrame(1), frame('data', 1, [1, 2, 3]).subarray(0, 12)],
      /truncated data frame/,
    ],
    ['truncated header', [agentHello, new Uint8Array([4, 0, 0])], /truncated frame: 3 bytes/],
    [
      'unknown frame type',
      [agentHello, new Uint8Array([200, 0, 0, 0, 0, 1, 0, 0, 0, 0])],
      /unknown frame type 200/,
    ],
    [
      'data beyond the window',
      [agentHello, openFrame(1), ...Array.from({ length: 5 }, () => frame('data', 1, new Uint8Array(1000)))],
      /exceeded its flow control window of 4096 bytes/,
    ],
    [
      'data after fin',
      [agentHello, openFrame(1), frame('fin', 1), frame('data', 1, [1])],
      /data on stream 1 after fin/,
    ],
    ['zero window', [agentHello, openFrame(1), frame('window', 1, u32(0))], /window of 0 bytes/],
    ['window overflow', [agentHello, openFrame(1), frame('window', 1, u32(2 ** 31 - 1))], /overflows/],
    [
      'control message that fails validation',
      [agentHello, frame('control', 0, json({ type: 'state-report', hostname: 7 }))],
      /invalid at hostname/,
    ],
    ['control message that is not JSON', [agentHello, frame('control', 0, [0xff, 0x00])], /not UTF-8 JSON/],
    [
      'unknown control message type',
      [agentHello, frame('control', 0, json({ type: 'rm -rf' }))],
      /invalid at type/,
    ],
    ['second hello', [agentHello, agentHello], /second hello/],
    [
      'hello claiming the same role',
      [
        frame(
          'control',
          0,
          json({ type: 'hello', version: 1, role: 'server', window: 9999, maxFramePayload: 9999 }),
        ),
      ],
      /both sides claim role server/,
    ],
    [
      'open target that is not a JSON object',
      [agentHello, frame('open', 1, json([{ port: 22 }]))],
      /open target: invalid at \(root\)/,
    ],
    [
      'reset without a valid reason',
      [agentHello, openFrame(1), frame('reset', 1, json({ code: 'nope' }))],
      /reset: invalid at code/,
    ],
  ];

  it.each(cases)('%s', (_name, messages, reason) => {
    const { feed, sent, closed } = serverUnderAttack();
    for (const message of messages) feed(message);
    expect(closed()).toMatchObject({ code: CloseCode.protocolError, name: 'protocolError', remote: false });
    expect(closed()?.reason).toMatch(reason);
    // The peer is told why, in a CLOSE frame, and nothing follows it.
    const last = sent.at(-1)!;
    expect(last.type).toBe('close');
    expect(new TextDecoder().decode(last.payload.subarray(2))).toMatch(reason);
  });

  it.each([
    [
      'a kind it does not know (a newer peer)',
      { files: { path: '/etc/hosts' } },
      /unsupported target \["files"\]/,
    ],
    [
      'a known kind with a field it does not know',
      { exec: { pty: true, x: 1 } },
      /unsupported target \["exec"\]/,
    ],
    ['a port out of range', { port: 70000 }, /unsupported target \["port"\]: port/],
  ])('refuses an open target it cannot serve, %s, on that stream alone', (_name, target, reason) => {
    const { feed, sent, closed } = serverUnderAttack();
    feed(agentHello);
    feed(frame('open', 1, json(target)));
    const refusal = sent.at(-1)!;
    expect(refusal).toMatchObject({ type: 'openErr', streamId: 1 });
    const body = JSON.parse(new TextDecoder().decode(refusal.payload));
    expect(body.code).toBe('not-allowed');
    expect(body.reason).toMatch(reason);
    // The connection goes on: the next stream opens.
    feed(openFrame(3));
    expect(closed()).toBeUndefined();
    expect(sent.at(-1)).toMatchObject({ streamId: 3 });
  });

  it('refuses streams beyond the limit without buffering them, and drops late frames for closed streams', () => {
    const { mux, feed, sent, closed } = serverUnderAttack();
    feed(agentHello);
    for (let id = 1; id <= 2 * maxStreams * 2; id += 2) feed(openFrame(id));
    expect(mux.streamCount).toBe(maxStreams);
    expect(sent.filter((f) => f.type === 'openErr')).toHaveLength(maxStreams);
    // A reset stream's in-flight frames are harmless, not protocol errors.
    feed(frame('reset', 1, json({ code: 'cancelled', reason: '' })));
    feed(frame('data', 1, [1, 2, 3]));
    feed(frame('window', 1, u32(10)));
    expect(closed()).toBeUndefined();
    expect(mux.streamCount).toBe(maxStreams - 1);
  });

  it('survives random bytes: no exception, and any close is a protocol error', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }),
        (hello, messages) => {
          const { feed, closed } = serverUnderAttack();
          if (hello) feed(agentHello);
          for (const message of messages) feed(message);
          const close = closed();
          if (close) {
            expect(close.code).toBe(CloseCode.protocolError);
            expect(close.reason.length).toBeGreaterThan(0);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  const frameTypes: FrameTypeName[] = [
    'open',
    'openOk',
    'openErr',
    'data',
    'window',
    'fin',
    'reset',
    'ping',
    'pong',
    'control',
    'close',
  ];
  const payloadFor = (type: FrameTypeName): fc.Arbitrary<Uint8Array> => {
    switch (type) {
      case 'open':
        return fc.oneof(fc.constant(json({ port: 22 })), fc.uint8Array({ maxLength: 16 }));
      case 'data':
        return fc.integer({ min: 0, max: 1200 }).map((size) => new Uint8Array(size));
      case 'window':
        return fc.oneof(fc.integer({ min: 0, max: 100_000 }).map(u32), fc.uint8Array({ maxLength: 6 }));
      case 'reset':
      case 'openErr':
        return fc.oneof(fc.constant(json({ code: 'refused', reason: 'x' })), fc.uint8Array({ maxLength: 8 }));
      case 'control':
        return fc.oneof(
          fc.constant(json({ type: 'variables-applied', revision: 1 })),
          fc.uint8Array({ maxLength: 8 }),
        );
      case 'ping':
      case 'pong':
        return fc.oneof(fc.uint8Array({ minLength: 8, maxLength: 8 }), fc.uint8Array({ maxLength: 10 }));
      case 'close':
        return fc.uint8Array({ maxLength: 8 });
      case 'openOk':
      case 'fin':
        return fc.uint8Array({ maxLength: 2 });
    }
  };
  const randomFrame = fc
    .constantFrom(...frameTypes)
    .chain((type) =>
      fc.record({
        type: fc.constant(type),
        streamId: fc.integer({ min: 0, max: 12 }),
        payload: payloadFor(type),
        truncateBy: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 12 })),
      }),
    )
    .map(({ type, streamId, payload, truncateBy }) => {
      const bytes = encodeFrame({ type, streamId, payload });
      return bytes.subarray(0, bytes.length - Math.min(truncateBy, bytes.length));
    });

  it('survives random frame sequences: no exception, bounded buffers, closes only with a reason', () => {
    fc.assert(
      fc.property(fc.array(randomFrame, { maxLength: 40 }), (messages) => {
        const { feed, closed } = serverUnderAttack();
        feed(agentHello);
        for (const message of messages) feed(message);
        const close = closed();
        if (close && !close.remote) {
          expect(close.code).toBe(CloseCode.protocolError);
          expect(close.reason.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('a failing transport', () => {
  it('closes the connection instead of throwing out of receive()', () => {
    let closed: ConnectionClose | undefined;
    const mux = new Multiplexer({
      role: 'server',
      send: () => {
        throw new Error('socket gone');
      },
      onClose: (close) => {
        closed = close;
      },
    });
    expect(() => mux.start()).not.toThrow();
    expect(closed?.name).toBe('internalError');
    expect(() => mux.receive(agentHello)).not.toThrow();
  });
});
