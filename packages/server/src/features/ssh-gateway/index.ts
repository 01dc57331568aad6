import type { TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { AuthService } from '../auth/index.ts';
import type { StreamRouter } from '../remote-access/index.ts';
import { SshGateway } from './gateway.ts';

export { SshGateway, type SshGatewayOptions } from './gateway.ts';
export { hostKeysDir, loadHostKeys } from './host-keys.ts';
export { userOfLogin } from './targets.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The SSH gateway; `startServer` makes it listen on `sshPort` once the HTTP server listens. */
    sshGateway: SshGateway;
  }
}

/**
 * The SSH gateway. It listens when `startServer` tells it to
 * (in-process tests that never listen do not open an SSH port) and stops when the app closes.
 */
export function registerSshGateway(
  app: TypedApp,
  deps: ServiceDeps,
  router: StreamRouter,
  auth: AuthService,
): void {
  const gateway = new SshGateway(deps, router, auth, { authTimeoutMs: deps.config.sshAuthTimeoutMs });
  app.decorate('sshGateway', gateway);
  app.addHook('preClose', async () => {
    await gateway.close();
  });
}
