/**
 * The OpenVPN test harness (netns.ts) proven against a real OpenVPN 2.6 server: real `openvpn` clients, each in
 * a network namespace of its own, run the exact configuration fleetgate serves balenaOS devices and connect to
 * a server in the root namespace that this file configures by hand (a fixture, not fleetgate's server); the
 * root namespace then reaches a web server and an sshd inside a client's namespace through its VPN address.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createCertificateAuthority,
  issueServerCertificate,
  type PemPair,
  subjectAltNamesFor,
} from '../../src/infra/tls/certificates.ts';
import { clientOptions, keygen, run } from '../ssh/openssh-tools.ts';
import {
  BRIDGE_ADDRESS,
  createNamespaces,
  destroyAll,
  freePortOn,
  type Namespace,
  type OpenvpnClient,
  serveHttp,
  spawnInRoot,
  startOpenvpnClient,
  startSshd,
  tunName,
  workerNetwork,
} from './netns.ts';
import { openvpnPrerequisites } from './prerequisites.ts';

const missing = openvpnPrerequisites('OpenVPN network namespace tests');

/** What fleetgate serves a balenaOS device (`GET /os/v1/config`'s OpenVPN part), as balenaOS's own file reads. */
const BALENA_CLIENT_CONFIG = `client
remote REMOTE_HOST REMOTE_PORT
resolv-retry infinite
remote-cert-tls server
tls-version-min 1.2
ca /etc/openvpn/ca.crt
auth-user-pass /var/volatile/vpn-auth
auth-retry none
script-security 2
up /etc/openvpn-misc/upscript.sh
up-restart
down /etc/openvpn-misc/downscript.sh
comp-lzo
dev resin-vpn
dev-type tun
proto tcp
nobind
persist-key
persist-tun
verb 3
user openvpn
group openvpn
reneg-bytes 0
reneg-pkts 0
reneg-sec 0
`;

/** The fixture server's password for a device: its uuid's, so each device has its own and no other is taken. */
const keyOf = (uuid: string) => `key-of-${uuid}`;
const HTTP_PORT = 8080;
const SSH_PORT = 2222;

