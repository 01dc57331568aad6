import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { dialectUnderTest } from '../harness.ts';
import { type ListeningServer, requestJson, startListeningServer } from '../listening.ts';
import {
  clientOptions,
  freePort,
  keygen,
  run,
  sshJump,
  startSshd,
  untilListening,
} from '../ssh/openssh-tools.ts';
import {
  canRunMenderConnect,
  createMenderDevice,
  type MenderConnectRun,
  type MenderDevice,
  runMender,
  startMenderConnect,
  whyMenderConnectCannotRun,
} from './mender-device.ts';

/**
 * A stock Mender device — the real Debian mender-client 3.4 and mender-connect 2.1, with the D-Bus system bus
 * mender-connect gets its JWT over (how they run: ./mender-device.ts) — enrolled with Mender's own management
 * calls, then reached like an agent device: `ssh user+device@gateway` runs a command in its shell, `fleetgate
 * tunnel` forwards a port to it, an administrator ends a session, decommission drops its link.
 */

const DEVAUTH = '/api/management/v2/devauth';
const cliBin = path.resolve(import.meta.dirname, '../../../cli/bin/fleetgate.js');

if (!canRunMenderConnect) console.warn(`SKIPPED mender-connect tests: ${whyMenderConnectCannotRun}`);

// CI (.ci/run sets CI=1) installs the packages and runs as root: there, a missing one is a failure.
describe.runIf(!canRunMenderConnect && process.env.CI)('mender-connect prerequisites', () => {
  it('are present on CI', () => {
    expect.fail(`the mender-connect tests cannot run: ${whyMenderConnectCannotRun}`);
  });
});

/** Waits until `read` answers something `ok` accepts, polling; answers the last value read. */
async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  let value = await read();
  while (!ok(value) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    value = await read();
  }
  return value;
}

