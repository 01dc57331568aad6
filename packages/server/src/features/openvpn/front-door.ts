import net from 'node:net';
import type { Logger } from '../../infra/logging/index.ts';

/**
 * The VPN's public port (`FLEETGATE_VPN_PORT`): devices' OpenVPN clients connect here, and each connection is
 * piped to the OpenVPN instance holding the fewest, on 127.0.0.1. openBalena puts HAProxy in front of its
 * instances for the same reason; here it is one small piece of the server, which also remembers each piped
 * connection's real source (the instance sees 127.0.0.1), so authentication limits count per device network
 * (`sourceOf`).
 */

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

  constructor(
    private readonly targets: () => readonly FrontDoorTarget[],
    private readonly log: Logger,
  ) {
    this.server = net.createServer((socket) => this.pipe(socket));
  }

  /** Listens on the public VPN port; resolves with the port (0 picks a free one). */
  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ port, host }, () => {
        this.server.off('error', reject);
        this.server.on('error', (err) => this.log.error({ err }, 'the VPN port failed'));
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  /** Where a connection an instance sees coming from 127.0.0.1:`localPort` really comes from. */
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

  private pipe(client: net.Socket): void {
    const target = this.pick();
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
