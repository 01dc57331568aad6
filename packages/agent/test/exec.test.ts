import fs from 'node:fs';
import path from 'node:path';
import {
  DEFAULT_WINDOW,
  type ExecAgentMessage,
  type ExecClientMessage,
  ExecDecoder,
  type ExecExitStatus,
  type ExecRequest,
  encodeExecMessage,
  StreamError,
  type TunnelStream,
} from '@fleetgate/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningAgent, removeTemporaryDirs, runAgent, temporaryDir, waitFor } from './helpers.ts';
import { type HubConnection, startTestHub, type TestHub } from './hub.ts';

/** A client of the exec sub-protocol over one stream: collects output, waits for the exit status. */
class ExecSession {
  stdout = '';
  stderr = '';
  readonly exit: Promise<ExecExitStatus>;
  private readonly decoder = new ExecDecoder({ from: 'agent' });

  constructor(readonly stream: TunnelStream) {
    this.exit = new Promise((resolve, reject) => {
      let status: ExecExitStatus | undefined;
      stream.on('data', (chunk: Buffer) => {
        for (const message of this.decoder.push(chunk) as ExecAgentMessage[]) {
          if (message.type === 'stdout') this.stdout += Buffer.from(message.data).toString();
          else if (message.type === 'stderr') this.stderr += Buffer.from(message.data).toString();
          else status = message.status;
        }
      });
      // The exit status is the last message, then the agent's FIN.
      stream.on('end', () => (status ? resolve(status) : reject(new Error('stream ended without exit'))));
      stream.on('error', reject);
    });
  }

  send(message: ExecClientMessage): void {
    this.stream.write(encodeExecMessage(message));
  }
}

describe('exec service', () => {
  let hub: TestHub;
  let agent: RunningAgent;
  let connection: HubConnection;
  const exec = async (request: ExecRequest) => new ExecSession(await connection.open({ exec: request }));

  beforeAll(async () => {
    hub = await startTestHub();
    agent = runAgent(hub.url, { allowedPorts: [] });
    connection = await hub.nextConnection();
    await connection.hello;
  });
  afterAll(async () => {
    await agent.stop();
    await hub.close();
    removeTemporaryDirs();
  });

  it('runs a command with separate stdout and stderr and answers its exit code', async () => {
    const session = await exec({ command: `sh -c 'echo out; echo err >&2; exit 7'` });
    expect(await session.exit).toEqual({ code: 7 });
    expect(session.stdout).toBe('out\n');
    expect(session.stderr).toBe('err\n');
  });

  it('feeds stdin and closes it on eof-stdin; merges env', async () => {
    const session = await exec({ command: 'tr a-z A-Z; echo "$GREETING"', env: { GREETING: 'hi there' } });
    session.send({ type: 'stdin', data: Buffer.from('shout\n') });
    session.send({ type: 'eofStdin' });
    expect(await session.exit).toEqual({ code: 0 });
    expect(session.stdout).toBe('SHOUT\nhi there\n');
  });

  it('carries a large output in order, with backpressure', async () => {
    const session = await exec({ command: 'head -c 3000000 /dev/zero | tr "\\0" x' });
    expect(await session.exit).toEqual({ code: 0 });
    expect(session.stdout.length).toBe(3_000_000);
  });

  it('holds a fast producer back while nobody reads its output (backpressure, not buffering)', async () => {
    const progress = path.join(temporaryDir(), 'blocks');
    // Writes 64 KiB blocks forever, counting them in a file: a blocked pipe stops the count.
    const stream = await connection.open({
      exec: { command: `i=0; while :; do head -c 65536 /dev/zero; i=$((i+1)); echo $i > ${progress}; done` },
    });
    const blocks = () => Number(fs.existsSync(progress) ? fs.readFileSync(progress, 'utf8') || 0 : 0);
    await waitFor(() => blocks() > 0, 5000, 'the producer to start');
    // The window (DEFAULT_WINDOW, 4 MiB: 64 blocks), a pipe buffer and a few stream buffers: under 24 blocks
    // more. Without the pause the loop runs free (about 200 blocks a second here, each a new `head`) and passes
    // that bound within a second. A loaded machine fills the window slowly: the count is read every half
    // second until it stops moving, and must stop under the bound.
    const bound = DEFAULT_WINDOW / 65536 + 24;
    let stalledAt = blocks();
    for (let settled = false; !settled; ) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const now = blocks();
      expect(now).toBeLessThan(bound);
      settled = now === stalledAt;
      stalledAt = now;
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(blocks()).toBe(stalledAt);
    // Reading lets it run again.
    stream.resume();
    await waitFor(() => blocks() > stalledAt + 100, 10_000, 'the producer to run again');
    stream.destroy();
  });

  it('a signal terminates a sleep', async () => {
    const session = await exec({ command: 'sleep 100' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = performance.now();
    session.send({ type: 'signal', name: 'TERM' });
    const status = await session.exit;
    expect(performance.now() - started).toBeLessThan(5000);
    // The shell either exec'd sleep (killed by TERM) or reports it the shell way (128 + 15).
    expect([{ signal: 'TERM' }, { code: 143 }]).toContainEqual(status);
  });

  it('runs in a pty: tput cols follows a resize', async () => {
    const session = await exec({
      command: 'tput cols; read line; tput cols',
      pty: { term: 'xterm', cols: 80, rows: 24 },
    });
    await waitFor(() => session.stdout.includes('80'), 5000, 'the first tput');
    session.send({ type: 'resize', cols: 132, rows: 40 });
    session.send({ type: 'stdin', data: Buffer.from('\r') });
    expect(await session.exit).toEqual({ code: 0 });
    expect(session.stdout.replace(/\r/g, '')).toMatch(/^80\n\n?132\n$/);
    expect(session.stderr).toBe('');
  });

  it('a signal ends a sleep in a pty too; a login shell runs without a command', async () => {
    const sleeping = await exec({ command: 'sleep 100', pty: { term: 'xterm', cols: 80, rows: 24 } });
    await new Promise((resolve) => setTimeout(resolve, 200));
    sleeping.send({ type: 'signal', name: 'SIGINT' });
    expect([{ signal: 'INT' }, { code: 130 }]).toContainEqual(await sleeping.exit);

    const shell = await exec({ pty: { term: 'xterm', cols: 80, rows: 24 } });
    shell.send({ type: 'stdin', data: Buffer.from('echo "shell:$((6*7))"; exit 3\r') });
    expect(await shell.exit).toEqual({ code: 3 });
    expect(shell.stdout).toContain('shell:42');
  });

  it('resets the stream on garbage in the sub-protocol', async () => {
    const session = await exec({ command: 'cat' });
    session.stream.write(Buffer.from([0xee, 0, 0, 0, 0]));
    await expect(session.exit).rejects.toBeInstanceOf(StreamError);
  });
});

describe('exec disabled', () => {
  it('refuses exec streams with not-allowed', async () => {
    const hub = await startTestHub();
    const agent = runAgent(hub.url, { exec: { enabled: false } });
    const connection = await hub.nextConnection();
    await connection.hello;
    await expect(connection.open({ exec: { command: 'id' } })).rejects.toMatchObject({ code: 'not-allowed' });
    await expect(connection.open({ service: 'sftp' })).rejects.toMatchObject({ code: 'not-allowed' });
    await agent.stop();
    await hub.close();
  });
});
