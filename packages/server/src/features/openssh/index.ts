import type { TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { AuthService } from '../auth/index.ts';
import type { StreamRouter } from '../remote-access/index.ts';
import type { TunnelHub } from '../tunnel/index.ts';
import { registerOpenSshProxy } from './proxy.ts';
import { registerOpenSshRoutes } from './routes.ts';

export { CLIENT_ADDRESS_HEADER, SSH_KEY_ID_HEADER } from './proxy.ts';
export { type AuthorizedKey, listAuthorizedKeys } from './service.ts';

/**
 * The OpenSSH integration mode (DESIGN section 7, seed 004): operators keep OpenSSH's `sshd` at the edge (a
 * bastion), and fleetgate supplies its keys and relays its sessions.
 *
 * - `GET /api/v1/ssh/authorized-keys?login=…|fingerprint=…` answers the registered SSH keys that sshd's
 *   `AuthorizedKeysCommand` (`fleetgate ssh-authorized-keys`) turns into forced-command lines.
 * - The WebSocket `GET /api/v1/ssh/proxy?device=<typed>` with header `x-fleetgate-ssh-key-id: <key id>` is where
 *   the forced command (`fleetgate ssh-proxy <key id>`) opens ONE stream to the device — a command or shell
 *   (`{exec}`), or the device's sftp-server (`{service: 'sftp'}`, for `sftp` and `scp`) — acting as the user who
 *   owns that key: the stream router finds the device among that user's devices and authorizes that user, never
 *   the credential. Sessions show the person, with surface `openssh` and the service key in the audit.
 *
 * Both are for the bastion's **service credential**: an API key made with `service: 'openssh'` (by a server
 * administrator), which may do these two things and nothing else in the API. Server administrators may list
 * keys too; nobody else may do either (403), so a person's own API key can never act for someone else's SSH key.
 */

/** The routes and the WebSocket endpoint of the OpenSSH integration mode. */
export function registerOpenSsh(
  app: TypedApp,
  deps: ServiceDeps,
  router: StreamRouter,
  hub: TunnelHub,
  auth: AuthService,
): void {
  registerOpenSshRoutes(app, deps);
  registerOpenSshProxy(app, deps, router, hub, auth);
}
