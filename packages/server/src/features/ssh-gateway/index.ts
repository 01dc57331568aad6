import type { TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { AuthService } from '../auth/service.ts';
import type { TunnelHub } from '../tunnel/hub.ts';
import { SshGateway } from './gateway.ts';
import { registerOpenSsh } from './openssh.ts';
import { registerSshGatewayRoutes } from './routes.ts';

export { SshGateway, type SshGatewayOptions } from './gateway.ts';
export { hostKeysDir, loadHostKeys } from './host-keys.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The SSH gateway; `startServer` makes it listen on `sshPort` once the HTTP server listens. */
    sshGateway: SshGateway;
  }
}

/**
 * The SSH gateway and its routes (session recording). The gateway listens when `startServer` tells it to
 * (in-process tests that never listen do not open an SSH port) and stops when the app closes.
 */
export function registerSshGateway(
  app: TypedApp,
  deps: ServiceDeps,
  hub: TunnelHub,
  auth: AuthService,
): void {
  const gateway = new SshGateway(deps, hub, auth, { authTimeoutMs: deps.config.sshAuthTimeoutMs });
  app.decorate('sshGateway', gateway);
  registerSshGatewayRoutes(app, deps);
  registerOpenSsh(app, deps, hub, auth);
  app.addHook('preClose', async () => {
    await gateway.close();
  });
}
