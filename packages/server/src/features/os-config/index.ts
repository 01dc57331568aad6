import { z } from 'zod';
import type { DevicePrincipal } from '../../infra/access/index.ts';
import { AppError } from '../../infra/errors/index.ts';
import type { TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { authenticateDevice, authenticateDeviceKey, deviceCredentialOf } from '../device-auth/index.ts';
import { ensureVpnCertificates } from '../openvpn/certificates.ts';
import { openvpnClientConfig } from '../openvpn/client-config.ts';
import { sshKeysAllowedOnDevice } from '../ssh-keys/index.ts';

/**
 * `GET /os/v1/config`: what balenaOS's os-config fetches at boot and daily (balena-os/os-config src/remote.rs,
 * `CONFIG_ROUTE` in src/args.rs) and writes to the device's files: the OpenVPN client configuration and CA
 * (`/etc/openvpn/openvpn.conf`, `ca.crt`, then it restarts openvpn) and root's `authorized_keys` for the host
 * sshd. The shape is open-balena-api's (src/features/os-config/index.ts); os-config reads `services` as a map of
 * maps of strings and `config.overrides`, and ignores `schema_version` (kept for older os-configs).
 *
 * Authentication: os-config sends `Authorization: Bearer <deviceApiKey>` (an empty token when the device has no
 * key yet), and open-balena-api serves the config to anyone, with or without it: the VPN configuration and CA
 * are no secret (the VPN refuses whoever lacks a device key), and a device that cannot get them cannot reach the
 * VPN to be helped. fleetgate does the same, except that `ssh.authorized_keys` holds people's keys only for a
 * device that proved it is itself (its key, alone or with its uuid), and is empty for everyone else (including
 * a wrong or refused key: the config is still served, so a device whose key is unknown keeps its VPN settings
 * fresh, and the answer tells a guesser nothing but whether a key opened the SSH keys of someone's device).
 *
 * With the VPN off (`FLEETGATE_VPN=off`), the route answers 404 `not_found` saying so. os-config reads the body
 * of any answer as the JSON above and fails the run on anything else; and a configuration without the
 * `openvpn` service also fails it ("Service `openvpn` not found", src/join.rs `has_service_config_changes`,
 * before anything is written). Either way the device keeps the files it has, which is what we want: serving an
 * empty or made-up OpenVPN configuration instead would make os-config write it and restart openvpn with it.
 */
/** @param vpnPort the port devices' OpenVPN reaches: the one the backend listens on (`FLEETGATE_VPN_PORT`, or the one 0 picked). */
export async function registerOsConfig(
  app: TypedApp,
  deps: ServiceDeps,
  vpnPort: () => number = () => deps.config.vpnPort,
): Promise<void> {
  // Once, at start: the CA does not change while the server runs (certificates.ts never replaces it).
  const vpnCa = deps.config.vpn ? (await ensureVpnCertificates(deps.config.dataDir)).caPem : undefined;

  app.get(
    '/os/v1/config',
    {
      config: { public: true },
      schema: {
        // balena's device API, described by balena's documentation, not fleetgate's /api/v1 document (as Mender's).
        hide: true,
        tags: ['balena'],
        summary: "A balenaOS device's OpenVPN configuration, VPN CA and SSH keys (os-config)",
        response: {
          200: z.object({
            services: z.object({
              openvpn: z.object({ config: z.string(), ca: z.string() }),
              ssh: z.object({ authorized_keys: z.string() }),
            }),
            schema_version: z.literal('1.0.0'),
            config: z.object({ overrides: z.record(z.string(), z.string()) }),
          }),
        },
      },
    },
    async (request) => {
      if (vpnCa === undefined)
        throw new AppError(
          'not_found',
          'the OpenVPN backend is off on this server (FLEETGATE_VPN=off): there is no VPN configuration to serve',
        );
      const host = deps.config.vpnHost ?? vpnHostOf(request.hostname);
      const device = await deviceOf(deps, request.headers.authorization, request.ip);
      const sshKeys = device ? await sshKeysAllowedOnDevice(deps, device) : [];
      return {
        services: {
          openvpn: { config: openvpnClientConfig({ host, port: vpnPort() }), ca: vpnCa },
          ssh: { authorized_keys: sshKeys.map((key) => `${key}\n`).join('') },
        },
        schema_version: '1.0.0' as const,
        config: { overrides: {} },
      };
    },
  );
}

/**
 * The host name the device fetched its configuration from, as OpenVPN's `remote` wants it: without the port,
 * an IPv6 address without its brackets. A name OpenVPN could not take (or one that would add lines to the
 * configuration) is refused rather than written.
 */
function vpnHostOf(hostname: string): string {
  const host = hostname.replace(/^\[(.*)\]$/, '$1');
  if (!/^[A-Za-z0-9]([A-Za-z0-9.:-]{0,251}[A-Za-z0-9])?$/.test(host))
    throw new AppError(
      'bad_request',
      'the Host header is not a host name OpenVPN can connect to: call with the server’s name, or set FLEETGATE_VPN_HOST',
    );
  return host;
}

/**
 * The device an os-config request comes from, or undefined when it came without a usable credential. A key
 * alone (os-config's `Bearer <deviceApiKey>`) or fleetgate's own device credentials; refusals (unknown, revoked,
 * throttled) are counted by device-auth as everywhere, and answered here with the anonymous configuration.
 */
async function deviceOf(
  deps: ServiceDeps,
  header: string | undefined,
  sourceIp: string,
): Promise<DevicePrincipal | undefined> {
  try {
    const credential = deviceCredentialOf(header);
    if (credential) return await authenticateDevice(deps, credential, sourceIp);
    const key = /^Bearer\s+(\S{16,512})\s*$/i.exec(header ?? '')?.[1];
    return key ? await authenticateDeviceKey(deps, key, sourceIp) : undefined;
  } catch (err) {
    if (err instanceof AppError && (err.code === 'unauthorized' || err.code === 'rate_limited'))
      return undefined;
    throw err;
  }
}
