import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  CloseCode,
  type ConnectionClose,
  decodeFrame,
  encodeFrame,
  type IncomingOpen,
  Multiplexer,
  type MultiplexerOptions,
  type Role,
  StreamError,
  type TunnelStream,
} from './index.ts';

type Extra<R extends Role> = Omit<MultiplexerOptions<R>, 'role' | 'send'>;

/**
 * Two multiplexers back to back in memory; each message is delivered on a later macrotask, like a socket. With
 * `framing`, DATA frames go through `sendData`, joined to their header at once as a socket write would.
 */
function connectedPair(
  agentOptions: Extra<'agent'> = {},
  serverOptions: Extra<'server'> = {},
  framing = false,
) {
  let agent!: Multiplexer<'agent'>;
  let server!: Multiplexer<'server'>;
  const closes: { agent?: ConnectionClose; server?: ConnectionClose } = {};
  const joined = (deliver: (bytes: Uint8Array) => void) =>
    framing
      ? {
          sendData: (header: Uint8Array, payload: Uint8Array) => {
            const bytes = Buffer.concat([header, payload]);
            setImmediate(() => deliver(bytes));
          },
        }
      : {};
  agent = new Multiplexer({
    role: 'agent',
    send: (bytes) => setImmediate(() => server.receive(bytes)),
    ...joined((bytes) => server.receive(bytes)),
    onClose: (close) => {
      closes.agent = close;
    },
    ...agentOptions,
  });
  server = new Multiplexer({
    role: 'server',
    send: (bytes) => setImmediate(() => agent.receive(bytes)),
    ...joined((bytes) => agent.receive(bytes)),
    onClose: (close) => {
      closes.server = close;
    },
    ...serverOptions,
  });
  agent.start();
  server.start();
  return { agent, server, closes };
}

const sha256 = (chunks: Buffer[]) => createHash('sha256').update(Buffer.concat(chunks)).digest('hex');

/** Reads until FIN. (Not `for await`: the iterator destroys a Duplex whose write side is still open.) */
function readAll(stream: TunnelStream): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(chunks));
    stream.on('error', reject);
  });
}

