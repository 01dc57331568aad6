/**
 * Several instances on one database (issue 19), with real listeners, the real agent library and real `curl`:
 * three instances of `fleetgate serve` on one PostgreSQL schema reach a device whose tunnel only the third one
 * holds (CONNECT proxy bytes equal, half-close across the internal link), carry decommissioning, revocations and
 * terminations from one instance to the one holding the tunnel or relaying the session within a second, list
 * every session everywhere, and refuse internal-link requests without the cluster secret. On SQLite: a second
 * instance on the same database file is refused with a message that says why.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Agent } from '@fleetgate/agent';
import { enrollAgent, removeTemporaryDirs, waitFor } from '@fleetgate/agent/test/helpers.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../src/index.ts';
import { dropPostgresSchema } from '../../src/infra/db/index.ts';
import { ADMIN_EMAIL, ADMIN_PASSWORD, dialectUnderTest } from '../harness.ts';
import { requestJson, startListeningServer } from '../listening.ts';
import {
  clientOptions,
  freePort,
  keygen,
  run,
  sshJump,
  startSshd,
  untilListening,
} from '../ssh/openssh-tools.ts';

const SECRET = randomBytes(32).toString('hex');

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'curl',
      ['-sS', '--max-time', '10', ...args],
      { maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** A CONNECT through `proxyPort` to `host:port` as `login:key`: the open socket, past the proxy's 200. */
