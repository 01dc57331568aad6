import net from 'node:net';
import type { Logger } from '../../infra/logging/index.ts';
import { LISTEN_BACKLOG } from '../../infra/net/index.ts';

/**
 * The VPN's public port (`FLEETGATE_VPN_PORT`): devices' OpenVPN clients connect here, and each connection is
 * piped to the OpenVPN instance holding the fewest, on 127.0.0.1. openBalena puts HAProxy in front of its
 * instances for the same reason; here it is one small piece of the server, which also remembers each piped
 * connection's real source (the instance sees 127.0.0.1), so authentication limits count per device network
 * (`sourceOf`).
 *
 * **Shared with HTTP(S)** (`shareWithHttp`: `FLEETGATE_VPN_PORT` = `FLEETGATE_HTTP_PORT`, openBalena's one port
 * 443): each connection is told apart by its first byte, as openBalena's HAProxy does: a TLS handshake (0x16) or
 * an HTTP method (an upper-case letter) goes to fleetgate's own HTTP(S) listener on 127.0.0.1, anything else
 * (OpenVPN over TCP starts with a two-byte packet length, 0x00 first) to an OpenVPN instance. Both are piped, and
 * both have their source remembered by the pipe's local port: the HTTP(S) server puts it back on its socket
 * (`VpnBackend.shareHttpPort`), so sign-in limits and the audit see the person's address, not 127.0.0.1.
 */

/** How long a client of a shared port may stay silent before its first byte says what it speaks. */
const FIRST_BYTE_TIMEOUT_MS = 10_000;

export interface FrontDoorTarget {
  id: number;
  port: number;
  ready: boolean;
}

export class VpnFrontDoor {
  private readonly server: net.Server;
  /** Local port of a piped connection to an instance → the device's address. */
  private readonly sources = new Map<number, string>();
  private readonly open = new Map<number, number>();
  private readonly sockets = new Set<net.Socket>();
  /** fleetgate's own HTTP(S) listener on 127.0.0.1, when this port is shared with it. */
  private httpPort: number | undefined;

  constructor(
    private readonly targets: () => readonly FrontDoorTarget[],
    private readonly log: Logger,
  ) {
    this.server = net.createServer((socket) => this.accept(socket));
  }

  /** From now on, connections that start as TLS or HTTP go to fleetgate's HTTP(S) listener on 127.0.0.1:`port`. */
  shareWithHttp(port: number): void {
    this.httpPort = port;
  }

  /** Listens on the public VPN port; resolves with the port (0 picks a free one). */
  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
        this.server.off('error', reject);
        this.server.on('error', (err) => this.log.error({ err }, 'the VPN port failed'));
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  /**
   * Where a connection an instance (or, when shared, the HTTP(S) listener) sees coming from 127.0.0.1:`localPort`
   * really comes from.
   */
  sourceOf(localPort: number): string | undefined {
    return this.sources.get(localPort);
  }

  /** Stops listening and cuts every piped connection. */
  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private pick(): FrontDoorTarget | undefined {
    let best: FrontDoorTarget | undefined;
    for (const target of this.targets()) {
      if (!target.ready) continue;
      if (!best || (this.open.get(target.id) ?? 0) < (this.open.get(best.id) ?? 0)) best = target;
    }
    return best;
  }

  private accept(client: net.Socket): void {
    const httpPort = this.httpPort;
    if (httpPort === undefined) {
      this.pipe(client, this.pick());
      return;
    }
    // Every client of this port speaks first (a TLS ClientHello, an HTTP request, an OpenVPN reset packet). Held
    // in `sockets` meanwhile, so that `close` cuts it too.
    this.sockets.add(client);
    const silent = setTimeout(() => client.destroy(), FIRST_BYTE_TIMEOUT_MS);
    client.on('error', () => client.destroy());
    const closedFirst = () => {
      clearTimeout(silent);
      this.sockets.delete(client);
    };
    client.once('close', closedFirst);
    client.once('data', (chunk: Buffer) => {
      clearTimeout(silent);
      client.off('close', closedFirst);
      this.sockets.delete(client);
      client.pause();
      client.unshift(chunk);
      const first = chunk[0] ?? 0;
      const web = first === 0x16 || (first >= 0x41 && first <= 0x5a);
      this.pipe(client, web ? { id: 0, port: httpPort, ready: true } : this.pick());
      client.resume();
    });
  }

  /** Pipes `client` to `target` on 127.0.0.1 (id 0: the HTTP(S) listener), remembering where it comes from. */
  private pipe(client: net.Socket, target: FrontDoorTarget | undefined): void {
    const source = client.remoteAddress?.replace(/^::ffff:/, '') ?? 'unknown';
    if (!target) {
      // No instance takes clients right now (all restarting): the client retries by itself.
      client.destroy();
      return;
    }
    client.setNoDelay(true);
    const upstream = net.connect({ port: target.port, host: '127.0.0.1', noDelay: true });
    this.sockets.add(client);
    this.sockets.add(upstream);
    this.open.set(target.id, (this.open.get(target.id) ?? 0) + 1);
    let localPort: number | undefined;
    upstream.once('connect', () => {
      localPort = upstream.localPort;
      if (localPort !== undefined) this.sources.set(localPort, source);
    });
    const done = () => {
      if (!this.sockets.delete(client)) return;
      this.sockets.delete(upstream);
      this.open.set(target.id, (this.open.get(target.id) ?? 1) - 1);
      if (localPort !== undefined && this.sources.get(localPort) === source) this.sources.delete(localPort);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
    client.pipe(upstream);
    upstream.pipe(client);
    this.log.trace({ source, instance: target.id }, 'VPN connection');
  }
}
