import { once } from 'node:events';
import net from 'node:net';
import { pipeline } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { bridge } from './bridge.ts';
import { decodeFrame, type FrameTypeName, Multiplexer, StreamError, type TunnelStream } from './index.ts';

/**
 * The path of `fleetgate tunnel` in one process: a client socket → a local listener, bridged to a stream
 * the "server" multiplexer opens; the "agent" multiplexer accepts it and bridges it to a socket connected to
 * the target service. Frame types each side sent are recorded.
 */
async function tunnelPath(
  bridgeAgentSide: (socket: net.Socket, stream: TunnelStream) => Promise<void> = bridge,
) {
  const sent: { agent: FrameTypeName[]; server: FrameTypeName[] } = { agent: [], server: [] };
  let agent!: Multiplexer<'agent'>;
  let server!: Multiplexer<'server'>;
  const targetSockets: net.Socket[] = [];
  const target = net.createServer({ allowHalfOpen: true }, (socket) => targetSockets.push(socket));
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
  const targetPort = (target.address() as net.AddressInfo).port;
  const bridged: { agent?: Promise<void>; server?: Promise<void> } = {};
  agent = new Multiplexer({
    role: 'agent',
    send: (bytes) => {
      sent.agent.push(decodeFrame(bytes).type);
      setImmediate(() => server.receive(bytes));
    },
    onStream: (open) => {
      const socket = net.connect({ host: '127.0.0.1', port: targetPort, allowHalfOpen: true });
      socket.once('connect', () => {
        bridged.agent = bridgeAgentSide(socket, open.accept());
        // Handled here, asserted in the tests: a rejection may come before a test awaits it.
        bridged.agent.catch(() => {});
      });
    },
  });
  server = new Multiplexer({
    role: 'server',
    send: (bytes) => {
      sent.server.push(decodeFrame(bytes).type);
      setImmediate(() => agent.receive(bytes));
    },
  });
  agent.start();
  server.start();
  const listener = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.pause();
    void server.open({ port: targetPort }).then((stream) => {
      bridged.server = bridge(socket, stream);
      bridged.server.catch(() => {});
    });
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const client = net.connect({
    host: '127.0.0.1',
    port: (listener.address() as net.AddressInfo).port,
    allowHalfOpen: true,
  });
  client.on('error', () => {});
  await once(client, 'connect');
  while (targetSockets.length === 0 || !bridged.agent || !bridged.server) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const targetSocket = targetSockets[0]!;
  targetSocket.on('error', () => {});
  cleanups.push(() => {
    client.destroy();
    targetSocket.destroy();
    listener.close();
    target.close();
  });
  return { client, targetSocket, sent, bridged: bridged as Required<typeof bridged> };
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function readAll(socket: net.Socket): Promise<string> {
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    text += chunk;
  });
  return new Promise((resolve, reject) => {
    socket.once('end', () => resolve(text));
    socket.once('error', reject);
  });
}

describe('bridge', () => {
  it('half-closes client → target, the other way keeps flowing, and ends cleanly without a reset', async () => {
    const { client, targetSocket, sent, bridged } = await tunnelPath();
    const atTarget = readAll(targetSocket);
    const atClient = readAll(client);
    client.end('request');
    expect(await atTarget).toBe('request');
    // The target still writes after the client's FIN: only one direction is closed.
    targetSocket.write('response, ');
    targetSocket.end('done');
    expect(await atClient).toBe('response, done');
    await Promise.all([bridged.agent, bridged.server]);
    expect(sent.agent).not.toContain('reset');
    expect(sent.server).not.toContain('reset');
    expect(sent.agent).toContain('fin');
    expect(sent.server).toContain('fin');
  });

  it('half-closes target → client, with the client still sending afterwards', async () => {
    const { client, targetSocket, sent, bridged } = await tunnelPath();
    const atTarget = readAll(targetSocket);
    const atClient = readAll(client);
    targetSocket.end('banner');
    expect(await atClient).toBe('banner');
    client.write('late ');
    client.end('bytes');
    expect(await atTarget).toBe('late bytes');
    await Promise.all([bridged.agent, bridged.server]);
    expect([...sent.agent, ...sent.server]).not.toContain('reset');
  });

  it('carries a reset of the target through to the client as a TCP reset, and rejects', async () => {
    const { client, targetSocket, sent, bridged } = await tunnelPath();
    client.write('hello');
    await once(targetSocket, 'data');
    const clientError = once(client, 'error').then(([error]) => error as NodeJS.ErrnoException);
    targetSocket.resetAndDestroy();
    expect((await clientError).code).toBe('ECONNRESET');
    await expect(bridged.agent).rejects.toThrow();
    await expect(bridged.server).rejects.toBeInstanceOf(StreamError);
    expect(sent.agent).toContain('reset');
  });

  it('carries a reset of the client through to the target', async () => {
    const { client, targetSocket, sent, bridged } = await tunnelPath();
    client.write('hello');
    await once(targetSocket, 'data');
    const targetError = once(targetSocket, 'error').then(([error]) => error as NodeJS.ErrnoException);
    client.resetAndDestroy();
    expect((await targetError).code).toBe('ECONNRESET');
    await expect(bridged.server).rejects.toThrow();
    await expect(bridged.agent).rejects.toBeInstanceOf(StreamError);
    expect(sent.server).toContain('reset');
  });
});

describe('bridge aborting a socket whose sending side has just ended', () => {
  it('still closes it: a TCP reset while its FIN is being sent is refused (EINVAL), and its close would never come', async () => {
    const peers: net.Socket[] = [];
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => {});
      peers.push(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const a = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const b = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    await Promise.all([once(a, 'connect'), once(b, 'connect')]);
    cleanups.push(() => {
      for (const socket of [a, b, ...peers]) socket.destroy();
      server.close();
    });
    const bridged = bridge(a, b);
    bridged.catch(() => {});
    // As the SSH gateway saw it: one side's end and the other's breaking in the same tick.
    a.end();
    b.destroy(new Error('the other side broke'));
    const settled = await Promise.race([
      bridged.then(
        () => 'resolved',
        () => 'rejected',
      ),
      new Promise((resolve) => setTimeout(() => resolve('still open after 3 s'), 3000)),
    ]);
    expect(settled).toBe('rejected');
    expect(a.closed).toBe(true);
  });
});

describe('TunnelStream under stream.pipeline', () => {
  it('sends no reset when pipeline destroys it after FIN both ways', async () => {
    const { client, targetSocket, sent } = await tunnelPath(
      (socket, stream) =>
        new Promise((resolve, reject) =>
          pipeline(socket, stream, socket, (error) => (error ? reject(error) : resolve())),
        ),
    );
    const atTarget = readAll(targetSocket);
    const atClient = readAll(client);
    client.end('ping');
    expect(await atTarget).toBe('ping');
    targetSocket.end('pong');
    expect(await atClient).toBe('pong');
    await once(client, 'close');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(sent.agent).not.toContain('reset');
  });
});
