import type { OpenTarget } from '@fleetgate/protocol';
import { StreamError, StreamErrorCode } from '@fleetgate/protocol';
import type { TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { DeviceLinks, LinkOpener } from '../remote-access/index.ts';
import { InternalLinkServer } from './internal-link.ts';
import { otherInstancesLinks } from './links.ts';
import { InstanceRegistry } from './registry.ts';
import { SharedEvents } from './shared-events.ts';

export { openThroughInstance } from './internal-link.ts';
export { DEAD_AFTER_MS, HEARTBEAT_MS, instanceRuns, SecondInstanceError } from './registry.ts';
export { channelOf } from './shared-events.ts';

/**
 * Several instances on one database (issue 19; docs/architecture.md): the instance registry (always: on SQLite
 * it keeps a second instance off the file), the events shared through PostgreSQL (on PostgreSQL), and the
 * internal link through which an instance reaches devices another one holds (with `FLEETGATE_INTERNAL_PORT`).
 */
export interface Cluster {
  /** Devices' links held by other instances, for the stream router; undefined without the internal link. */
  readonly links: DeviceLinks | undefined;
}

export interface ClusterOptions {
  dialect: 'sqlite' | 'postgres';
  /** This instance's own links to devices: what the internal link opens streams over for other instances. */
  localLinks: readonly DeviceLinks[];
  /** Closes what dead instances held: their devices' presence and their sessions. */
  closeHeldBy(instanceIds: string[]): Promise<void>;
  /** This instance was found dead (a long pause): drop its tunnels so that devices reconnect. */
  dropLinks(): void;
}

export function createCluster(deps: ServiceDeps, options: ClusterOptions): Cluster & ClusterLifecycle {
  const { config, log, instanceId } = deps;
  const secret = config.clusterSecret;
  const internal =
    config.internalPort !== undefined && secret
      ? new InternalLinkServer({
          instanceId,
          secret,
          log,
          openLocal: (device, target, opener) => openLocally(options.localLinks, device, target, opener),
        })
      : undefined;
  let internalPort: number | undefined;
  let registry: InstanceRegistry | undefined;
  const shared =
    options.dialect === 'postgres' && config.databaseUrl
      ? new SharedEvents({
          databaseUrl: config.databaseUrl,
          schema: config.dbSchema,
          instanceId,
          events: deps.events,
          log,
        })
      : undefined;
  return {
    links: internal && secret ? otherInstancesLinks(deps, secret) : undefined,
    async start() {
      await shared?.start();
      if (internal) internalPort = await internal.listen(config.internalHost, config.internalPort ?? 0);
      registry = new InstanceRegistry({
        db: deps.db,
        dialect: options.dialect,
        log,
        instanceId,
        internalUrl: internal
          ? (config.internalUrl ?? `http://${config.internalHost}:${internalPort}`)
          : undefined,
        onDead: (ids) => options.closeHeldBy(ids),
        onRevived: () => options.dropLinks(),
      });
      await registry.start();
    },
    async stopRelaying() {
      await internal?.close();
    },
    async stop() {
      await registry?.stop();
      await shared?.stop();
    },
  };
}

export interface ClusterLifecycle {
  /** Registers the instance (closing what dead ones left), shares events, opens the internal link. */
  start(): Promise<void>;
  /** Stops the internal link (streams relayed for other instances are reset): before the tunnels close. */
  stopRelaying(): Promise<void>;
  /** Removes the instance's row and stops sharing events: after its tunnels and sessions closed. */
  stop(): Promise<void>;
}

/** Opens a stream over this instance's own link to the device, for another instance. */
async function openLocally(
  links: readonly DeviceLinks[],
  device: { id: number; uuid: string },
  target: OpenTarget,
  opener: LinkOpener | undefined,
) {
  for (const kind of links) {
    const link = await kind.linkOf(device);
    if (link) return link.open(target, opener);
  }
  throw new StreamError(StreamErrorCode.unreachable, 'the device has no link to this instance any more');
}

/**
 * Starts the cluster as the app gets ready, before the tunnel hub accepts devices (register it before the
 * tunnel), and stops it as the app closes.
 */
export function registerCluster(app: TypedApp, cluster: Cluster & ClusterLifecycle): void {
  app.addHook('onReady', () => cluster.start());
  app.addHook('preClose', () => cluster.stopRelaying());
  app.addHook('onClose', () => cluster.stop());
}