async function writeAll(stream: TunnelStream, data: Buffer, chunkSize = 50_000): Promise<void> {
  for (let offset = 0; offset < data.length; offset += chunkSize) {
    if (!stream.write(data.subarray(offset, offset + chunkSize))) await once(stream, 'drain');
  }
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

describe('multiplexer', () => {
  it('carries many parallel streams byte-exactly both ways, with half-close', async () => {
    const { server } = connectedPair({
      onStream: (open) => {
        const stream = open.accept();
        stream.pipe(stream); // echo; the echo ends (FIN) when the opener's FIN arrives
      },
    });
    const streamCount = 8;
    const size = 512 * 1024;
    const results = await Promise.all(
      Array.from({ length: streamCount }, async (_, index) => {
        const stream = await server.open({ port: 1000 + index });
        const data = randomBytes(size);
        const received = readAll(stream);
        await writeAll(stream, data);
        stream.end();
        const chunks = await received;
        return { sent: sha256([data]), echoed: sha256(chunks) };
      }),
    );
    for (const { sent, echoed } of results) expect(echoed).toBe(sent);
    await settle();
    expect(server.streamCount).toBe(0);
  });

  it.each([
    ['encoded frames', false],
    ['DATA payloads sent where they lie (sendData)', true],
  ])(
    'relays a stream into another connection byte-exactly, both ways, as the server does: %s',
    async (_, framing) => {
      // person → (first connection) → relay → (second connection) → device echo. The relay writes the chunks it
      // reads into the other connection's stream, which hands them on without copying them (with `sendData`); a
      // reader of the same chunks on the relay must still see the payload unchanged.
      const seenOnRelay: Buffer[] = [];
      const device = connectedPair(
        {
          onStream: (open) => {
            const stream = open.accept();
            stream.pipe(stream);
          },
        },
        {},
        framing,
      );
      const person = connectedPair(
        {
          onStream: (open) => {
            const inbound = open.accept();
            void device.server.open({ port: 22 }).then((outbound) => {
              inbound.on('data', (chunk: Buffer) => seenOnRelay.push(Buffer.from(chunk)));
              inbound.pipe(outbound);
              outbound.pipe(inbound);
            });
          },
        },
        {},
        framing,
      );
      const stream = await person.server.open({ port: 22 });
      const data = randomBytes(3 * 1024 * 1024 + 17);
      const received = readAll(stream);
      await writeAll(stream, data, 70_000);
      stream.end();
      expect(sha256(await received)).toBe(sha256([data]));
      expect(sha256(seenOnRelay)).toBe(sha256([data]));
    },
  );

  it('hands DATA payloads to sendData as views into the written chunk, split at the credit and frame size', async () => {
    // The server's DATA frames stop here (the OPEN handshake needs none).
    const sent: { header: Uint8Array; payload: Uint8Array }[] = [];
    const { server } = connectedPair(
      { onStream: (open) => void open.accept() },
      { maxFramePayload: 16 * 1024, sendData: (header, payload) => void sent.push({ header, payload }) },
    );
    const stream = await server.open({ port: 22 });
    const chunk = randomBytes(40 * 1024);
    stream.write(chunk);
    expect(sent.map((s) => s.payload.length)).toEqual([16 * 1024, 16 * 1024, 8 * 1024]);
    let offset = 0;
    for (const { header, payload } of sent) {
      expect(payload.buffer).toBe(chunk.buffer);
      expect(payload.byteOffset).toBe(chunk.byteOffset + offset);
      const frame = decodeFrame(Buffer.concat([header, payload]));
      expect(frame).toMatchObject({ type: 'data', streamId: stream.id });
      offset += payload.length;
    }
  });

  it('half-closes each way independently', async () => {
    let acceptedStream!: TunnelStream;
    let accepted!: () => void;
    const acceptedPromise = new Promise<void>((resolve) => {
      accepted = resolve;
    });
    const connected = connectedPair({
      onStream: (open) => {
        acceptedStream = open.accept();
        accepted();
      },
    });
    const opener = await connected.server.open({ service: 'shell' });
    await acceptedPromise;
    // The acceptor finishes first; the opener still writes afterwards.
    const openerRead = readAll(opener);
    acceptedStream.end('from agent');
    expect(Buffer.concat(await openerRead).toString()).toBe('from agent');
    const agentRead = readAll(acceptedStream);
    opener.end('from server after agent fin');
    expect(Buffer.concat(await agentRead).toString()).toBe('from server after agent fin');
    const closed = (stream: TunnelStream) => (stream.closed ? Promise.resolve() : once(stream, 'close'));
    await Promise.all([closed(opener), closed(acceptedStream)]);
    expect(opener.errored).toBeNull();
    expect(acceptedStream.errored).toBeNull();
    expect(connected.agent.streamCount + connected.server.streamCount).toBe(0);
  });

  it('propagates a reset with its code and reason, and a refused open', async () => {
    let acceptedStream!: TunnelStream;
    const { server } = connectedPair({
      onStream: (open) => {
        if ('port' in open.target && open.target.port === 23) {
          open.reject('not-allowed', 'port 23 is not in the allow-list');
          return;
        }
        acceptedStream = open.accept();
        acceptedStream.on('error', () => {});
      },
    });
    await expect(server.open({ port: 23 })).rejects.toMatchObject({
      code: 'not-allowed',
      reason: 'port 23 is not in the allow-list',
    });
    const stream = await server.open({ port: 22 });
    await settle();
    const agentError = once(acceptedStream, 'error');
    stream.on('error', () => {}); // the local side sees its own error too
    stream.destroy(new StreamError('timeout', 'idle for 30 s'));
    const [error] = (await agentError) as [StreamError];
    expect(error).toBeInstanceOf(StreamError);
    expect(error.code).toBe('timeout');
    expect(error.reason).toBe('idle for 30 s');
  });

  it('stops a writer at the window on a stream nobody reads while another stream keeps flowing', async () => {
    const window = 64 * 1024;
    const accepted: TunnelStream[] = [];
    const { agent, server } = connectedPair(
      { window, onStream: (open) => accepted.push(open.accept()) },
      { window },
    );
    const stalled = await server.open({ port: 1 });
    const flowing = await server.open({ port: 2 });
    const [stalledReader, flowingReader] = accepted as [TunnelStream, TunnelStream];

    // Watch the receiver's buffer on every frame the agent receives.
    let maxBuffered = 0;
    const receive = agent.receive.bind(agent);
    agent.receive = (bytes) => {
      receive(bytes);
      maxBuffered = Math.max(maxBuffered, stalledReader.bufferedBytes, stalledReader.readableLength);
    };

    const stalledData = randomBytes(1024 * 1024);
    const stalledWrite = writeAll(stalled, stalledData).then(() => stalled.end());
    const flowingData = randomBytes(2 * 1024 * 1024);
    const flowingRead = readAll(flowingReader);
    await writeAll(flowing, flowingData);
    flowing.end();
    expect(sha256(await flowingRead)).toBe(sha256([flowingData]));

    await settle();
    expect(stalled.credit).toBe(0);
    expect(stalledReader.bufferedBytes).toBe(window);
    expect(stalled.writableLength).toBeGreaterThan(0); // the writer is held back, not buffered remotely
    expect(maxBuffered).toBeLessThanOrEqual(window);

    // Once the reader reads, everything arrives intact.
    const stalledRead = readAll(stalledReader);
    await stalledWrite;
    expect(sha256(await stalledRead)).toBe(sha256([stalledData]));
    expect(maxBuffered).toBeLessThanOrEqual(window);
  });

  it('holds writers back while the transport is full, one chunk per stream, until it drains', async () => {
    const accepted: TunnelStream[] = [];
    let full = true;
    let handedOver = 0;
    let pair: ReturnType<typeof connectedPair> | undefined;
    pair = connectedPair(
      { onStream: (open) => accepted.push(open.accept()) },
      {
        // A socket whose buffer stays full until the test says it drained.
        sendData: (header, payload) => {
          handedOver += payload.length;
          const bytes = Buffer.concat([header, payload]);
          setImmediate(() => pair?.agent.receive(bytes));
          return !full;
        },
      },
    );
    const { server } = pair;
    const streams = [await server.open({ port: 1 }), await server.open({ port: 2 })];
    const data = streams.map(() => randomBytes(1024 * 1024));
    const reads = accepted.map(readAll);
    let written = 0;
    const writes = streams.map((stream, i) =>
      writeAll(stream, data[i]!).then(() => {
        written += 1;
        stream.end();
      }),
    );

    await settle();
    // Each stream handed the transport its first chunk (50,000 bytes) and waits; nothing is lost meanwhile.
    expect(handedOver).toBe(2 * 50_000);
    expect(written).toBe(0);
    expect(streams.every((stream) => stream.credit > 0)).toBe(true);

    full = false;
    server.transportDrained();
    await Promise.all(writes);
    const received = await Promise.all(reads);
    expect(received.map(sha256)).toEqual(data.map((bytes) => sha256([bytes])));
  });

  it('delivers validated control messages and answers pings', async () => {
    const received: unknown[] = [];
    const { agent, server } = connectedPair({}, { onControl: (message) => received.push(message) });
    agent.sendControl({ type: 'variables-applied', revision: 3 });
    expect(await server.ping()).toBeGreaterThanOrEqual(0);
    expect(received).toEqual([{ type: 'variables-applied', revision: 3 }]);
    expect(agent.peerHello?.role).toBe('server');
  });

  it('closes with a typed code on both sides', async () => {
    const { agent, server, closes } = connectedPair();
    await server.ping();
    server.close(CloseCode.superseded, 'a newer connection of this device');
    await settle();
    expect(closes.agent).toEqual({
      code: CloseCode.superseded,
      name: 'superseded',
      reason: 'a newer connection of this device',
      remote: true,
    });
    expect(agent.closed?.name).toBe('superseded');
    await expect(agent.open({ port: 22 })).rejects.toMatchObject({ code: 'connection-closed' });
  });

  it('closes with unsupportedVersion when the versions differ', async () => {
    let closed: ConnectionClose | undefined;
    const agent = new Multiplexer({ role: 'agent', send: () => {}, onClose: (close) => (closed = close) });
    agent.start();
    const hello = { type: 'hello', version: 99, role: 'server', window: 65536, maxFramePayload: 65536 };
    agent.receive(encodeFrame({ type: 'control', streamId: 0, payload: Buffer.from(JSON.stringify(hello)) }));
    expect(closed?.name).toBe('unsupportedVersion');
    expect(closed?.reason).toMatch(/version 99/);
  });
});

export type { IncomingOpen };
