import type { ServiceDeps } from '../../infra/service/index.ts';
import type { DeviceTunnel, TunnelHub } from '../tunnel/index.ts';
import { effectiveVariablesOf } from './service.ts';

/**
 * Devices connected to this instance get their effective variables over their tunnel: the whole set when the
 * tunnel is ready (its hello arrived), and again whenever it changes (`variables.changed`: a fleet's or a
 * device's variable written, a device moved to another fleet). Each set carries its revision; the agent
 * answers `variables-applied`, which presence records.
 *
 * Starts listening at once; answers a function that stops.
 */
export function startVariablesPush(deps: ServiceDeps, hub: TunnelHub): () => void {
  /** The highest revision sent on each tunnel, so a slower, older read never overwrites a newer set. */
  const sentRevision = new WeakMap<DeviceTunnel, number>();

  /** Sends each tunnel its device's effective variables, read in one batch. */
  async function push(tunnels: DeviceTunnel[]): Promise<void> {
    if (!tunnels.length) return;
    try {
      const sets = await effectiveVariablesOf(
        deps.db,
        deps.secrets,
        tunnels.map((t) => t.deviceId),
      );
      for (const tunnel of tunnels) {
        const set = sets.get(tunnel.deviceId);
        if (!set || tunnel.peer.mux.closed || set.revision < (sentRevision.get(tunnel) ?? -1)) continue;
        sentRevision.set(tunnel, set.revision);
        tunnel.peer.mux.sendControl({ type: 'variables', revision: set.revision, variables: set.variables });
      }
    } catch (err) {
      // One device's set that cannot be read (a sealed value that does not open) must not keep the others of
      // the batch from theirs: each is tried on its own, and only the failing ones are logged.
      if (tunnels.length > 1) {
        for (const tunnel of tunnels) await push([tunnel]);
        return;
      }
      deps.log.error({ err, deviceId: tunnels[0]!.deviceId }, 'could not send variables to the device');
    }
  }

  async function changed(change: { fleetId: number } | { deviceId: number }): Promise<void> {
    if (hub.stopping) return;
    let tunnels: DeviceTunnel[];
    if ('deviceId' in change) {
      const tunnel = hub.tunnelOf(change.deviceId);
      tunnels = tunnel ? [tunnel] : [];
    } else {
      if (!hub.deviceCount) return;
      const inFleet = await deps.db
        .selectFrom('devices')
        .select('id')
        .where('fleet_id', '=', change.fleetId)
        .execute();
      tunnels = inFleet.flatMap((d) => hub.tunnelOf(d.id) ?? []);
    }
    await push(tunnels.filter((t) => t.ready));
  }

  const stops = [
    deps.events.on('tunnel.ready', ({ deviceId }) => {
      const tunnel = hub.tunnelOf(deviceId);
      if (tunnel) void push([tunnel]);
    }),
    deps.events.on('variables.changed', (change) => {
      changed(change).catch((err: unknown) => deps.log.error({ err }, 'could not send variables to devices'));
    }),
  ];
  return () => {
    for (const stop of stops) stop();
  };
}
