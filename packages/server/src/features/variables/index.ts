import type { TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { TunnelHub } from '../tunnel/index.ts';
import { startVariablesPush } from './push.ts';
import { registerVariableRoutes } from './routes.ts';

export {
  openSecretVariableKeys,
  resealSecretVariables,
  sealingContext,
  sealPlainSecretVariables,
} from './sealing.ts';
export { type DeviceVariables, effectiveVariablesOf } from './service.ts';

/**
 * Fleet and device variables: their routes, and the push of each connected device's effective set over its
 * tunnel (at connect, and whenever it changes), stopped when the app closes.
 */
export function registerVariables(app: TypedApp, deps: ServiceDeps, hub: TunnelHub): void {
  registerVariableRoutes(app, deps);
  const stop = startVariablesPush(deps, hub);
  app.addHook('preClose', async () => stop());
}
