import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  encodeFileMessage,
  type FileAgentMessage,
  FileDecoder,
  type FileRequest,
  StreamError,
  type TunnelStream,
} from '@fleetgate/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningAgent, removeTemporaryDirs, runAgent, temporaryDir, waitFor } from './helpers.ts';
import { type HubConnection, startTestHub, type TestHub } from './hub.ts';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** What the agent answered on one file stream: its messages (data joined) once it ended its side. */
async function answers(stream: TunnelStream) {
  const decoder = new FileDecoder('agent');
  const messages: FileAgentMessage[] = [];
  const data: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => {
      for (const message of decoder.push(chunk) as FileAgentMessage[]) {
        if (message.type === 'data') data.push(Buffer.from(message.data));
        else messages.push(message);
      }
    });
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  return { messages, data: Buffer.concat(data) };
}

describe('file transfer on the agent', () => {
  let hub: TestHub;
  let agent: RunningAgent;
  let connection: HubConnection;
  let dir: string;
  const open = (file: FileRequest) => connection.open({ file });
  /** Names in `dir` other than `keep`: temporary files left behind. */
  const leftovers = (...keep: string[]) => fs.readdirSync(dir).filter((name) => !keep.includes(name));

  /** Uploads `bytes` as a client would: waits for ready, sends data and commit, ends its side. */
  const upload = async (
    file: Extract<FileRequest, { op: 'write' }>,
    bytes: Buffer,
    commitSha = sha256(bytes),
  ) => {
    const stream = await open(file);
    const answered = answers(stream);
    stream.write(encodeFileMessage({ type: 'data', data: bytes }));
    stream.end(encodeFileMessage({ type: 'commit', size: bytes.length, sha256: commitSha }));
    return answered;
  };

  beforeAll(async () => {
    hub = await startTestHub();
    agent = runAgent(hub.url, { allowedPorts: [] });
    connection = await hub.nextConnection();
    await connection.hello;
    dir = temporaryDir('fleetgate-files-');
  });
  afterAll(async () => {
    await agent.stop();
    await hub.close();
    removeTemporaryDirs();
  });

  it('reads a file: its size and SHA-256 first, then its bytes, then done', async () => {
    const bytes = randomBytes(300_000);
    const file = path.join(dir, 'read-me.bin');
    fs.writeFileSync(file, bytes, { mode: 0o640 });
    const { messages, data } = await answers(await open({ op: 'read', path: file }));
    expect(messages).toEqual([
      { type: 'meta', size: bytes.length, sha256: sha256(bytes), mode: 0o640 },
      { type: 'done', size: bytes.length, sha256: sha256(bytes) },
    ]);
    expect(sha256(data)).toBe(sha256(bytes));
    fs.rmSync(file);
  });

  it('ends a read with mismatch, not done, when the file changes while it is sent', async () => {
    const bytes = randomBytes(16 * 1024 * 1024);
    const file = path.join(dir, 'changing.bin');
    fs.writeFileSync(file, bytes);
    const stream = await open({ op: 'read', path: file });
    // Not read for now: the agent sends one credit window (4 MiB) of the 16 and waits. The file changes once its
    // first bytes arrived (the meta, with the SHA-256 of the file as it was), however slow the machine.
    stream.pause();
    await waitFor(() => stream.readableLength >= 1024 * 1024, 10_000, 'the first bytes of the file');
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.from('changed'), 0, 7, bytes.length - 7);
    fs.closeSync(fd);
    const answered = answers(stream);
    stream.resume();
    const { messages, data } = await answered;
    expect(messages[0]).toMatchObject({ type: 'meta', sha256: sha256(bytes) });
    expect(messages.at(-1)).toMatchObject({
      type: 'error',
      code: 'mismatch',
      message: expect.stringContaining('changed while it was read'),
    });
    expect(data.length).toBe(bytes.length);
    fs.rmSync(file);
  });

  it('refuses a missing file, a directory and a device file, saying which', async () => {
    const missing = await answers(await open({ op: 'read', path: path.join(dir, 'nope') }));
    expect(missing.messages).toEqual([
      { type: 'error', code: 'not-found', message: expect.stringContaining('no such file') },
    ]);
    const directory = await answers(await open({ op: 'read', path: dir }));
    expect(directory.messages).toEqual([
      { type: 'error', code: 'not-a-file', message: expect.stringContaining('is a directory') },
    ]);
    const device = await answers(await open({ op: 'read', path: '/dev/zero' }));
    expect(device.messages[0]).toMatchObject({ type: 'error', code: 'not-a-file' });
  });

  it('writes a file into place once size and SHA-256 match, with no temporary file left', async () => {
    const bytes = randomBytes(1_000_000);
    const file = path.join(dir, 'written.bin');
    const { messages } = await upload({ op: 'write', path: file, size: bytes.length }, bytes);
    expect(messages).toEqual([
      { type: 'ready' },
      { type: 'done', size: bytes.length, sha256: sha256(bytes) },
    ]);
    expect(sha256(fs.readFileSync(file))).toBe(sha256(bytes));
    expect(fs.statSync(file).mode & 0o777).toBe(0o644);
    expect(leftovers('written.bin')).toEqual([]);
    fs.rmSync(file);
  });

  it('keeps the old file when the SHA-256 differs, and removes what it wrote', async () => {
    const file = path.join(dir, 'kept.txt');
    fs.writeFileSync(file, 'old contents');
    const bytes = Buffer.from('new contents');
    const commit = await upload({ op: 'write', path: file }, bytes, sha256(Buffer.from('other')));
    expect(commit.messages.at(-1)).toMatchObject({ type: 'error', code: 'mismatch' });
    const announced = await upload({ op: 'write', path: file, sha256: sha256(Buffer.from('x')) }, bytes);
    expect(announced.messages.at(-1)).toMatchObject({
      type: 'error',
      code: 'mismatch',
      message: expect.stringContaining('SHA-256 you gave'),
    });
    const size = await upload({ op: 'write', path: file, size: 5 }, bytes);
    expect(size.messages.at(-1)).toMatchObject({ type: 'error', code: 'mismatch' });
    expect(fs.readFileSync(file, 'utf8')).toBe('old contents');
    expect(leftovers('kept.txt')).toEqual([]);
    fs.rmSync(file);
  });

  it('leaves no file, not even a part, when the stream is reset mid-upload', async () => {
    const file = path.join(dir, 'cut.bin');
    const stream = await open({ op: 'write', path: file, size: 10_000_000 });
    stream.on('error', () => {});
    stream.write(encodeFileMessage({ type: 'data', data: randomBytes(2_000_000) }));
    await waitFor(() => leftovers().length > 0 || undefined, 5000, 'the temporary file');
    stream.destroy(new Error('the person went away'));
    await waitFor(() => leftovers().length === 0 || undefined, 5000, 'the temporary file to go');
    expect(fs.existsSync(file)).toBe(false);
  });

  it('refuses to write into a missing directory or over a directory', async () => {
    const missing = await upload({ op: 'write', path: path.join(dir, 'no', 'such.txt') }, Buffer.from('x'));
    expect(missing.messages).toEqual([
      { type: 'error', code: 'not-found', message: expect.stringContaining('does not exist') },
    ]);
    fs.mkdirSync(path.join(dir, 'sub'));
    const over = await upload({ op: 'write', path: path.join(dir, 'sub') }, Buffer.from('x'));
    expect(over.messages).toEqual([
      { type: 'error', code: 'not-a-file', message: expect.stringContaining('is a directory') },
    ]);
    fs.rmdirSync(path.join(dir, 'sub'));
  });
});

describe('file transfer on an agent whose exec service is off', () => {
  it('is refused, saying why', async () => {
    const hub = await startTestHub();
    const agent = runAgent(hub.url, { allowedPorts: [], exec: { enabled: false } });
    try {
      const connection = await hub.nextConnection();
      await connection.hello;
      const refused = await connection.open({ file: { op: 'read', path: '/etc/hostname' } }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(StreamError);
      expect(refused).toMatchObject({
        code: 'not-allowed',
        reason: expect.stringContaining('exec service is off'),
      });
    } finally {
      await agent.stop();
      await hub.close();
    }
  });
});
