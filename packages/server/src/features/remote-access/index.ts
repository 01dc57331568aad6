import type { TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { AuthService } from '../auth/index.ts';
import { registerPortStreams } from './port-streams.ts';
import type { StreamRouter } from './router.ts';

export {
  closeReason,
  PersonClosed,
  StreamCloseCode,
  type StreamCloseCodeValue,
  whyStreamEnded,
} from './stream-end.ts';

import { registerStreamRoutes } from './routes.ts';

export {
  type AllowedPortsView,
  currentDeviceReach,
  DEFAULT_ALLOWED_PORTS,
  getDeviceAllowedPorts,
  getFleetAllowedPorts,
  getPortAccess,
  MAX_ALLOWED_PORTS,
  setDeviceAllowedPorts,
  setFleetAllowedPorts,
} from './allowed-ports.ts';
export { type ResolvedDevice, resolveDevice, unknownDevice } from './device-names.ts';
export { type ExecOutput, ExecPeer } from './exec-peer.ts';
export { type DeviceLink, type DeviceLinks, type LinkOpener, tunnelLinks } from './links.ts';
export { PORT_STREAM_PROTOCOL } from './port-streams.ts';
export {
  createStreamRouter,
  type DeviceCommand,
  type DeviceReference,
  type FoundDevice,
  type StreamCaller,
  type StreamRequest,
  type StreamRouter,
  type StreamSession,
  streamRefusalOf,
} from './router.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The stream router: every surface by which people reach devices opens its streams here. */
    streamRouter: StreamRouter;
  }
}

/**
 * Remote access (DESIGN section 7): the stream router, the port allow-lists' routes, and port streams
 * (`GET /api/v1/devices/:device/ports/:port` upgraded to `fleetgate-stream`, what `fleetgate tunnel` opens).
 * Refuses new port streams once `stopping()` says the server is on its way out.
 */
export function registerRemoteAccess(
  app: TypedApp,
  deps: ServiceDeps,
  router: StreamRouter,
  auth: AuthService,
  stopping: () => boolean,
): void {
  app.decorate('streamRouter', router);
  registerStreamRoutes(app, deps);
  registerPortStreams(app, router, auth, stopping);
}
