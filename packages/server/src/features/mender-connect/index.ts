import type { TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { AuthService } from '../auth/index.ts';
import type { PresenceRecorder } from '../presence/service.ts';
import type { StreamRouter } from '../remote-access/index.ts';
import { MenderConnectHub, type MenderConnectOptions } from './connections.ts';
import { registerMenderCli } from './mender-cli.ts';

export { MenderConnectHub, type MenderConnectOptions } from './connections.ts';
export { menderConnectLinks } from './links.ts';

/**
 * mender-connect (issue 20): stock Mender devices reached like agent devices. Devices connect to
 * `GET /api/devices/v1/deviceconnect/connect` with their device JWT; the hub holds their connections and writes
 * their presence (link `mender-connect`); `menderConnectLinks` makes them links of the stream router.
 */
export function createMenderConnectHub(
  deps: ServiceDeps,
  presence: PresenceRecorder,
  options: Omit<MenderConnectOptions, 'presence'> = {},
): MenderConnectHub {
  // Mender's deviceconnect pings every 30 s and gives up after 60 s: the tunnel's interval (30 s by default), and
  // twice that.
  const pingIntervalMs = deps.config.tunnelPingIntervalMs;
  return new MenderConnectHub(deps, {
    presence,
    pingIntervalMs,
    silenceTimeoutMs: 2 * pingIntervalMs,
    ...options,
  });
}

/**
 * Serves the device endpoint (always at the server's root, where mender-connect looks for it), and Mender's
 * deviceconnect management API for `mender-cli terminal` (through the stream router, like every surface).
 */
export function registerMenderConnect(
  app: TypedApp,
  deps: ServiceDeps,
  hub: MenderConnectHub,
  router: StreamRouter,
  auth: AuthService,
  stopping: () => boolean,
): void {
  registerMenderCli(app, deps, hub, router, auth, stopping);
  app.upgrades.route(/^\/api\/devices\/v1\/deviceconnect\/connect$/, (request, socket, head) =>
    hub.deviceUpgrade(request, socket, head),
  );
  app.addHook('onReady', async () => hub.start());
  app.addHook('preClose', async () => hub.close());
}
