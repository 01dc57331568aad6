/**
 * The OpenVPN client configuration a stock balenaOS device is served (`GET /os/v1/config`, `services.openvpn.config`),
 * line for line what open-balena-api serves (src/lib/config.ts) but for `remote`: os-config writes it to
 * `/etc/openvpn/openvpn.conf` and the CA beside it, and balenaOS's own scripts fill `/var/volatile/vpn-auth` with
 * the device's uuid and key. Nothing on the device changes: the paths, the `up`/`down` scripts that mark the VPN
 * up for the OS update rollback check, `comp-lzo` framing (the server speaks it: see server-config.ts) and the
 * retry behaviour are balenaOS's.
 */
export function openvpnClientConfig(remote: { host: string; port: number }): string {
  return `${[
    'client',
    `remote ${remote.host} ${remote.port}`,
    'resolv-retry infinite',
    'remote-cert-tls server',
    'tls-version-min 1.2',
    'ca /etc/openvpn/ca.crt',
    'auth-user-pass /var/volatile/vpn-auth',
    'auth-retry none',
    'script-security 2',
    'up /etc/openvpn-misc/upscript.sh',
    'up-restart',
    'down /etc/openvpn-misc/downscript.sh',
    'comp-lzo',
    'dev resin-vpn',
    'dev-type tun',
    'proto tcp',
    'nobind',
    'persist-key',
    'persist-tun',
    'verb 3',
    'user openvpn',
    'group openvpn',
    'reneg-bytes 0',
    'reneg-pkts 0',
    'reneg-sec 0',
  ].join('\n')}\n`;
}
