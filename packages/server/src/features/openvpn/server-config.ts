import type { VpnInstancePlan } from './plan.ts';

/**
 * The command line of one OpenVPN 2.6 server instance: open-balena-vpn's server configuration (its
 * server.conf.tmpl and the per-instance arguments of src/utils/openvpn.ts) with two changes, each for a reason:
 *
 * - authentication and presence go through the management interface (`--management … --management-client
 *   --management-client-auth`), not an auth script and connect/disconnect scripts run per connection;
 * - it listens on 127.0.0.1 only: devices reach it through fleetgate's public VPN port (front-door.ts), which
 *   spreads them over the instances and knows their real source addresses.
 *
 * What a stock balenaOS client needs stays as openBalena has it: TCP, `tun` in point-to-point topology with
 * addresses from the instance's pool, no client certificate (`verify-client-cert none`) with the user name (the
 * device uuid) as common name, `compress lzo` framing for the clients' `comp-lzo` (OpenVPN 2.6 decompresses but
 * does not compress, its default `allow-compression asym`), pings pushed (10 s, exit after 60 s), no
 * renegotiation.
 */
export interface InstanceFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** Unix socket fleetgate listens on; the instance connects to it. */
  managementSocket: string;
  /** Where the instance writes its status every 10 s (read by `fleetgate doctor` and people; not by fleetgate). */
  statusFile: string;
}

export function openvpnServerArgs(plan: VpnInstancePlan, files: InstanceFiles, device: string): string[] {
  return [
    '--mode',
    'server',
    '--tls-server',
    '--proto',
    'tcp4-server',
    '--local',
    '127.0.0.1',
    '--port',
    String(plan.port),
    '--dev',
    device,
    '--dev-type',
    'tun',
    '--topology',
    'p2p',
    '--ifconfig',
    plan.gateway,
    plan.peer,
    '--ifconfig-pool',
    plan.poolStart,
    plan.poolEnd,
    '--route',
    plan.network,
    plan.netmask,
    '--push',
    `route ${plan.gateway}`,
    '--max-clients',
    String(plan.maxClients),
    '--ca',
    files.caFile,
    '--cert',
    files.certFile,
    '--key',
    files.keyFile,
    '--dh',
    'none',
    '--verify-client-cert',
    'none',
    '--username-as-common-name',
    '--management',
    files.managementSocket,
    'unix',
    '--management-client',
    '--management-client-auth',
    '--tls-version-min',
    '1.2',
    '--data-ciphers',
    'AES-128-GCM:AES-256-GCM:CHACHA20-POLY1305:AES-128-CBC:AES-256-CBC',
    '--compress',
    'lzo',
    '--ping',
    '10',
    '--ping-exit',
    '120',
    '--push',
    'ping 10',
    '--push',
    'ping-exit 60',
    '--reneg-sec',
    '0',
    '--hand-window',
    '600',
    '--tls-timeout',
    '20',
    '--tcp-nodelay',
    '--status',
    files.statusFile,
    '10',
    '--status-version',
    '2',
    '--verb',
    '3',
    '--mute',
    '10',
  ];
}
