import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeFrame,
  encodeFrame,
  type Frame,
  FrameType,
  type FrameTypeName,
  HEADER_SIZE,
  ProtocolError,
} from './protocol.ts';

const connectionTypes: FrameTypeName[] = ['ping', 'pong', 'control', 'close'];
const payloadSize: Partial<Record<FrameTypeName, number>> = {
  openOk: 0,
  fin: 0,
  window: 4,
  ping: 8,
  pong: 8,
};

const validFrame: fc.Arbitrary<Frame> = fc
  .constantFrom(...(Object.keys(FrameType) as FrameTypeName[]))
  .chain((type) => {
    const fixed = payloadSize[type];
    const payload =
      fixed === undefined
        ? fc.uint8Array({ minLength: type === 'close' ? 2 : 0, maxLength: 2048 })
        : fc.uint8Array({ minLength: fixed, maxLength: fixed });
    const streamId = connectionTypes.includes(type)
      ? fc.constant(0)
      : fc.integer({ min: 1, max: 0xffffffff });
    return fc.record({ type: fc.constant(type), streamId, payload });
  });

describe('frame codec', () => {
  it('decodes what it encodes', () => {
    fc.assert(
      fc.property(validFrame, (frame) => {
        const decoded = decodeFrame(encodeFrame(frame));
        expect(decoded.type).toBe(frame.type);
        expect(decoded.streamId).toBe(frame.streamId);
        expect(Buffer.from(decoded.payload).equals(Buffer.from(frame.payload))).toBe(true);
      }),
    );
  });

  it('rejects every truncation and any trailing byte with a ProtocolError', () => {
    fc.assert(
      fc.property(validFrame, fc.nat(), fc.integer({ min: 1, max: 16 }), (frame, cut, extra) => {
        const bytes = encodeFrame(frame);
        const truncated = bytes.subarray(0, cut % bytes.length);
        expect(() => decodeFrame(truncated)).toThrow(/truncated/);
        const padded = new Uint8Array(bytes.length + extra);
        padded.set(bytes);
        expect(() => decodeFrame(padded)).toThrow(/oversized/);
      }),
    );
  });

  it('refuses a payload above the maximum from the header alone', () => {
    const header = encodeFrame({ type: 'data', streamId: 1, payload: new Uint8Array(0) });
    new DataView(header.buffer).setUint32(6, 0xffffffff);
    expect(() => decodeFrame(header, 65536)).toThrow(/exceeds the maximum of 65536/);
    const big = encodeFrame({ type: 'data', streamId: 1, payload: new Uint8Array(1025) });
    expect(() => decodeFrame(big, 1024)).toThrow(ProtocolError);
  });

  it('refuses unknown types, reserved flags, wrong stream ids and wrong fixed sizes', () => {
    const frame = (type: number, flags: number, streamId: number, payload: number[]) => {
      const bytes = new Uint8Array(HEADER_SIZE + payload.length);
      const view = new DataView(bytes.buffer);
      view.setUint8(0, type);
      view.setUint8(1, flags);
      view.setUint32(2, streamId);
      view.setUint32(6, payload.length);
      bytes.set(payload, HEADER_SIZE);
      return bytes;
    };
    expect(() => decodeFrame(frame(99, 0, 1, []))).toThrow(/unknown frame type 99/);
    expect(() => decodeFrame(frame(FrameType.data, 1, 1, []))).toThrow(/reserved flags/);
    expect(() => decodeFrame(frame(FrameType.data, 0, 0, []))).toThrow(/data frame on stream 0/);
    expect(() => decodeFrame(frame(FrameType.ping, 0, 3, [0, 0, 0, 0, 0, 0, 0, 0]))).toThrow(/on stream 3/);
    expect(() => decodeFrame(frame(FrameType.window, 0, 1, [1, 2]))).toThrow(/must be 4 bytes/);
    expect(() => decodeFrame(frame(FrameType.close, 0, 0, [1]))).toThrow(/without a close code/);
  });

  it('either decodes random bytes or throws a ProtocolError, nothing else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          decodeFrame(bytes);
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