describe.skipIf(missing)('OpenVPN clients in network namespaces', () => {
  let ca: PemPair;
  let server: { log(): string; stop(): Promise<void> };
  let config: string;
  let namespaces: Namespace[];
  let vpnPrefix: string;
  const clients: OpenvpnClient[] = [];
  const addresses: string[] = [];

  beforeAll(async () => {
    const network = await workerNetwork();
    const dir = fs.mkdtempSync(path.join(network.dir, 'server-'));
    ca = await createCertificateAuthority();
    const certificate = await issueServerCertificate(ca, subjectAltNamesFor([BRIDGE_ADDRESS]));
    fs.writeFileSync(path.join(dir, 'ca.crt'), ca.cert);
    fs.writeFileSync(path.join(dir, 'server.crt'), certificate.cert);
    fs.writeFileSync(path.join(dir, 'server.key'), certificate.key, { mode: 0o600 });
    const verify = path.join(dir, 'verify.sh');
    // OpenVPN's via-file: the file names the username on its first line and the password on its second.
    fs.writeFileSync(
      verify,
      '#!/bin/sh\n{ read -r user; read -r password; } < "$1"\n[ "$password" = "key-of-$user" ]\n',
      { mode: 0o755 },
    );
    // A port from the kernel's ephemeral range, never one of the product's (1194, 10000 + instance).
    const port = await freePortOn(BRIDGE_ADDRESS);
    vpnPrefix = network.vpnSubnet.split('.').slice(0, 2).join('.');
    const serverConfig = path.join(dir, 'server.conf');
    fs.writeFileSync(
      serverConfig,
      [
        'mode server',
        'tls-server',
        'proto tcp4-server',
        `local ${BRIDGE_ADDRESS}`,
        `port ${port}`,
        `dev ${tunName()}`,
        'dev-type tun',
        'topology p2p',
        `ifconfig ${vpnPrefix}.0.1 ${vpnPrefix}.0.2`,
        `ifconfig-pool ${vpnPrefix}.0.3 ${vpnPrefix}.0.254`,
        `route ${network.vpnSubnet} 255.255.0.0`,
        `ca ${path.join(dir, 'ca.crt')}`,
        `cert ${path.join(dir, 'server.crt')}`,
        `key ${path.join(dir, 'server.key')}`,
        // ECDHE only: no Diffie-Hellman parameters file.
        'dh none',
        'verify-client-cert none',
        'username-as-common-name',
        'script-security 2',
        `auth-user-pass-verify ${verify} via-file`,
        'compress lzo',
        'push "ping 10"',
        'push "ping-exit 60"',
        'ping 10',
        'ping-restart 60',
        'verb 3',
        '',
      ].join('\n'),
    );
    const child = spawnInRoot('openvpn', ['--config', serverConfig], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout?.on('data', (chunk: Buffer) => (log += chunk));
    child.stderr?.on('data', (chunk: Buffer) => (log += chunk));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    server = {
      log: () => log,
      stop: async () => {
        child.kill('SIGTERM');
        await exited;
      },
    };
    await until(
      () => log.includes('Initialization Sequence Completed'),
      10_000,
      () => `the server:\n${log}`,
    );
    config = BALENA_CLIENT_CONFIG.replace('REMOTE_HOST', BRIDGE_ADDRESS).replace('REMOTE_PORT', String(port));
    namespaces = await createNamespaces(3, 'nt');
  });

  afterAll(async () => {
    await destroyAll();
  });

  it('connect with the balenaOS configuration, each with a VPN address of its own', async () => {
    for (const [i, namespace] of namespaces.slice(0, 2).entries()) {
      const uuid = `device${i}`;
      clients.push(
        await startOpenvpnClient(namespace, { config, username: uuid, password: keyOf(uuid), ca: ca.cert }),
      );
    }
    addresses.push(...(await Promise.all(clients.map((client) => client.connected()))));
    expect(new Set(addresses).size).toBe(2);
    for (const address of addresses) expect(address.startsWith(`${vpnPrefix}.0.`)).toBe(true);
    // `remote-cert-tls server`: the certificate fleetgate issues for its servers passes OpenVPN's EKU check.
    expect(clients[0]?.log()).toContain('VERIFY EKU OK');
    expect(server.log()).toContain("Username/Password authentication succeeded for username 'device1'");
  });

  it("are reached from the root namespace through their VPN address: a web server and sshd in the client's namespace", async () => {
    await Promise.all(namespaces.slice(0, 2).map((namespace) => serveHttp(namespace, HTTP_PORT)));
    for (const [i, address] of addresses.entries()) {
      expect(await httpGet(`http://${address}:${HTTP_PORT}/`)).toBe(`hello from ${namespaces[i]?.name}`);
    }

    const [first] = namespaces as [Namespace];
    const dir = fs.mkdtempSync(path.join((await workerNetwork()).dir, 'ssh-'));
    const key = await keygen(dir, 'operator');
    await startSshd(first, SSH_PORT, `${key}.pub`);
    const session = await run('ssh', [
      ...clientOptions(key),
      '-p',
      String(SSH_PORT),
      `root@${addresses[0]}`,
      'ip netns identify',
    ]);
    expect(session.stderr).toBe('');
    expect(session.stdout.trim()).toBe(first.name);
  });

  it('connect again after a restart, as a rebooted device does', async () => {
    const [first] = clients as [OpenvpnClient];
    await first.restart();
    const address = await first.connected();
    expect(await httpGet(`http://${address}:${HTTP_PORT}/`)).toBe(`hello from ${namespaces[0]?.name}`);
    addresses[0] = address;
  });

  it('end with AUTH_FAILED on a wrong password, without connecting', async () => {
    const refused = await startOpenvpnClient(namespaces[2] as Namespace, {
      config,
      username: 'device2',
      password: 'not-its-key',
      ca: ca.cert,
    });
    const { log } = await refused.exited;
    expect(log).toContain('AUTH_FAILED');
    expect(log).not.toContain('Initialization Sequence Completed');
    await expect(refused.connected(1000)).rejects.toThrow(/ended before connecting/);
  });

  it('notice the server going away, and its VPN addresses stop answering', async () => {
    await server.stop();
    await Promise.all(clients.map((client) => client.disconnected()));
    for (const client of clients) expect(client.log()).toMatch(/Connection reset|SIGUSR1\[/);
    // Without the server's route, the address leads out of the machine (here, to whatever answers there): the
    // point is that the device's web server is no longer reached.
    const answer = await httpGet(`http://${addresses[1]}:${HTTP_PORT}/`).catch(
      (error: Error) => error.message,
    );
    expect(answer).not.toBe(`hello from ${namespaces[1]?.name}`);
  });
});

/** The body of a GET to `url`; rejects on a connection error, or after 5 s. */
function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { timeout: 5000, agent: false }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk));
      response.on('end', () => resolve(body));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`no answer from ${url} in 5 s`)));
    request.on('error', reject);
  });
}

async function until(check: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
