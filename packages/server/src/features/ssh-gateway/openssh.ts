import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import { StreamErrorCode } from '@fleetgate/protocol';
import { z } from 'zod';
import { type Actor, authorize } from '../../infra/access/index.ts';
import { AppError, badRequest } from '../../infra/errors/index.ts';
import { actorOf, refuseUpgrade, type TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { AuthService } from '../auth/service.ts';
import { markSshKeyUsed, sshKeyById } from '../ssh-keys/service.ts';
import { type DeviceCommand, openStream, streamRefusalOf } from '../streams/service.ts';
import type { TunnelHub } from '../tunnel/hub.ts';
import { resolveDevice, userOfLogin } from './targets.ts';

/**
 * The OpenSSH integration mode (DESIGN section 7, seed 004): operators keep OpenSSH's `sshd` at the edge (a
 * bastion), and fleetgate supplies its keys and relays its sessions.
 *
 * - `GET /api/v1/ssh/authorized-keys?login=…|fingerprint=…` answers the registered SSH keys that sshd's
 *   `AuthorizedKeysCommand` (`fleetgate ssh-authorized-keys`) turns into forced-command lines.
 * - The WebSocket `GET /api/v1/ssh/proxy?device=<typed>` with header `x-fleetgate-ssh-key-id: <key id>` is where
 *   the forced command (`fleetgate ssh-proxy <key id>`) opens ONE stream to the device — a command or shell
 *   (`{exec}`), or the device's sftp-server (`{service: 'sftp'}`, for `sftp` and `scp`) — acting as the user who
 *   owns that key: the device is resolved among that user's devices and `openStream` authorizes that user, never
 *   the credential. Sessions show the person, with surface `openssh` and the service key in the audit.
 *
 * Both are for the bastion's **service credential**: an API key made with `service: 'openssh'` (by a server
 * administrator), which may do these two things and nothing else in the API. Server administrators may list
 * keys too; nobody else may do either (403), so a person's own API key can never act for someone else's SSH key.
 */

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

const authorizedKeySchema = z.object({
  id: z.number().describe('the key id, for `fleetgate ssh-proxy <id>`'),
  algorithm: z.string(),
  publicKey: z.string().describe('"<algorithm> <base64>", as in authorized_keys'),
  fingerprint: z.string().describe('SHA256:… as OpenSSH prints it (sshd `%f`)'),
});

export interface AuthorizedKey {
  id: number;
  algorithm: string;
  publicKey: string;
  fingerprint: string;
}

/**
 * The registered SSH keys of a login (`alice@example.com`, or a unique local part `alice`), or the key with a
 * fingerprint (sshd's `%f`, for one shared local account), or both filters at once. Unknown → an empty list, as
 * for a login without keys; neither filter → an empty list too (nothing was asked for).
 */
export async function listAuthorizedKeys(
  deps: ServiceDeps,
  actor: Actor,
  filter: { login?: string | undefined; fingerprint?: string | undefined },
): Promise<AuthorizedKey[]> {
  authorize(actor.principal, 'ssh_key.lookup');
  if (filter.login === undefined && filter.fingerprint === undefined) return [];
  let query = deps.db
    .selectFrom('ssh_keys')
    .select(['id', 'algorithm', 'public_key', 'fingerprint'])
    .orderBy('id');
  if (filter.login !== undefined) {
    const userId = await userOfLogin(deps.db, filter.login);
    if (userId === undefined) return [];
    query = query.where('user_id', '=', userId);
  }
  if (filter.fingerprint !== undefined) query = query.where('fingerprint', '=', filter.fingerprint);
  const rows = await query.limit(500).execute();
  return rows.map((r) => ({
    id: r.id,
    algorithm: r.algorithm,
    publicKey: r.public_key,
    fingerprint: r.fingerprint,
  }));
}

/** The routes and the WebSocket endpoint of the OpenSSH integration mode. */
export function registerOpenSsh(app: TypedApp, deps: ServiceDeps, hub: TunnelHub, auth: AuthService): void {
  app.get(
    '/api/v1/ssh/authorized-keys',
    {
      config: { serves: 'ssh_key.lookup' },
      schema: {
        tags: ['remote access'],
        summary:
          "Registered SSH keys for sshd's AuthorizedKeysCommand (`fleetgate ssh-authorized-keys`): by login, " +
          "by fingerprint, or both; for the OpenSSH bastion's service credential (and server administrators) only",
        querystring: z.object({
          login: z.string().min(1).max(320).optional().describe("the person's e-mail or unique local part"),
          fingerprint: z
            .string()
            .regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'an OpenSSH SHA256 fingerprint')
            .optional()
            .describe('SHA256:… (sshd %f)'),
        }),
        response: { 200: z.object({ items: z.array(authorizedKeySchema) }) },
      },
    },
    async (request) => ({ items: await listAuthorizedKeys(deps, actorOf(request), request.query) }),
  );

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
    // The person acts, from where they are; the service only vouches for them. The audit keeps both.
    const actor: Actor = { principal: owner, sourceIp };
    const via = {
      service: service.service,
      apiKey: service.keyId,
      name: service.name,
      sshKey: key.id,
      bastion,
    };
    const device = await resolveDevice(deps.db, owner, typed, deps.config.deviceSuffix);
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
        openStream(deps, hub, actor, device.uuid, command, {
          surface: 'openssh',
          details: { via },
          vouchedBy: service,
        }).then(
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
