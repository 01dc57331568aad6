/**
 * Every part of the tunnel as its own process, as on real machines: `fleetgate serve`, a `fleetgate-agent`
 * that enrolls with a provisioning key, `fleetgate tunnel` on "the laptop", and `curl` through it to an HTTP
 * server on "the device". Then the server restarts (the agent and the CLI come back by themselves), and an
 * admin decommissions the device (the agent stops with exit code 3). SQLite, or PostgreSQL with DATABASE_URL.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentBin, callApi, cliBin, eventually, freePort, Processes } from './processes.ts';

const run = promisify(execFile);
const ADMIN = { email: 'admin@processes.test', password: 'processes-test-password' };

let processes: Processes;
let dir: string;
let port: number;
let base: string;
let session: string;
let device: http.Server;
let devicePort: number;

function startServer() {
  // Short liveness and presence rounds, so that status changes show within the test's patience.
  return processes.serve(port, ADMIN, {
    FLEETGATE_TUNNEL_PING_INTERVAL_MS: '2000',
    FLEETGATE_PRESENCE_FLUSH_MS: '200',
  });
}

const api = (method: string, url: string, body?: unknown) => callApi(base, session, method, url, body);

async function curl(url: string): Promise<string> {
  const { stdout } = await run('curl', ['--silent', '--show-error', '--fail', '--max-time', '10', url]);
  return stdout;
}

beforeAll(async () => {
  processes = new Processes();
  dir = processes.dir;
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  device = http.createServer((request, response) => response.end(`hello from the device: ${request.url}\n`));
  await new Promise<void>((resolve) => device.listen(0, '127.0.0.1', resolve));
  devicePort = (device.address() as net.AddressInfo).port;
});

afterAll(async () => {
  device?.close();
  await processes?.cleanUp();
});

describe('server, agent and CLI as separate processes', () => {
  it('curl reaches the device through fleetgate tunnel, across a server restart, until the device is decommissioned', async () => {
    let server = startServer();
    await eventually('the server to answer', async () => (await fetch(`${base}/readyz`)).ok || undefined);
    ({ token: session } = await api('POST', '/api/v1/auth/login', {
      email: ADMIN.email,
      password: ADMIN.password,
    }));
    const org = (await api('GET', '/api/v1/orgs')).items[0];
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: org.id,
      name: 'processes',
      defaultDeviceType: 'generic-amd64',
    });
    const { key } = await api('POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, { name: 'line 1' });

    const agentConfig = path.join(dir, 'agent.json');
    fs.writeFileSync(
      agentConfig,
      JSON.stringify({
        server: base,
        dataDir: path.join(dir, 'agent'),
        deviceType: 'generic-amd64',
        name: 'kiosk-1',
        provisioningKey: key,
        allowedPorts: [22, devicePort],
        backoff: { base: 0.2, cap: 2 },
        logLevel: 'info',
      }),
    );
    const agent = processes.start(agentBin, ['run', '--config', agentConfig]);
    const uuid: string = await eventually('the agent to enroll and come online', async () => {
      const page = await api('GET', `/api/v1/devices?fleet=${fleet.id}&status=online`);
      return page.items[0]?.uuid;
    });
    expect((await api('GET', `/api/v1/devices/${uuid}`)).name).toBe('kiosk-1');
    await api('PUT', `/api/v1/devices/${uuid}/allowed-ports`, { ports: [22, devicePort] });

    const tunnel = processes.start(cliBin, [
      'tunnel',
      'kiosk-1',
      `0:${devicePort}`,
      '--server',
      base,
      '--token',
      session,
    ]);
    const localPort = await eventually('fleetgate tunnel to listen', () => {
      const match = /forwarding 127\.0\.0\.1:(\d+)/.exec(tunnel.output());
      return match ? Number(match[1]) : undefined;
    });
    expect(await curl(`http://127.0.0.1:${localPort}/first`)).toBe('hello from the device: /first\n');

    // The server restarts: the agent reconnects with backoff, the CLI reconnects and keeps its local port.
    server.child.kill('SIGTERM');
    const [code] = await once(server.child, 'exit');
    expect(code).toBe(0);
    server = startServer();
    await eventually('the agent back online after the restart', async () => {
      const page = await api('GET', `/api/v1/devices?fleet=${fleet.id}&status=online`);
      return page.items.length === 1 || undefined;
    });
    const body = await eventually(
      'curl through the same local port after the restart',
      () => curl(`http://127.0.0.1:${localPort}/again`),
      20_000,
    );
    expect(body).toBe('hello from the device: /again\n');
    expect(agent.output()).toMatch(/the server is shutting down/);

    // Decommissioned: the tunnel closes at once and the agent stops for good with exit code 3.
    await api('POST', `/api/v1/devices/${uuid}/decommission`);
    const [agentCode] = await once(agent.child, 'exit');
    expect(agentCode).toBe(3);
    expect((await api('GET', `/api/v1/devices/${uuid}`)).status).toBe('decommissioned');
    // The tunnel says why a connection is refused now: decommissioned, not "offline".
    await expect(curl(`http://127.0.0.1:${localPort}/after`)).rejects.toThrow();
    await eventually('fleetgate tunnel to say why', () =>
      /was refused: device kiosk-1 \([0-9a-f]{32}\) is decommissioned: it takes no streams/.test(
        tunnel.output(),
      )
        ? true
        : undefined,
    );
    tunnel.child.kill('SIGTERM');
    // A new tunnel to it is told at once, not "until it is online".
    const late = processes.start(cliBin, [
      'tunnel',
      uuid,
      `0:${devicePort}`,
      '--server',
      base,
      '--token',
      session,
    ]);
    await eventually('the new tunnel to note the device is decommissioned', () =>
      /note: kiosk-1 is decommissioned: it takes no connections/.test(late.output()) ? true : undefined,
    );
    late.child.kill('SIGTERM');
    server.child.kill('SIGTERM');
    await once(server.child, 'exit');
  }, 120_000);
});
