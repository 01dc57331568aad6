import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import { StreamErrorCode } from '@fleetgate/protocol';
import { authorize } from '../../infra/access/index.ts';
import { AppError, badRequest } from '../../infra/errors/index.ts';
import { refuseUpgrade, type TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { AuthService } from '../auth/index.ts';
import { type DeviceCommand, type StreamRouter, streamRefusalOf } from '../remote-access/index.ts';
import { markSshKeyUsed, sshKeyById } from '../ssh-keys/index.ts';
import type { TunnelHub } from '../tunnel/index.ts';

/** Header naming the registered SSH key sshd accepted: the session acts as that key's owner. */
export const SSH_KEY_ID_HEADER = 'x-fleetgate-ssh-key-id';

/**
 * Header with the address the person connected to the bastion from (the first field of sshd's
 * `SSH_CONNECTION`): recorded as the session's client address. Only the service credential's word is taken
 * for it — nobody else may open these sessions at all — and the bastion's own address stays in the audit.
 */
export const CLIENT_ADDRESS_HEADER = 'x-fleetgate-client-address';

/** The person's address from `CLIENT_ADDRESS_HEADER`, or the bastion's when the header is absent. */
function clientAddressOf(request: IncomingMessage, bastion: string | null): string | null {
  const given = request.headers[CLIENT_ADDRESS_HEADER];
  if (given === undefined) return bastion;
  if (typeof given !== 'string' || net.isIP(given) === 0)
    throw badRequest(`${CLIENT_ADDRESS_HEADER} must be one IPv4 or IPv6 address`);
  return given;
}

/**
 * The WebSocket `GET /api/v1/ssh/proxy?device=<typed>`, where `fleetgate ssh-proxy` opens one stream to the
 * device as the owner of the SSH key sshd accepted (see index.ts).
 */
export function registerOpenSshProxy(
  app: TypedApp,
  deps: ServiceDeps,
  router: StreamRouter,
  hub: TunnelHub,
  auth: AuthService,
): void {
  app.upgrades.route(/^\/api\/v1\/ssh\/proxy$/, async (request, socket, head) => {
    if (hub.stopping) return refuseUpgrade(socket, 'unavailable', 'the server is stopping: try again later');
    const bastion = request.socket.remoteAddress ?? null;
    const service = await auth.authenticate(request.headers.authorization, bastion);
    authorize(service, 'ssh_key.act_as_owner');
    // authorize allows acting for a key's owner to service credentials only; the check keeps TypeScript told.
    if (service.type !== 'service') throw new AppError('forbidden', 'a service credential is needed');
    const sourceIp = clientAddressOf(request, bastion);
    const keyText = request.headers[SSH_KEY_ID_HEADER];
    if (typeof keyText !== 'string' || !/^[1-9]\d{0,9}$/.test(keyText))
      throw badRequest(`send ${SSH_KEY_ID_HEADER}: the id of the SSH key sshd accepted`);
    const typed = new URL(request.url ?? '/', 'http://x').searchParams.get('device') ?? '';
    if (!typed.trim()) throw badRequest('name a device: ssh <account>@<host> <device> [command]');
    const key = await sshKeyById(deps, Number(keyText));
    if (!key) throw new AppError('unauthorized', 'this SSH key is no longer registered with fleetgate');
    const owner = await auth.principalOf(key.user_id, { type: 'ssh_key', id: key.id });
    if (!owner) throw new AppError('unauthorized', 'the account of this SSH key is gone');
    // The person acts, from where they are; the service only vouches for them. The audit keeps both. Their
    // rights were read just now, for this connection's one stream: the router need not read them again.
    const caller = { actor: { principal: owner, sourceIp }, current: true };
    const via = {
      service: service.service,
      apiKey: service.keyId,
      name: service.name,
      sshKey: key.id,
      bastion,
    };
    // Found before the upgrade, so that an unknown device is an HTTP answer the bastion's client prints.
    const device = await router.findDevice(caller, { typed });
    await markSshKeyUsed(deps, key);
    if (socket.destroyed) return;
    let opened = false;
    await hub.openPeer<'agent'>(request, socket, head, {
      role: 'agent',
      onStream: (open) => {
        const target = open.target;
        const command: DeviceCommand | undefined =
          'exec' in target
            ? { exec: target.exec }
            : 'service' in target && target.service === 'sftp'
              ? { service: 'sftp' }
              : undefined;
        if (!command || opened) {
          open.reject(
            StreamErrorCode.notAllowed,
            "one command, shell or sftp session per connection: open {exec} or {service: 'sftp'}",
          );
          return;
        }
        opened = true;
        router
          .open({ caller, device, target: command, surface: 'openssh', details: { via }, vouchedBy: service })
          .then(
            (session) => {
              session
                .relay(open.accept())
                .catch((err: unknown) => deps.log.debug({ err }, 'an OpenSSH session ended with an error'));
            },
            (err: unknown) => {
              const { code, reason } = streamRefusalOf(err);
              if (code === StreamErrorCode.internal)
                deps.log.error({ err }, 'opening an OpenSSH session failed');
              try {
                open.reject(code, reason);
              } catch {
                // The client went away meanwhile.
              }
            },
          );
      },
      onControl: () => {},
    });
  });
}
