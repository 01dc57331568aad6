import { describe, expect, it } from 'vitest';
import {
  encodeFileMessage,
  FileDecoder,
  FileProtocolError,
  fileRequestSchema,
  MAX_FILE_PAYLOAD,
} from './files.ts';

const sha = 'a'.repeat(64);

describe('the file sub-protocol', () => {
  it('carries every message, split anywhere, and splits large data into messages of at most 64 KiB', () => {
    const data = Buffer.alloc(MAX_FILE_PAYLOAD * 2 + 5, 7);
    const fromAgent = Buffer.concat([
      encodeFileMessage({ type: 'meta', size: data.length, sha256: sha, mode: 0o644 }),
      encodeFileMessage({ type: 'data', data }),
      encodeFileMessage({ type: 'done', size: data.length, sha256: sha }),
    ]);
    const decoder = new FileDecoder('agent');
    const messages = [];
    for (let offset = 0; offset < fromAgent.length; offset += 1000)
      messages.push(...decoder.push(fromAgent.subarray(offset, offset + 1000)));
    decoder.end();
    expect(messages[0]).toEqual({ type: 'meta', size: data.length, sha256: sha, mode: 0o644 });
    const received = messages.filter((m) => m.type === 'data');
    expect(received.length).toBe(3);
    expect(Buffer.concat(received.map((m) => (m as { data: Uint8Array }).data))).toEqual(data);
    expect(messages.at(-1)).toEqual({ type: 'done', size: data.length, sha256: sha });
  });

  it('refuses unknown types, messages from the wrong side, oversized and malformed payloads', () => {
    const refused = (from: 'agent' | 'client', bytes: Buffer) => () => new FileDecoder(from).push(bytes);
    expect(refused('agent', Buffer.from([9, 0, 0, 0, 0]))).toThrow(FileProtocolError);
    expect(refused('agent', encodeFileMessage({ type: 'commit', size: 1, sha256: sha }))).toThrow(
      /from the agent/,
    );
    expect(refused('client', encodeFileMessage({ type: 'ready' }))).toThrow(/from the client/);
    expect(refused('client', Buffer.from([1, 0, 1, 0, 1]))).toThrow(/exceeds/);
    const bad = Buffer.from('{"size":-1,"sha256":"x"}');
    expect(refused('client', Buffer.concat([Buffer.from([2, 0, 0, 0, bad.length]), bad]))).toThrow(/invalid/);
    const decoder = new FileDecoder('client');
    decoder.push(Buffer.from([1, 0, 0, 0, 9, 1]));
    expect(() => decoder.end()).toThrow(/inside a message/);
  });

  it('takes absolute paths without NUL only', () => {
    const read = (path: string) => fileRequestSchema.safeParse({ op: 'read', path }).success;
    expect(read('/etc/hostname')).toBe(true);
    expect(read('etc/hostname')).toBe(false);
    expect(read('/etc/\0x')).toBe(false);
    expect(read('/tmp/')).toBe(false);
    expect(read(`/${'x'.repeat(5000)}`)).toBe(false);
  });
});
