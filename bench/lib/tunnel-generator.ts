/**
 * A tunnel load generator for bench/tunnel and bench/cluster (started by bench/lib/idle-tunnels.ts): a child
 * process that holds many device tunnels, each a real WebSocket to `/api/v1/tunnel` speaking the fleetgate
 * protocol (a `Multiplexer` in the agent role) and authenticated with its device's uuid + key, from a source
 * address of its own (127.0.0.x), so that the tunnels of several generators stay under this machine's ~20,000
 * open files per process.
 *
 * When a tunnel closes, it reconnects exactly as fleetgate-agent does: exponential backoff with full
 * jitter (the agent's own `Backoff`, with the agent's defaults), starting over after 30 s connected. It reports to the parent, through IPC:
 *   { connected }          how many tunnels are up, whenever that changes (at most every 100 ms);
 *   { online: [t...] }     the times (Date.now()) at which tunnels came up, batched;
 *   { refused: {status: n} } the HTTP answers to refused upgrades, by status, batched;
 *   { failed: n }          connection attempts that failed without an answer (the server was down).
 * The parent sends { trim: n } to close all but the first n tunnels, and disconnects to end the process.
 */
import { Buffer } from 'node:buffer';
import { Backoff } from '@fleetgate/agent';
import { CloseCode, Multiplexer } from '@fleetgate/protocol';
import WebSocket from 'ws';

/** fleetgate-agent's default reconnect policy (packages/agent/src/config.ts: backoff base, cap, restartCap, stableAfter). */
const AGENT_BACKOFF = { baseMs: 1_000, capMs: 300_000, restartCapMs: 10_000 };
const STABLE_AFTER_MS = 30_000;

export interface GeneratorOptions {
  url: string;
  localAddress: string;
  devices: { uuid: string; key: string }[];
  /** Handshakes in flight at once while ramping up. */
  concurrency: number;
}

interface Tunnel {
  index: number;
  authorization: string;
  socket: WebSocket | null;
  up: boolean;
  upSince: number;
  backoff: Backoff;
  closed: boolean;
}

function run(options: GeneratorOptions): void {
  const tunnels: Tunnel[] = options.devices.map((device, index) => ({
    index,
    authorization: `Basic ${Buffer.from(`${device.uuid}:${device.key}`).toString('base64')}`,
    socket: null,
    up: false,
    upSince: 0,
    backoff: new Backoff(AGENT_BACKOFF),
    closed: false,
  }));
  let connected = 0;
  let online: number[] = [];
  let refused: Record<number, number> = {};
  let failed = 0;
  let reportedConnected = -1;

  // The parent may disconnect while a report is on its way: with a callback, that EPIPE is not thrown.
  const send = (message: object) => process.send!(message, undefined, {}, () => {});
  const report = setInterval(() => {
    if (!process.connected) return;
    if (connected !== reportedConnected) {
      reportedConnected = connected;
      send({ connected });
    }
    if (online.length > 0) send({ online });
    if (Object.keys(refused).length > 0) send({ refused });
    if (failed > 0) send({ failed });
    online = [];
    refused = {};
    failed = 0;
  }, 100);

  function connect(tunnel: Tunnel, onSettled?: () => void): void {
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      onSettled?.();
    };
    const socket = new WebSocket(options.url, {
      headers: { authorization: tunnel.authorization, 'x-fleetgate-agent': 'bench-generator' },
      localAddress: options.localAddress,
      perMessageDeflate: false,
      handshakeTimeout: 30_000,
    });
    tunnel.socket = socket;
    socket.binaryType = 'nodebuffer';
    const mux = new Multiplexer({
      role: 'agent',
      send: (frame) => {
        if (socket.readyState === WebSocket.OPEN) socket.send(frame);
      },
      software: 'fleetgate-bench-generator',
      onHello: () => {
        tunnel.up = true;
        tunnel.upSince = Date.now();
        connected++;
        online.push(Date.now());
        settle();
      },
      onStream: (open) => open.reject('not-allowed', 'a load generator has no ports'),
      onClose: ({ code, reason }) => {
        if (socket.readyState === WebSocket.OPEN) socket.close(code, reason);
      },
    });
    socket.on('unexpected-response', (_request, response) => {
      refused[response.statusCode ?? 0] = (refused[response.statusCode ?? 0] ?? 0) + 1;
      response.resume();
      socket.terminate();
    });
    socket.on('open', () => mux.start());
    socket.on('message', (data: Buffer) => mux.receive(data));
    socket.on('error', () => {
      // 'close' follows; an error without an HTTP answer is counted there.
    });
    socket.on('close', (code) => {
      mux.transportClosed();
      if (tunnel.up) {
        tunnel.up = false;
        // As the agent: the backoff starts over only after a connection that stayed up long enough.
        if (Date.now() - tunnel.upSince >= STABLE_AFTER_MS) tunnel.backoff.reset();
        if (code === CloseCode.goingAway) tunnel.backoff.serverRestarting();
        else tunnel.backoff.restartOver();
        connected--;
      } else if (code === 1006) {
        failed++;
      }
      settle();
      if (tunnel.closed || code === CloseCode.decommissioned) return;
      const delay = tunnel.backoff.next();
      setTimeout(() => connect(tunnel), delay).unref();
    });
  }

  // Ramp up with a bounded number of handshakes in flight, as a fleet coming online over time would.
  let next = 0;
  const startNext = () => {
    const tunnel = tunnels[next++];
    if (tunnel) connect(tunnel, startNext);
  };
  for (let i = 0; i < options.concurrency; i++) startNext();

  process.on('message', (message: { trim?: number }) => {
    if (message.trim === undefined) return;
    for (const tunnel of tunnels.slice(message.trim)) {
      tunnel.closed = true;
      tunnel.socket?.close(CloseCode.normal, 'trimmed by the bench');
    }
  });
  process.on('disconnect', () => {
    clearInterval(report);
    process.exit(0);
  });
}

// The options come as the first IPC message: thousands of credentials do not fit in a command line.
process.once('message', (options: GeneratorOptions) => run(options));
