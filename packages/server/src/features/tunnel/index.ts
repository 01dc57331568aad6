import packageJson from '../../../package.json' with { type: 'json' };
import type { TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { PresenceRecorder } from '../presence/service.ts';
import { TunnelHub } from './hub.ts';

export { DeviceTunnel, TunnelHub } from './hub.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The tunnel hub: devices' live tunnels on this instance, for features that open streams. */
    tunnels: TunnelHub;
  }
}

/** The hub with its presence recorder, configured from `deps.config`; `registerTunnel` starts it. */
export function createTunnelHub(deps: ServiceDeps): TunnelHub {
  const { tunnelPingIntervalMs, tunnelPingTimeoutMs, presenceFlushMs } = deps.config;
  const presence = new PresenceRecorder(deps, {
    flushMs: presenceFlushMs,
    // Live tunnels refresh last-seen at every answered ping; three missed rounds mean the holder is gone.
    staleAfterMs: 3 * (Math.ceil(tunnelPingIntervalMs * 1.1) + tunnelPingTimeoutMs) + 2 * presenceFlushMs,
  });
  return new TunnelHub(deps, {
    presence,
    pingIntervalMs: tunnelPingIntervalMs,
    pingTimeoutMs: tunnelPingTimeoutMs,
    software: `fleetgate-server/${packageJson.version}`,
  });
}

/**
 * Serves `GET /api/v1/tunnel` on the app's HTTP server, starts the hub when the app is ready (before it listens:
 * devices a previous run left online go offline first), and closes every tunnel (and every other peer opened
 * with `openPeer`) with `goingAway` when the app closes, before the server stops listening.
 */
export function registerTunnel(app: TypedApp, hub: TunnelHub): void {
  app.decorate('tunnels', hub);
  app.upgrades.route(/^\/api\/v1\/tunnel$/, (request, socket, head) =>
    hub.deviceUpgrade(request, socket, head),
  );
  app.addHook('onReady', () => hub.start());
  app.addHook('preClose', async () => {
    // Stop accepting connections first: agents that reconnect at once then find the port closed and back off,
    // instead of reaching a server on its way out and getting a 503. Open connections are not touched.
    if (app.server.listening) app.server.close(() => {});
    await hub.close();
  });
}
