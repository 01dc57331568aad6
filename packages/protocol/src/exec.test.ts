import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EXEC_HEADER_SIZE,
  ExecDecoder,
  type ExecMessage,
  ExecProtocolError,
  encodeExecMessage,
  MAX_EXEC_PAYLOAD,
} from './exec.ts';
import { openTargetSchema } from './protocol.ts';

const bytes = (text: string) => new TextEncoder().encode(text);

/** Feeds `encoded` to a decoder split at the given offsets and answers every message decoded. */
function decodeSplit(from: 'client' | 'agent', encoded: Uint8Array, cuts: number[]): ExecMessage[] {
  const decoder = new ExecDecoder({ from });
  const messages: ExecMessage[] = [];
  let start = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < encoded.length)].sort((a, b) => a - b)) {
    messages.push(...decoder.push(encoded.subarray(start, cut)));
    start = cut;
  }
  messages.push(...decoder.push(encoded.subarray(start)));
  decoder.end();
  return messages;
}

const normalize = (messages: ExecMessage[]) =>
  messages.map((m) => ('data' in m ? { ...m, data: Buffer.from(m.data).toString('hex') } : m));

describe('exec sub-protocol', () => {
  it('round-trips every client and agent message, whole or split byte by byte', () => {
    const client: ExecMessage[] = [
      { type: 'stdin', data: bytes('ls -l\n') },
      { type: 'resize', cols: 132, rows: 43 },
      { type: 'signal', name: 'TERM' },
      { type: 'eofStdin' },
    ];
    const agent: ExecMessage[] = [
      { type: 'stdout', data: bytes('out\n') },
      { type: 'stderr', data: bytes('err\n') },
      { type: 'exit', status: { code: 7 } },
      { type: 'exit', status: { signal: 'KILL' } },
    ];
    for (const [from, messages] of [
      ['client', client],
      ['agent', agent],
    ] as const) {
      const encoded = Buffer.concat(messages.map(encodeExecMessage));
      expect(normalize(decodeSplit(from, encoded, []))).toEqual(normalize(messages));
      const everyByte = Array.from({ length: encoded.length }, (_, i) => i);
      expect(normalize(decodeSplit(from, encoded, everyByte))).toEqual(normalize(messages));
    }
  });

  it('splits a large data chunk into messages the decoder accepts', () => {
    const data = new Uint8Array(MAX_EXEC_PAYLOAD * 2 + 10).fill(7);
    const encoded = encodeExecMessage({ type: 'stdout', data });
    const decoded = decodeSplit('agent', encoded, [1000, 70_000]);
    expect(decoded.map((m) => ('data' in m ? m.data.length : -1))).toEqual([
      MAX_EXEC_PAYLOAD,
      MAX_EXEC_PAYLOAD,
      10,
    ]);
    // An empty chunk encodes to nothing rather than to a message.
    expect(encodeExecMessage({ type: 'stdin', data: new Uint8Array(0) })).toHaveLength(0);
  });

  const refusals: [string, 'client' | 'agent', Uint8Array, RegExp][] = [
    ['unknown type', 'client', Uint8Array.from([99, 0, 0, 0, 0]), /unknown exec message type 99/],
    [
      'a message from the wrong side',
      'client',
      encodeExecMessage({ type: 'exit', status: { code: 0 } }),
      /exit message from the client/,
    ],
    [
      'an oversized data message, refused on its header',
      'client',
      Uint8Array.from([1, 0xff, 0xff, 0xff, 0xff]),
      /exceeds the maximum/,
    ],
    ['eof-stdin with a payload', 'client', Uint8Array.from([4, 0, 0, 0, 1, 0]), /exceeds the maximum of 0/],
    ['resize that is not JSON', 'client', Uint8Array.from([5, 0, 0, 0, 2, 0xff, 0xfe]), /not UTF-8 JSON/],
    [
      'resize of 0 columns',
      'client',
      Uint8Array.from([5, 0, 0, 0, 20, ...bytes('{"cols":0,"rows":10}')]),
      /resize message invalid at cols/,
    ],
    [
      'a signal that is not a name',
      'client',
      Uint8Array.from([6, 0, 0, 0, 17, ...bytes('{"name":"rm -rf"}')]),
      /signal message invalid at name/,
    ],
    [
      'an exit code out of range',
      'agent',
      Uint8Array.from([7, 0, 0, 0, 12, ...bytes('{"code":300}')]),
      /exit message invalid/,
    ],
  ];
  it.each(refusals)('refuses %s', (_name, from, encoded, reason) => {
    const decoder = new ExecDecoder({ from });
    expect(() => decoder.push(encoded)).toThrow(reason);
    // Failed for good: the stream is broken and further bytes are not interpreted.
    expect(() => decoder.push(encodeExecMessage({ type: 'eofStdin' }))).toThrow(ExecProtocolError);
  });

  it('refuses a stream that ends inside a message', () => {
    const decoder = new ExecDecoder({ from: 'agent' });
    decoder.push(encodeExecMessage({ type: 'stdout', data: bytes('hello') }).subarray(0, 7));
    expect(() => decoder.end()).toThrow(/ended inside a message/);
  });

  it('fuzz: random bytes never escape as anything but ExecProtocolError, and buffering stays bounded', () => {
    const maxPayload = 1024;
    fc.assert(
      fc.property(
        fc.constantFrom<'client' | 'agent'>('client', 'agent'),
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 30 }),
        (from, chunks) => {
          const decoder = new ExecDecoder({ from, maxPayload });
          for (const chunk of chunks) {
            try {
              decoder.push(chunk);
            } catch (error) {
              expect(error).toBeInstanceOf(ExecProtocolError);
              return;
            }
            expect(decoder.bufferedBytes).toBeLessThanOrEqual(EXEC_HEADER_SIZE + maxPayload);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('fuzz: valid message sequences survive any split', () => {
    const clientMessage = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 200 }).map((data): ExecMessage => ({ type: 'stdin', data })),
      fc.constant<ExecMessage>({ type: 'eofStdin' }),
      fc
        .record({ cols: fc.integer({ min: 1, max: 10_000 }), rows: fc.integer({ min: 1, max: 10_000 }) })
        .map((size): ExecMessage => ({ type: 'resize', ...size })),
      fc.constantFrom('TERM', 'SIGINT', 'HUP', 'KILL').map((name): ExecMessage => ({ type: 'signal', name })),
    );
    fc.assert(
      fc.property(
        fc.array(clientMessage, { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (messages, cuts) => {
          const encoded = Buffer.concat(messages.map(encodeExecMessage));
          const decoded = decodeSplit(
            'client',
            encoded,
            cuts.map((c) => c % (encoded.length + 1)),
          );
          expect(normalize(decoded)).toEqual(normalize(messages));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('exec open target', () => {
  it('accepts a command or a shell with a pty, bounded and strict', () => {
    expect(openTargetSchema.safeParse({ exec: {} }).success).toBe(true);
    expect(
      openTargetSchema.safeParse({
        exec: { command: 'uptime', pty: { term: 'xterm-256color', cols: 80, rows: 24 }, env: { LANG: 'C' } },
      }).success,
    ).toBe(true);
    expect(openTargetSchema.safeParse({ exec: { command: '' } }).success).toBe(false);
    expect(openTargetSchema.safeParse({ exec: { shell: true } }).success).toBe(false);
    expect(openTargetSchema.safeParse({ exec: { env: { 'BAD NAME': 'x' } } }).success).toBe(false);
    const tooMany = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`V${i}`, 'x']));
    expect(openTargetSchema.safeParse({ exec: { env: tooMany } }).success).toBe(false);
    expect(openTargetSchema.safeParse({ exec: { pty: { term: 'xterm', cols: 0, rows: 24 } } }).success).toBe(
      false,
    );
  });
});
