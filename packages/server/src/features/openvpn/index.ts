import type { TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { TunnelHub } from '../tunnel/index.ts';
import { VpnBackend } from './backend.ts';

export { sharesHttpPort, VpnBackend, type VpnConnection, type VpnInstanceStatus } from './backend.ts';
export { ensureVpnCertificates, type VpnCertificates, vpnFilesOf } from './certificates.ts';
export { openvpnClientConfig } from './client-config.ts';
export { instancesAvailable, planVpn, type VpnInstancePlan, VpnPlanError } from './plan.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The OpenVPN backend, when `FLEETGATE_VPN=on`. */
    vpn: VpnBackend | undefined;
  }
}

/** The backend, writing presence with the tunnels' recorder; `registerOpenVpn` starts and stops it. */
export function createVpnBackend(deps: ServiceDeps, tunnels: TunnelHub): VpnBackend {
  return new VpnBackend(deps, { presence: tunnels.presence });
}

/**
 * Starts the OpenVPN instances once the app is ready (after the tunnel hub: presence left from an earlier run is
 * closed first) and stops them when it closes.
 */
export function registerOpenVpn(app: TypedApp, vpn: VpnBackend | undefined): void {
  app.decorate('vpn', vpn);
  if (!vpn) return;
  app.addHook('onReady', () => vpn.start());
  app.addHook('preClose', () => vpn.stop());
}
