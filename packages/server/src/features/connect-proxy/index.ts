import type { TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { AuthService } from '../auth/index.ts';
import type { StreamRouter } from '../remote-access/index.ts';
import { ConnectProxy } from './proxy.ts';

export { ConnectProxy, type ConnectProxyOptions } from './proxy.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The HTTP CONNECT proxy to devices: `listen()` it beside the API (startServer does); closed with the app. */
    connectProxy: ConnectProxy;
  }
}

/**
 * Creates the CONNECT proxy from the configuration (`listen`, `proxyPort`, `deviceSuffix`, the proxy limits)
 * and closes it when the app closes, before the tunnels go. It does not listen until `app.connectProxy.listen()`:
 * `startServer` starts it after the API listens, so a port that cannot be bound stops the start.
 */
export function registerConnectProxy(
  app: TypedApp,
  deps: ServiceDeps,
  router: StreamRouter,
  auth: AuthService,
): void {
  const { config } = deps;
  const proxy = new ConnectProxy(deps, router, auth, {
    host: config.listen,
    port: config.proxyPort,
    deviceSuffix: config.deviceSuffix,
    headerTimeoutMs: config.proxyHeaderTimeoutMs,
    maxConnectionsPerSource: config.proxyMaxConnectionsPerSource,
    maxSessionsPerUser: config.proxyMaxSessionsPerUser,
    authAttempts: config.loginAttempts,
  });
  app.decorate('connectProxy', proxy);
  app.addHook('preClose', async () => {
    await proxy.close();
  });
}
