import type { Duplex } from 'node:stream';
import type { OpenTarget } from '@fleetgate/protocol';
import type { TunnelHub } from '../tunnel/index.ts';

/**
 * How the stream router reaches a device: through a live link to it. The agent's tunnel to this instance is one
 * kind of link; each kind is found by its own `DeviceLinks`, and the router asks them in order (see
 * `findLink` in router.ts), so a kind of link is added without touching the router's other steps.
 */

/** Who a stream opens for, for links whose device wants to know (mender-connect keeps one shell per user). */
export interface LinkOpener {
  /** A stable id of the person (or service) the router authorized. */
  userId: string;
}

/** A device's live link, over which streams to it open. */
export interface DeviceLink {
  /**
   * Opens a stream to a TCP port on the device (`{port}`), a command the agent runs (`{exec}`) or its sftp
   * service; rejects with a `StreamError` (from @fleetgate/protocol) when the device refuses or cannot reach it.
   */
  open(target: OpenTarget, opener?: LinkOpener): Promise<Duplex>;
}

/** Where links of one kind are found. */
export interface DeviceLinks {
  /**
   * The device's live link of this kind, or undefined when it has none now. A kind that must look it up (the
   * link through another instance, features/cluster) answers a promise.
   */
  linkOf(device: { id: number; uuid: string }): DeviceLink | undefined | Promise<DeviceLink | undefined>;
}

/** Devices' tunnels to this instance (DESIGN section 6), as links. */
export function tunnelLinks(hub: TunnelHub): DeviceLinks {
  return {
    linkOf(device) {
      const tunnel = hub.tunnelOf(device.id);
      // Only a tunnel this very device opened: its credential names the same uuid as the row.
      if (!tunnel || tunnel.principal.uuid !== device.uuid) return undefined;
      return { open: (target) => tunnel.peer.mux.open(target) };
    },
  };
}