describe.skipIf(!canRunMenderConnect)(`mender-connect 2.1 through fleetgate (${dialectUnderTest})`, () => {
  let server: ListeningServer;
  let work: string;
  let device: MenderDevice;
  let connect: MenderConnectRun;
  let uuid: string;
  let adminKey: string;
  let web: http.Server;
  let webPort: number;
  const children: ChildProcess[] = [];

  const api = (method: string, url: string, body?: unknown) =>
    requestJson(`${server.url}${url}`, {
      method,
      token: server.adminToken,
      ca: fs.readFileSync(server.caFile!),
      ...(body ? { body } : {}),
    });
  const ssh = (command: string[], extra: string[] = []) =>
    run('ssh', [
      ...clientOptions(adminKey),
      ...extra,
      '-p',
      String(server.server.sshPort),
      `admin+${uuid}@127.0.0.1`,
      ...command,
    ]);
  const deviceView = async () => (await api('GET', `/api/v1/devices/${uuid}`)).body;

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-mender-connect-'));
    server = await startListeningServer({ tls: true, flags: { presenceFlushMs: 200 } });
    const port = new URL(server.url).port;
    adminKey = await keygen(work, 'id_admin');
    const key = await api('POST', '/api/v1/ssh-keys', {
      publicKey: fs.readFileSync(`${adminKey}.pub`, 'utf8'),
    });
    expect(key.status, key.text).toBe(201);
    web = http.createServer((request, response) =>
      response.end(`hello from the mender device: ${request.url}\n`),
    );
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    webPort = (web.address() as net.AddressInfo).port;

    // The Mender flow, as Mender's docs run it: the device asks, an admin accepts its auth set, the device is in.
    device = createMenderDevice({
      dir: path.join(work, 'device'),
      identityLines: [
        `mac=02:mc:${randomBytes(2)
          .toString('hex')
          .replace(/(..)(..)/, '$1:$2')}:00:01`,
      ],
      serverUrl: `https://localhost:${port}`,
      caFile: server.caFile!,
      inventoryId: 1,
    });
    const first = await runMender(device, 'bootstrap');
    expect(first.code, first.output).not.toBe(0);
    const pending = await api('GET', `${DEVAUTH}/devices?status=pending`);
    expect(pending.status, pending.text).toBe(200);
    expect(pending.body).toHaveLength(1);
    const [{ id, auth_sets }] = pending.body;
    const accepted = await api('PUT', `${DEVAUTH}/devices/${id}/auth/${auth_sets[0].id}/status`, {
      status: 'accepted',
    });
    expect(accepted.status, accepted.text).toBe(204);
    const second = await runMender(device, 'bootstrap');
    expect(second.code, second.output).toBe(0);
    const acceptedDevice = await api('GET', `${DEVAUTH}/devices?status=accepted`);
    uuid = acceptedDevice.body[0].id;
    expect(uuid).toMatch(/^[0-9a-f]{32}$/);

    connect = startMenderConnect(device);
    const online = await eventually(deviceView, (d) => d.onlineVia?.includes('mender-connect'), 60_000);
    expect(online.onlineVia, connect.output()).toEqual(['mender-connect']);
    expect(online.status).toBe('online');
  }, 120_000);

  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await connect?.stop();
    web?.close();
    await server?.close();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  }, 30_000);

  it('runs `uname -a` on the device through ssh user+device@gateway, with its exit code', async () => {
    const uname = await ssh(['uname', '-a']);
    expect(uname.code, `${uname.stderr}\n${connect.output().slice(-2000)}`).toBe(0);
    const local = await run('uname', ['-a']);
    // The namespace shares the machine's kernel: the same line, and nothing else (no prompt, no echo).
    expect(uname.stdout).toBe(local.stdout);
    const failing = await ssh(['echo out; exit 3']);
    expect(failing).toMatchObject({ code: 3, stdout: 'out\n' });
    // The session is recorded as every other: surface ssh, the command, the end.
    const sessions = await api('GET', `/api/v1/sessions?device=${uuid}&surface=ssh&limit=10`);
    expect(sessions.body.items.map((s: { target: string }) => s.target)).toContain('uname -a');
  }, 60_000);

  it('gives a shell in a terminal (PTY and its size) to ssh -tt', async () => {
    const shell = await run(
      'ssh',
      [...clientOptions(adminKey), '-tt', '-p', String(server.server.sshPort), `admin+${uuid}@127.0.0.1`],
      { input: 'stty size; tty; exit\n' },
    );
    expect(shell.stdout).toMatch(/\/dev\/pts\/\d+/);
    expect(shell.stdout).toMatch(/\d+ \d+/);
  }, 60_000);

  /** `fleetgate tunnel <uuid> 0:<port>` as its own process; answers the local port it forwards from. */
  const startTunnel = async (port: number): Promise<string> => {
    const tunnel = spawn(
      process.execPath,
      [cliBin, 'tunnel', uuid, `0:${port}`, '--server', server.url, '--token', server.adminToken],
      {
        env: { PATH: process.env.PATH, HOME: work, NODE_EXTRA_CA_CERTS: server.caFile },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.push(tunnel);
    let output = '';
    const collect = (c: Buffer) => {
      output += c.toString();
    };
    tunnel.stdout.on('data', collect);
    tunnel.stderr.on('data', collect);
    const local = await eventually(
      async () => /forwarding 127\.0\.0\.1:(\d+)/.exec(output)?.[1],
      (found) => found !== undefined,
      60_000,
    );
    if (!local) throw new Error(`fleetgate tunnel did not start: ${output}`);
    return local;
  };

  it('forwards a port with fleetgate tunnel: pages from the device, and 400 KiB echoed intact', async () => {
    const echo = http.createServer((request, response) => request.pipe(response));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    const echoPort = (echo.address() as net.AddressInfo).port;
    try {
      const ports = await api('PUT', `/api/v1/devices/${uuid}/allowed-ports`, { ports: [webPort, echoPort] });
      expect(ports.status, ports.text).toBe(200);
      const local = await startTunnel(webPort);
      for (const page of ['/first', '/second']) {
        const answer = await requestJson(`http://127.0.0.1:${local}${page}`);
        expect(answer.text).toBe(`hello from the mender device: ${page}\n`);
      }
      // Many 8 KiB messages each way, each waiting for its acknowledgement.
      const big = randomBytes(200 * 1024).toString('hex');
      const echoLocal = await startTunnel(echoPort);
      const echoed = await run(
        'curl',
        [
          '--silent',
          '--show-error',
          '--max-time',
          '60',
          '--data-binary',
          '@-',
          `http://127.0.0.1:${echoLocal}/`,
        ],
        { input: big },
      );
      expect(echoed.code, echoed.stderr).toBe(0);
      expect(echoed.stdout.length).toBe(big.length);
      expect(echoed.stdout === big).toBe(true);
    } finally {
      echo.close();
    }
  }, 120_000);

  it("reaches the device's own sshd with ssh -J through the gateway, over port forwarding", async () => {
    const sshdPort = await freePort();
    fs.copyFileSync(`${adminKey}.pub`, path.join(work, 'authorized_keys'));
    const sshd = await startSshd(work, sshdPort, 'device_host_key', [
      `AuthorizedKeysFile ${path.join(work, 'authorized_keys')}`,
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'LogLevel ERROR',
    ]);
    children.push(sshd);
    await untilListening(sshdPort, 'the device sshd');
    await api('PUT', `/api/v1/devices/${uuid}/allowed-ports`, { ports: [sshdPort] });
    const answer = await sshJump(
      work,
      {
        key: adminKey,
        login: 'admin',
        gateway: `127.0.0.1:${server.server.sshPort}`,
        target: uuid,
        port: sshdPort,
      },
      ['echo', 'hello-from', '$((6*7))'],
    );
    expect(answer, answer.stderr).toMatchObject({ code: 0, stdout: 'hello-from 42\n' });
  }, 60_000);

  it('reaches a device web page through the CONNECT proxy (curl -x), over port forwarding', async () => {
    await api('PUT', `/api/v1/devices/${uuid}/allowed-ports`, { ports: [webPort] });
    const key = await api('POST', '/api/v1/api-keys', { name: 'proxy' });
    expect(key.status, key.text).toBe(201);
    const answer = await run('curl', [
      '--silent',
      '--show-error',
      '-x',
      `http://127.0.0.1:${server.server.proxyPort}`,
      '-U',
      `admin@example.test:${key.body.key}`,
      `http://${uuid}.devices:${webPort}/via-proxy`,
    ]);
    expect(answer.stderr).toBe('');
    expect(answer.stdout).toBe('hello from the mender device: /via-proxy\n');
  }, 60_000);

  it('opens the web terminal on the device: output, input, resize', async () => {
    const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/api/v1/devices/${uuid}/terminal`, {
      headers: { authorization: `Bearer ${server.adminToken}` },
      ca: fs.readFileSync(server.caFile!),
    });
    let output = '';
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) output += data.toString('utf8');
    });
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    try {
      ws.send(JSON.stringify({ type: 'resize', cols: 123, rows: 45 }));
      // The resize reaches the shell's terminal before the command that reads it (one ordered connection).
      ws.send(Buffer.from('stty size; echo marker-$((6*7))\n'));
      const seen = await eventually(
        async () => output,
        (text) => text.includes('marker-42'),
        15_000,
      );
      expect(seen).toMatch(/45 123/);
      ws.send(Buffer.from('exit\n'));
      expect(await closed).toBeGreaterThan(0);
    } finally {
      // A failure here must not leave the shell open: the device allows one per person, and the next tests'
      // shells would be refused as "too many open sessions".
      ws.close();
    }
  }, 60_000);

  it('copies a file both ways (file transfer over mender-connect) with equal SHA-256, and says why one is missing', async () => {
    const content = randomBytes(300 * 1024 + 123);
    const sha = createHash('sha256').update(content).digest('hex');
    const onDevice = path.join(work, 'uploaded.bin');
    const url = (file: string) =>
      `${server.url}/api/v1/devices/${uuid}/files?path=${encodeURIComponent(file)}`;
    const curlAs = (args: string[], input?: Buffer) =>
      new Promise<{ code: number | null; stdout: Buffer; stderr: string }>((resolve) => {
        const child = spawn('curl', [
          '--silent',
          '--show-error',
          '--cacert',
          server.caFile!,
          '-H',
          `Authorization: Bearer ${server.adminToken}`,
          ...args,
        ]);
        const out: Buffer[] = [];
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => out.push(c));
        child.stderr.on('data', (c: Buffer) => {
          stderr += c.toString();
        });
        child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
        child.stdin.end(input);
      });
    const up = await curlAs(
      ['-X', 'PUT', '--data-binary', '@-', '-H', `X-Content-SHA256: ${sha}`, url(onDevice)],
      content,
    );
    expect(up.code, up.stderr).toBe(0);
    expect(JSON.parse(up.stdout.toString())).toMatchObject({ size: content.length, sha256: sha });
    // The device's disk (its mount namespace shares this directory) holds exactly those bytes.
    expect(createHash('sha256').update(fs.readFileSync(onDevice)).digest('hex')).toBe(sha);

    const down = await curlAs(['--dump-header', path.join(work, 'headers.txt'), url(onDevice)]);
    expect(down.code, down.stderr).toBe(0);
    expect(createHash('sha256').update(down.stdout).digest('hex')).toBe(sha);
    expect(fs.readFileSync(path.join(work, 'headers.txt'), 'utf8')).toMatch(
      new RegExp(`x-content-sha256: ${sha}`, 'i'),
    );

    const missing = await curlAs(['--write-out', '%{http_code}', url(path.join(work, 'no-such-file'))]);
    expect(missing.stdout.toString()).toMatch(/404$/);
  }, 120_000);

  it('opens a terminal with mender-cli (Mender deviceconnect management API), through the router', async () => {
    const cli = (args: string[], input?: string) =>
      run(
        'mender-cli',
        [
          '--server',
          server.url.replace('127.0.0.1', 'localhost'),
          '--skip-verify',
          '--token-value',
          server.adminToken,
          ...args,
        ],
        { ...(input === undefined ? {} : { input }), timeoutMs: 30_000 },
      );
    const terminal = await cli(['terminal', uuid], 'echo from-mender-cli-$((6*7))\nexit\n');
    expect(terminal.stdout, terminal.stderr).toMatch(/from-mender-cli-42/);
    const sessions = await api('GET', `/api/v1/sessions?device=${uuid}&surface=mender-cli&limit=5`);
    expect(sessions.body.items).toHaveLength(1);
    // A device nobody may see is not found, before any WebSocket.
    const unknown = await cli(['terminal', '0'.repeat(32)]);
    expect(unknown.code).not.toBe(0);
  }, 60_000);

  it('ends a session on the device when an administrator terminates it', async () => {
    const marker = 4000 + Math.floor(Math.random() * 999);
    const held = run('ssh', [
      ...clientOptions(adminKey),
      '-p',
      String(server.server.sshPort),
      `admin+${uuid}@127.0.0.1`,
      `sleep ${marker}`,
    ]);
    const live = await eventually(
      async () =>
        (await api('GET', `/api/v1/sessions?device=${uuid}&surface=ssh&limit=20`)).body.items as {
          id: string;
          target: string;
          live: boolean;
        }[],
      (items) => items.some((s) => s.live && s.target === `sleep ${marker}`),
    );
    const session = live.find((s) => s.live && s.target === `sleep ${marker}`)!;
    expect(session).toBeDefined();
    expect((await run('pgrep', ['-f', `sleep ${marker}`])).code).toBe(0);
    const ended = await api('POST', `/api/v1/sessions/${session.id}/terminate`, {});
    expect(ended.status, ended.text).toBeLessThan(300);
    const result = await held;
    expect(result.code).not.toBe(0);
    // The shell on the device stopped with it (mender-connect's `stop`), the command with its terminal.
    const gone = await eventually(
      async () => (await run('pgrep', ['-f', `sleep ${marker}`])).code,
      (code) => code === 1,
      10_000,
    );
    expect(gone).toBe(1);
  }, 60_000);

  it('drops the deviceconnect link within a second of a decommission', async () => {
    const started = Date.now();
    const gone = await api('DELETE', `${DEVAUTH}/devices/${uuid}`);
    expect(gone.status).toBe(204);
    const history = await eventually(
      async () =>
        (await api('GET', `/api/v1/devices/${uuid}/connections?limit=5`)).body.items as {
          link: string;
          disconnectedAt: string | null;
          closeReason: string | null;
        }[],
      (items) =>
        items.some(
          (c) =>
            c.link === 'mender-connect' &&
            c.disconnectedAt !== null &&
            c.closeReason === 'the device was decommissioned',
        ),
      5_000,
    );
    const closed = history.find((c) => c.closeReason === 'the device was decommissioned');
    expect(closed).toBeDefined();
    expect(Date.parse(closed!.disconnectedAt!) - started).toBeLessThan(1000);
    const refused = await ssh(['true']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/decommissioned/);
  }, 30_000);
});