async function connectThrough(
  proxyPort: number,
  login: string,
  key: string,
  target: string,
): Promise<net.Socket> {
  const socket = net.connect({ port: proxyPort, host: '127.0.0.1', allowHalfOpen: true });
  await once(socket, 'connect');
  const auth = Buffer.from(`${login}:${key}`).toString('base64');
  socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nProxy-Authorization: Basic ${auth}\r\n\r\n`);
  let head = Buffer.alloc(0);
  while (!head.includes('\r\n\r\n')) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    head = Buffer.concat([head, chunk]);
  }
  const text = head.toString('latin1');
  if (!text.startsWith('HTTP/1.1 200')) throw new Error(`CONNECT refused: ${text}`);
  const rest = head.subarray(head.indexOf('\r\n\r\n') + 4);
  if (rest.length) socket.unshift(rest);
  return socket;
}

/** Resolves when `socket` closes; answers how long that took from now, in milliseconds. */
async function closedWithin(socket: net.Socket, timeoutMs: number): Promise<number> {
  const started = Date.now();
  if (socket.destroyed) return 0;
  await Promise.race([
    // Not `once(socket, 'close')`: it rejects on the reset that ends the session, before the close.
    new Promise((resolve) => socket.once('close', resolve)),
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error(`still open after ${timeoutMs} ms`)), timeoutMs),
    ),
  ]);
  return Date.now() - started;
}

async function metric(url: string, name: string): Promise<number> {
  const answer = await requestJson(`${url}/metrics`);
  const line = answer.text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : Number.NaN;
}

// Several instances share one PostgreSQL database: on SQLite only the refusal of a second instance runs (below);
// the PostgreSQL pass of CI runs the rest.
if (dialectUnderTest !== 'postgres')
  console.warn('SKIPPED: the three-instance tests run on PostgreSQL only (DATABASE_URL)');

describe.runIf(dialectUnderTest === 'postgres')('three instances on one PostgreSQL database', () => {
  const schema = `fg_test_${randomBytes(6).toString('hex')}`;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-cluster-'));
  const instances: RunningServer[] = [];
  let a: RunningServer;
  let b: RunningServer;
  let c: RunningServer;
  let adminToken: string;
  let agent: Agent;
  let uuid: string;
  let device: http.Server;
  let devicePort: number;
  let echo: net.Server;
  let echoPort: number;
  let sshd: ChildProcess | undefined;
  let sshdPort: number;
  let adminKey: string;
  /** An operator of the default organization, with an API key for the proxy. */
  const operator = { email: 'cluster-operator@example.test', token: '', key: '', keyId: 0 };

  const api = async (
    server: RunningServer,
    method: string,
    url: string,
    body?: unknown,
    token = adminToken,
  ) => {
    const answer = await requestJson(`${server.url}${url}`, {
      method,
      token,
      ...(body === undefined ? {} : { body }),
    });
    if (answer.status >= 300) throw new Error(`${method} ${url}: ${answer.status} ${answer.text}`);
    return answer.body;
  };
  const start = () =>
    startServer({
      env: process.env,
      print: () => {},
      flags: {
        dataDir,
        adminEmail: ADMIN_EMAIL,
        adminPassword: ADMIN_PASSWORD,
        logLevel: process.env.FLEETGATE_TEST_LOG_LEVEL ?? 'silent',
        httpPort: 0,
        proxyPort: 0,
        sshPort: 0,
        listen: '127.0.0.1',
        dbSchema: schema,
        presenceFlushMs: 50,
        tunnelPingIntervalMs: 1000,
        tunnelPingTimeoutMs: 1000,
        internalPort: 0,
        clusterSecret: SECRET,
      },
    });

  beforeAll(async () => {
    // One after the other: the first creates the owner, the others find it.
    for (let i = 0; i < 3; i += 1) instances.push(await start());
    [a, b, c] = instances as [RunningServer, RunningServer, RunningServer];
    const login = await requestJson(`${a.url}/api/v1/auth/login`, {
      method: 'POST',
      body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
    });
    adminToken = login.body.token;

    device = http.createServer((request, response) => {
      const body: Buffer[] = [];
      request.on('data', (chunk: Buffer) => body.push(chunk));
      request.on('end', () => {
        const sum = createHash('sha256').update(Buffer.concat(body)).digest('hex');
        response.setHeader('content-type', 'text/plain');
        response.end(`device got ${request.method} ${request.url} sha256=${sum}\n`);
      });
    });
    device.listen(0, '127.0.0.1');
    await once(device, 'listening');
    devicePort = (device.address() as net.AddressInfo).port;
    // Echoes what it gets, and once the other side has finished sending, says so and finishes too.
    echo = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('data', (chunk) => socket.write(chunk));
      socket.on('end', () => socket.end('[your side ended]'));
      socket.on('error', () => {});
    });
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    echoPort = (echo.address() as net.AddressInfo).port;

    // The device's own sshd, trusting the administrator's key.
    adminKey = await keygen(dataDir, 'id_admin');
    fs.copyFileSync(`${adminKey}.pub`, path.join(dataDir, 'authorized_keys'));
    sshdPort = await freePort();
    sshd = await startSshd(dataDir, sshdPort, 'device_host_key', [
      `AuthorizedKeysFile ${path.join(dataDir, 'authorized_keys')}`,
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'LogLevel ERROR',
    ]);
    await untilListening(sshdPort, 'the device sshd');

    const fleet = await api(a, 'POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'cluster',
      defaultDeviceType: 'generic-amd64',
    });
    await api(a, 'PUT', `/api/v1/fleets/${fleet.id}/allowed-ports`, {
      ports: [devicePort, echoPort, sshdPort],
    });
    await api(b, 'POST', '/api/v1/ssh-keys', { publicKey: fs.readFileSync(`${adminKey}.pub`, 'utf8') });
    const { key } = await api(a, 'POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, { name: 'cluster' });
    // The device's agent knows only the third instance.
    ({ agent, uuid } = await enrollAgent(
      c.url,
      key,
      { agentVersion: '0.1.0-cluster-test', allowedPorts: [devicePort, echoPort, sshdPort] },
      async (id) => (await api(a, 'GET', `/api/v1/devices/${id}`)).status === 'online',
    ));
    const member = await api(a, 'POST', '/api/v1/orgs/1/members', {
      email: operator.email,
      role: 'operator',
    });
    const signedIn = await requestJson(`${b.url}/api/v1/auth/login`, {
      method: 'POST',
      body: { email: operator.email, password: member.password },
    });
    operator.token = signedIn.body.token;
    const apiKey = await api(b, 'POST', '/api/v1/api-keys', { name: 'cluster' }, operator.token);
    operator.key = apiKey.key;
    operator.keyId = apiKey.id;
  }, 90_000);

  afterAll(async () => {
    await agent?.stop();
    device?.close();
    echo?.close();
    sshd?.kill();
    for (const instance of instances.reverse()) await instance.close().catch(() => {});
    const url = process.env.DATABASE_URL;
    if (url) await dropPostgresSchema(url, schema);
    fs.rmSync(dataDir, { recursive: true, force: true });
    removeTemporaryDirs();
  });

  it('registers each instance with its internal link, and says which instance holds the device', async () => {
    const rows = await a.database.db.selectFrom('instances').selectAll().execute();
    expect(rows.map((r) => r.internal_url)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/)]),
    );
    expect(rows).toHaveLength(3);
    const ready = await Promise.all(
      instances.map(async (i) => (await requestJson(`${i.url}/readyz`)).body.instance),
    );
    expect(new Set(ready).size).toBe(3);
    const row = await a.database.db
      .selectFrom('devices')
      .select('tunnel_instance')
      .where('uuid', '=', uuid)
      .executeTakeFirstOrThrow();
    expect(row.tunnel_instance).toBe(ready[2]);
    expect(await metric(c.url, 'fleetgate_tunnels_connected')).toBe(1);
    expect(await metric(a.url, 'fleetgate_tunnels_connected')).toBe(0);
  });

  it('curl -x through the first instance reaches the device on the third: a 2 MiB upload arrives whole', async () => {
    const upload = path.join(dataDir, 'upload.bin');
    const bytes = randomBytes(2 * 1024 * 1024);
    fs.writeFileSync(upload, bytes);
    const answer = await curl([
      '-x',
      `http://127.0.0.1:${a.proxyPort}`,
      '-U',
      `${operator.email}:${operator.key}`,
      '--data-binary',
      `@${upload}`,
      `http://${uuid}.devices:${devicePort}/upload`,
    ]);
    expect(answer.stderr).toBe('');
    expect(answer.stdout).toBe(
      `device got POST /upload sha256=${createHash('sha256').update(bytes).digest('hex')}\n`,
    );
  });

  it('a half-close crosses the internal link: the device sees the end and can still answer', async () => {
    const socket = await connectThrough(
      b.proxyPort,
      operator.email,
      operator.key,
      `${uuid}.devices:${echoPort}`,
    );
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.write('ping across instances');
    socket.end();
    await once(socket, 'end');
    expect(Buffer.concat(received).toString()).toBe('ping across instances[your side ended]');
    socket.destroy();
  });

  it('ssh through the first instance: ssh -J to the device sshd, and a command the agent runs', async () => {
    const jumped = await sshJump(
      dataDir,
      { key: adminKey, login: 'admin', gateway: `127.0.0.1:${a.sshPort}`, target: uuid, port: sshdPort },
      ['echo', 'jumped', '$((6*7))'],
    );
    expect(jumped, jumped.stderr).toMatchObject({ code: 0, stdout: 'jumped 42\n' });
    const direct = await run('ssh', [
      ...clientOptions(adminKey),
      '-p',
      String(a.sshPort),
      `admin+${uuid}@127.0.0.1`,
      'echo out; echo err >&2; exit 3',
    ]);
    expect(direct).toMatchObject({ code: 3, stdout: 'out\n', stderr: 'err\n' });
  });

  it('lists the sessions relayed by any instance on every instance', async () => {
    // The four sessions above (curl -x, ssh -J and a command through the first instance, CONNECT through the
    // second); their ends are recorded as they close.
    let last: number[] = [];
    const views = await waitFor(
      async () => {
        const totals = await Promise.all(
          instances.map(
            async (i) => (await api(i, 'GET', `/api/v1/sessions?device=${uuid}&live=false`)).total,
          ),
        );
        last = totals;
        return totals.every((total) => total === 4) ? totals : undefined;
      },
      3000,
      'the ended sessions on every instance',
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${last.join(', ')}`);
    });
    expect(views).toEqual([4, 4, 4]);
    // Each says which instance relayed it: the first for curl -x, ssh -J and the command, the second for CONNECT.
    const [idA, idB] = await Promise.all(
      [a, b].map(async (i) => (await requestJson(`${i.url}/readyz`)).body.instance as string),
    );
    const page = await api(c, 'GET', `/api/v1/sessions?device=${uuid}&live=false`);
    const relayedBy = page.items.map((session: { instance: string }) => session.instance).sort();
    expect(relayedBy).toEqual([idA, idA, idA, idB].sort());
  });

  it('an administrator on the second instance ends a session the first relays, within a second', async () => {
    const socket = await connectThrough(
      a.proxyPort,
      operator.email,
      operator.key,
      `${uuid}.devices:${echoPort}`,
    );
    socket.on('error', () => {});
    const live = await waitFor(async () => {
      const page = await api(b, 'GET', `/api/v1/sessions?device=${uuid}&live=true`);
      return page.items[0];
    });
    const ended = closedWithin(socket, 1500);
    const view = await api(b, 'POST', `/api/v1/sessions/${live.id}/terminate`);
    expect(await ended).toBeLessThan(1500);
    expect(view.outcome).toMatch(/terminated by/);
  });

  it("revoking a person's key on the second instance ends their session relayed by the first, within a second", async () => {
    const socket = await connectThrough(
      a.proxyPort,
      operator.email,
      operator.key,
      `${uuid}.devices:${echoPort}`,
    );
    socket.on('error', () => {});
    socket.write('still here');
    await once(socket, 'data');
    const ended = closedWithin(socket, 1500);
    await api(b, 'DELETE', `/api/v1/api-keys/${operator.keyId}`, undefined, operator.token);
    expect(await ended).toBeLessThan(1500);
  });

  it('counts failed sign-ins on every instance together: spread over three, the limit is still the limit', async () => {
    const email = 'nobody-guessing@example.test';
    // FLEETGATE_LOGIN_ATTEMPTS is 10: ten wrong passwords, spread over the three instances.
    for (let attempt = 0; attempt < 10; attempt += 1) {
      const instance = instances[attempt % 3]!;
      const answer = await requestJson(`${instance.url}/api/v1/auth/login`, {
        method: 'POST',
        body: { email, password: `wrong-${attempt}` },
      });
      expect(answer.status).toBe(401);
    }
    // Each instance saw at most four of them; every one refuses the next.
    for (const instance of instances) {
      const answer = await waitFor(
        async () => {
          const next = await requestJson(`${instance.url}/api/v1/auth/login`, {
            method: 'POST',
            body: { email, password: 'wrong-again' },
          });
          return next.status === 429 ? next : undefined;
        },
        2000,
        'a 429',
      );
      expect(answer?.body.error.message).toMatch(
        /too many failed sign-ins from your address: try again in \d+ s/,
      );
    }
  });

  it('refuses an internal-link request without the cluster secret, and one signed with another secret', async () => {
    const row = await a.database.db.selectFrom('instances').select('internal_url').executeTakeFirstOrThrow();
    const { hostname, port } = new URL(row.internal_url!);
    const exchange = async (text: string) => {
      const socket = net.connect({ host: hostname, port: Number(port) });
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', () => {});
      await once(socket, 'connect');
      socket.write(text);
      await once(socket, 'close');
      return Buffer.concat(chunks).toString();
    };
    expect(await exchange('GET / HTTP/1.1\r\nHost: x\r\n\r\n')).toMatch(/"ok":false,"code":"unauthorized"/);
    const body = JSON.stringify({ from: 'x', to: 'y', at: Date.now(), nonce: '0'.repeat(32) });
    const forged = JSON.stringify({ body, sig: createHash('sha256').update(body).digest('hex') });
    expect(await exchange(`${forged}\n`)).toMatch(/"code":"unauthorized"/);
  });

  it('decommissioning on the first instance closes the tunnel held by the third within a second', async () => {
    expect(await metric(c.url, 'fleetgate_tunnels_connected')).toBe(1);
    await api(a, 'POST', `/api/v1/devices/${uuid}/decommission`);
    const started = Date.now();
    await waitFor(
      async () => (await metric(c.url, 'fleetgate_tunnels_connected')) === 0,
      2000,
      'the tunnel to close',
    );
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe.runIf(dialectUnderTest === 'sqlite')('one instance per SQLite database', () => {
  it('refuses a second instance on the same database file, saying why and what to do', async () => {
    const first = await startListeningServer();
    try {
      // Another process's instance row, as a second `fleetgate serve` on the same file would find it.
      await first.database.db.updateTable('instances').set({ pid: process.ppid }).execute();
      await expect(
        startServer({
          env: {},
          print: () => {},
          flags: { dataDir: first.dataDir, httpPort: 0, proxyPort: 0, sshPort: 0, logLevel: 'silent' },
        }),
      ).rejects.toThrow(
        /another fleetgate \(process \d+ on .+\) is running on this SQLite database: SQLite serves one instance/,
      );
    } finally {
      await first.close();
    }
  });
});
