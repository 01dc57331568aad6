/**
 * Three `fleetgate serve` processes on one PostgreSQL database behind Debian's haproxy (TCP mode, started here on
 * loopback), with real `fleetgate-agent` processes that know only the load balancer's address (issue 19): the
 * agents spread over the instances; `kill -9` of an instance that holds devices and relays a session brings its
 * devices back online through the other two within 30 s, marks its session ended, and never shows a connected
 * device offline or one device held twice. Needs PostgreSQL (several instances share one) and haproxy: on
 * SQLite the file is skipped with a line that says so; on CI a missing haproxy fails it.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentBin, callApi, eventually, freePort, Processes, type Running } from './processes.ts';

const ADMIN = { email: 'admin@cluster.test', password: 'cluster-test-password' };
const AGENTS = 4;

const hasHaproxy = (() => {
  try {
    execFileSync('haproxy', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const postgres = !!process.env.DATABASE_URL;
if (postgres && !hasHaproxy && process.env.CI)
  throw new Error('the cluster tests need haproxy (Debian package: haproxy)');
if (!postgres)
  console.warn(
    'SKIPPED: several instances share one PostgreSQL database: the cluster test runs with DATABASE_URL',
  );
else if (!hasHaproxy) console.warn('SKIPPED: the cluster test needs haproxy (Debian package: haproxy)');

interface Instance {
  port: number;
  proxyPort: number;
  internalPort: number;
  server: Running;
}

describe.runIf(postgres && hasHaproxy)('three instances behind haproxy, one killed', () => {
  let processes: Processes;
  const instances: Instance[] = [];
  let lbPort: number;
  let base: string;
  let token: string;
  let device: http.Server;
  let devicePort: number;
  const secret = randomBytes(32).toString('hex');
  const api = (method: string, url: string, body?: unknown) => callApi(base, token, method, url, body);
  const metric = async (instance: Instance, name: string) => {
    const text = await (await fetch(`http://127.0.0.1:${instance.port}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line ? Number(line.split(' ')[1]) : Number.NaN;
  };
  const startInstance = (instance: Omit<Instance, 'server'>) =>
    processes.serve(
      instance.port,
      ADMIN,
      {
        FLEETGATE_TUNNEL_PING_INTERVAL_MS: '2000',
        FLEETGATE_PRESENCE_FLUSH_MS: '200',
        FLEETGATE_INTERNAL_PORT: String(instance.internalPort),
        FLEETGATE_CLUSTER_SECRET: secret,
      },
      instance.proxyPort,
    );

  beforeAll(async () => {
    processes = new Processes();
    for (let i = 0; i < 3; i += 1) {
      const ports = { port: await freePort(), proxyPort: await freePort(), internalPort: await freePort() };
      const server = startInstance(ports);
      instances.push({ ...ports, server });
      // One after the other: the first creates the owner.
      await eventually(
        `instance ${i + 1} to answer`,
        async () => (await fetch(`http://127.0.0.1:${ports.port}/readyz`)).ok || undefined,
      ).catch((err) => {
        throw new Error(`${err.message}\n${server.output()}`);
      });
    }
    lbPort = await freePort();
    base = `http://127.0.0.1:${lbPort}`;
    const config = path.join(processes.dir, 'haproxy.cfg');
    fs.writeFileSync(
      config,
      [
        'defaults',
        '  mode tcp',
        '  timeout connect 2s',
        '  timeout client 1h',
        '  timeout server 1h',
        'frontend fleetgate',
        `  bind 127.0.0.1:${lbPort}`,
        '  default_backend instances',
        'backend instances',
        '  balance roundrobin',
        ...instances.map(
          (instance, i) => `  server i${i + 1} 127.0.0.1:${instance.port} check inter 500 fall 2 rise 2`,
        ),
        '',
      ].join('\n'),
    );
    const haproxy = spawn('haproxy', ['-db', '-f', config], { stdio: 'ignore' });
    processes.adopt(haproxy);
    await eventually('haproxy to listen', async () => (await fetch(`${base}/readyz`)).ok || undefined);
    ({ token } = await api('POST', '/api/v1/auth/login', ADMIN));

    device = http.createServer((request, response) =>
      response.end(`hello from the device: ${request.url}\n`),
    );
    await new Promise<void>((resolve) => device.listen(0, '127.0.0.1', resolve));
    devicePort = (device.address() as net.AddressInfo).port;
  }, 120_000);

  afterAll(async () => {
    device?.close();
    await processes?.cleanUp();
  });

  it('spreads agents over the instances, survives kill -9 of one and ends its sessions', async () => {
    const org = (await api('GET', '/api/v1/orgs')).items[0];
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: org.id,
      name: 'spread',
      defaultDeviceType: 'generic-amd64',
    });
    await api('PUT', `/api/v1/fleets/${fleet.id}/allowed-ports`, { ports: [devicePort] });
    const { key } = await api('POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, { name: 'spread' });
    for (let i = 0; i < AGENTS; i += 1) {
      const agentConfig = path.join(processes.dir, `agent-${i}.json`);
      fs.writeFileSync(
        agentConfig,
        JSON.stringify({
          server: base,
          dataDir: path.join(processes.dir, `agent-${i}`),
          deviceType: 'generic-amd64',
          name: `spread-${i}`,
          provisioningKey: key,
          allowedPorts: [devicePort],
          backoff: { base: 0.2, cap: 2 },
          logLevel: 'warn',
        }),
      );
      processes.start(agentBin, ['run', '--config', agentConfig]);
    }
    const online = async () => (await api('GET', `/api/v1/devices?fleetId=${fleet.id}&status=online`)).total;
    await eventually('every agent online', async () => (await online()) === AGENTS || undefined);
    const held = await Promise.all(instances.map((i) => metric(i, 'fleetgate_tunnels_connected')));
    expect(held.reduce((a, b) => a + b, 0)).toBe(AGENTS);
    // Round robin over three: no instance holds them all.
    expect(Math.max(...held)).toBeLessThan(AGENTS);

    // The instance holding the most devices is killed while it relays a session.
    const victim = instances[held.indexOf(Math.max(...held))]!;
    const uuid = (await api('GET', `/api/v1/devices?fleetId=${fleet.id}`)).items[0].uuid;
    const apiKey = (await api('POST', '/api/v1/api-keys', { name: 'cluster' })).key;
    const socket = net.connect({ port: victim.proxyPort, host: '127.0.0.1' });
    socket.on('error', () => {});
    await once(socket, 'connect');
    const auth = Buffer.from(`${ADMIN.email}:${apiKey}`).toString('base64');
    socket.write(
      `CONNECT ${uuid}.devices:${devicePort} HTTP/1.1\r\nProxy-Authorization: Basic ${auth}\r\n\r\n`,
    );
    const [head] = (await once(socket, 'data')) as [Buffer];
    expect(head.toString()).toMatch(/^HTTP\/1\.1 200/);
    const live = await eventually('the session to show live', async () => {
      const page = await api('GET', `/api/v1/sessions?device=${uuid}&live=true`);
      return page.items[0];
    });

    const killedAt = Date.now();
    victim.server.child.kill('SIGKILL');
    await once(victim.server.child, 'exit');
    const survivors = instances.filter((i) => i !== victim);
    // Every device online again, held by the two others, within 30 s.
    await eventually(
      'every device back online through the other instances',
      async () => {
        const counts = await Promise.all(survivors.map((i) => metric(i, 'fleetgate_tunnels_connected')));
        return counts.reduce((a, b) => a + b, 0) === AGENTS && (await online()) === AGENTS ? true : undefined;
      },
      30_000,
    );
    expect(Date.now() - killedAt).toBeLessThan(30_000);
    // The killed instance's session is ended once it is noticed dead.
    const ended = await eventually(
      'the killed instance’s session to be ended',
      async () => {
        const session = await api('GET', `/api/v1/sessions/${live.id}`);
        return session.live ? undefined : session;
      },
      30_000,
    );
    expect(ended.outcome).toMatch(/lost: the instance relaying it stopped/);
    // For a few seconds: every device online (none shown offline while connected), each held by one instance.
    for (let round = 0; round < 10; round += 1) {
      expect(await online()).toBe(AGENTS);
      const counts = await Promise.all(survivors.map((i) => metric(i, 'fleetgate_tunnels_connected')));
      expect(counts.reduce((a, b) => a + b, 0)).toBe(AGENTS);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    // A device's page through the load balancer, whichever instance answers and whichever holds it.
    const page = await (
      await fetch(`${base}/api/v1/devices/${uuid}`, { headers: { authorization: `Bearer ${token}` } })
    ).json();
    expect(page.status).toBe('online');
  }, 120_000);
});
