/**
 * A small tunnel hub for agent tests: the server side of scratch/tunnel-contract.md built from `ws` and
 * a `Multiplexer` (role 'server') — upgrade at /api/v1/tunnel with an Authorization check, hello, the
 * variables push, close codes, and streams opened towards the agent. The real hub lives in the server.
 */
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type { Readable } from 'node:stream';
import {
  type AgentMessage,
  type ConnectionClose,
  HEADER_SIZE,
  MAX_FRAME_PAYLOAD,
  Multiplexer,
  type OpenTarget,
  type TunnelStream,
} from '@fleetgate/protocol';
import { WebSocket, WebSocketServer } from 'ws';

type StateReport = Extract<AgentMessage, { type: 'state-report' }>;
type VariablesApplied = Extract<AgentMessage, { type: 'variables-applied' }>;

export interface HubConnection {
  id: number;
  authorization: string | undefined;
  agentHeader: string | undefined;
  mux: Multiplexer<'server'>;
  socket: WebSocket;
  /** performance.now() when the upgrade completed. */
  connectedAt: number;
  reports: StateReport[];
  applied: VariablesApplied[];
  /** Resolves with the agent's hello software string. */
  hello: Promise<string | undefined>;
  /** Resolves when the connection closed. */
  closed: Promise<ConnectionClose>;
  open(target: OpenTarget): Promise<TunnelStream>;
  /** Resolves with the next message the agent sends of this type. */
  next<T extends 'state-report' | 'variables-applied'>(type: T): Promise<Extract<AgentMessage, { type: T }>>;
}

export interface TestHubOptions {
  /** Decides the upgrade: undefined accepts, a number refuses with that status and `body`. */
  authorize?: (authorization: string | undefined) => number | undefined;
  refusalBody?: (status: number) => unknown;
  /** Pushed right after the hello, if set. */
  variables?: () => { revision: number; variables: Record<string, string> } | undefined;
  /** Receive window per stream, in bytes. */
  window?: number;
  /** Serve HTTPS (wss) with this certificate. */
  tls?: { cert: Buffer; key: Buffer };
}

export interface TestHub {
  url: string;
  connections: HubConnection[];
  /** Upgrade attempts (accepted or refused), with their time. */
  attempts: { at: number; authorization: string | undefined; status: number }[];
  /** Resolves with the next accepted connection (or one already waiting that nobody took). */
  nextConnection(timeoutMs?: number): Promise<HubConnection>;
  close(): Promise<void>;
}

export async function startTestHub(options: TestHubOptions = {}): Promise<TestHub> {
  const notFound = (_request: http.IncomingMessage, response: http.ServerResponse) =>
    response.writeHead(404).end();
  const server = options.tls ? https.createServer(options.tls, notFound) : http.createServer(notFound);
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: HEADER_SIZE + MAX_FRAME_PAYLOAD,
  });
  const connections: HubConnection[] = [];
  const attempts: TestHub['attempts'] = [];
  const untaken: HubConnection[] = [];
  const waiters: ((connection: HubConnection) => void)[] = [];
  const sockets = new Set<net.Socket>();
  server.on(options.tls ? 'secureConnection' : 'connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  server.on('upgrade', (request, socket, head) => {
    const authorization = request.headers.authorization;
    const refusal = request.url === '/api/v1/tunnel' ? options.authorize?.(authorization) : 404;
    attempts.push({ at: performance.now(), authorization, status: refusal ?? 101 });
    if (refusal !== undefined) {
      const body = JSON.stringify(
        options.refusalBody?.(refusal) ?? {
          error: { code: 'unauthorized', message: 'refused by the test hub' },
        },
      );
      socket.end(
        `HTTP/1.1 ${refusal} Refused\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      const connection = accept(ws, request);
      const waiter = waiters.shift();
      if (waiter) waiter(connection);
      else untaken.push(connection);
    });
  });

  const accept = (ws: WebSocket, request: http.IncomingMessage): HubConnection => {
    const reports: StateReport[] = [];
    const applied: VariablesApplied[] = [];
    const listeners: { type: string; resolve: (message: AgentMessage) => void }[] = [];
    let helloResolve!: (software: string | undefined) => void;
    let closedResolve!: (close: ConnectionClose) => void;
    const hello = new Promise<string | undefined>((resolve) => {
      helloResolve = resolve;
    });
    const closed = new Promise<ConnectionClose>((resolve) => {
      closedResolve = resolve;
    });
    const mux: Multiplexer<'server'> = new Multiplexer({
      role: 'server',
      ...(options.window ? { window: options.window } : {}),
      send: (frame) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(frame);
      },
      onHello: (message) => {
        helloResolve(message.software);
        const variables = options.variables?.();
        if (variables) mux.sendControl({ type: 'variables', ...variables });
      },
      onControl: (message) => {
        if (message.type === 'state-report') reports.push(message);
        else applied.push(message);
        for (const listener of [...listeners]) {
          if (listener.type === message.type) {
            listeners.splice(listeners.indexOf(listener), 1);
            listener.resolve(message);
          }
        }
      },
      onClose: (close) => {
        closedResolve(close);
        if (!close.remote && ws.readyState === WebSocket.OPEN) ws.close(close.code, close.reason);
      },
    });
    ws.on('message', (data: Buffer) => mux.receive(data));
    ws.on('close', () => mux.transportClosed());
    ws.on('error', () => {});
    mux.start();
    const connection: HubConnection = {
      id: connections.length + 1,
      authorization: request.headers.authorization,
      agentHeader: request.headers['x-fleetgate-agent'] as string | undefined,
      mux,
      socket: ws,
      connectedAt: performance.now(),
      reports,
      applied,
      hello,
      closed,
      open: (target) => mux.open(target),
      next: (type) =>
        new Promise((resolve) => {
          listeners.push({ type, resolve: resolve as (message: AgentMessage) => void });
        }),
    };
    connections.push(connection);
    return connection;
  };

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;

  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    connections,
    attempts,
    nextConnection(timeoutMs = 10_000) {
      const ready = untaken.shift();
      if (ready) return Promise.resolve(ready);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(take), 1);
          reject(new Error(`no agent connected within ${timeoutMs} ms`));
        }, timeoutMs);
        const take = (connection: HubConnection) => {
          clearTimeout(timer);
          resolve(connection);
        };
        waiters.push(take);
      });
    },
    async close() {
      for (const client of wss.clients) client.terminate();
      for (const socket of sockets) socket.destroy();
      wss.close();
      server.close();
      await once(server, 'close').catch(() => {});
    },
  };
}

/** Reads a stream until its end (FIN), without ending the write side. */
export function readUntilEnd(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}
