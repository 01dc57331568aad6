import { readFileSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import type { Logger } from '../logging/index.ts';

/**
 * Connections the kernel may hold for a listener before fleetgate accepts them (`listen(2)`'s backlog; Linux caps it
 * at `net.core.somaxconn`, 4,096 by default). Node's default, 511, overflows when thousands of devices reconnect at
 * once (an instance of several died, or this one restarted): the kernel then drops their handshakes, the devices and
 * a load balancer's health checks wait on retransmissions, and the balancer marks this instance down just when it is
 * needed. Used by the listeners devices reconnect to: the HTTP port (tunnels) and the VPN port.
 */
export const LISTEN_BACKLOG = 4096;

/**
 * The process's connections, counted over every listener against one budget below its open-files limit, so
 * that a flood on one port cannot take the descriptors the others need: at 20,000 silent connections to one
 * port, a process without it could no longer answer `/healthz`, sign people in or open its database.
 *
 * Each listener may hold at most its share of the budget; the last part of the budget is for the listeners
 * allowed to use all of it (the HTTP API, which also carries the devices' tunnels). A listener over its share
 * stops taking connections through Node's own `maxConnections` (the kernel's connection is closed before any
 * JavaScript runs for it) and says so in the log, once a minute at most while it lasts.
 */
export class SocketBudget {
  private readonly listeners: Guarded[] = [];
  private open = 0;

  /** @param limit connections the process may hold in all (see `createSocketBudget`). */
  constructor(
    readonly limit: number,
    private readonly log: Logger,
  ) {}

  /** Connections open now, over every guarded listener. */
  get connections(): number {
    return this.open;
  }

  /**
   * Counts `server`'s connections against the budget.
   * @param share the part of the whole budget this listener may hold, in (0, 1].
   * @param most connections the listener holds at most, whatever the budget.
   */
  guard(name: string, server: Server, share: number, most = Number.POSITIVE_INFINITY): void {
    const listener: Guarded = { name, server, cap: this.capOf(share, most), open: 0 };
    let lastWarned = 0;
    this.listeners.push(listener);
    server.on('connection', (socket: Socket) => {
      // Node reads `maxConnections = 0` as no limit: the one connection it lets through then is closed here.
      if (listener.open >= this.allowed(listener)) {
        socket.destroy();
        server.emit('drop');
        return;
      }
      listener.open += 1;
      this.open += 1;
      this.update();
      socket.once('close', () => {
        listener.open -= 1;
        this.open -= 1;
        this.update();
      });
    });
    server.on('drop', () => {
      const now = Date.now();
      if (now - lastWarned < 60_000) return;
      lastWarned = now;
      const whole = this.open >= this.limit;
      this.log.warn(
        { listener: name, open: listener.open, processOpen: this.open, limit: this.limit },
        whole
          ? `${name}: refusing new connections: the process holds ${this.open} connections, its limit (raise the open-files limit, ulimit -n, to allow more)`
          : `${name}: refusing new connections: it holds ${listener.open}, its most (its share of the process's ${this.limit}), so the other ports keep theirs`,
      );
    });
    this.update();
  }

  /** The connections a listener guarded with `share` and `most` may hold at most. */
  capOf(share: number, most = Number.POSITIVE_INFINITY): number {
    return Math.max(1, Math.min(most, Math.floor(this.limit * share)));
  }

  /** What a listener may hold now: its share, and never more than it holds plus what is left of the whole. */
  private allowed(listener: Guarded): number {
    return Math.max(0, Math.min(listener.cap, listener.open + this.limit - this.open));
  }

  private update(): void {
    for (const listener of this.listeners)
      listener.server.maxConnections = Math.max(1, this.allowed(listener));
  }
}

interface Guarded {
  name: string;
  server: Server;
  cap: number;
  open: number;
}

/** Descriptors kept out of the budget: the database, log and recording files, outgoing connections. */
const RESERVE_MIN = 128;

/**
 * The budget for this process: `maxConnections` when set, else its open-files limit less a reserve (10 %,
 * at least 128) for everything that is not an accepted connection.
 */
export function createSocketBudget(maxConnections: number | undefined, log: Logger): SocketBudget {
  if (maxConnections !== undefined) return new SocketBudget(maxConnections, log);
  const files = openFilesLimit();
  if (files === undefined) return new SocketBudget(Number.MAX_SAFE_INTEGER, log);
  const limit = Math.max(64, files - Math.max(RESERVE_MIN, Math.ceil(files * 0.1)));
  return new SocketBudget(limit, log);
}

/** The soft limit on open files (`ulimit -n`), read from /proc on Linux; undefined where it cannot be read. */
export function openFilesLimit(): number | undefined {
  try {
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!line || line[1] === 'unlimited') return undefined;
    return Number(line[1]);
  } catch {
    return undefined;
  }
}
