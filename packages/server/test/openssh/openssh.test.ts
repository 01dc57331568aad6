/**
 * The OpenSSH integration mode with a real `sshd`: its `AuthorizedKeysCommand` is `fleetgate
 * ssh-authorized-keys` (through a root-owned wrapper, as sshd requires), each key's forced command is `fleetgate
 * ssh-proxy <key id>`, and people run `ssh <account>@<bastion> '<device> <command>'`, `scp` and `sftp` with their
 * registered keys against a real server and a real agent (in-process, over real sockets). The bastion holds a
 * service credential made with `fleetgate api-keys create … --service openssh`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Agent } from '@fleetgate/agent';
import { enrollAgent, removeTemporaryDirs, waitFor } from '@fleetgate/agent/test/helpers.ts';
import ssh2, { type ClientChannel } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ListeningServer, requestJson, startListeningServer } from '../listening.ts';
import {
  api as callApi,
  clientOptions,
  freePort,
  keygen as keygenIn,
  run,
  startSshd,
  untilListening,
} from '../ssh/openssh-tools.ts';

const cli = fileURLToPath(new URL('../../../cli/bin/fleetgate.js', import.meta.url));

// Each ssh here starts fleetgate twice (sshd's AuthorizedKeysCommand, then the forced command), a few seconds
// each on a busy machine: the tests get minutes, not the default 30 s.
describe('OpenSSH integration mode with a real sshd', { timeout: 120_000 }, () => {
  let server: ListeningServer;
  let dir: string;
  let commandDir: string;
  let sshd: ChildProcess;
  let port: number;
  let uuid: string;
  let adminKey: string;
  let betaKey: string;
  let strangerKey: string;
  let betaToken: string;
  let tokenFile: string;
  let serviceKeyName: string;
  const agents: Agent[] = [];
  /** People connect to the bastion from here, a loopback address of its own, so their address is told apart. */
  const personAddress = '127.0.0.2';

  const api = (method: string, url: string, body?: unknown, token?: string) =>
    callApi(server, method, url, body, token);
  const keygen = (name: string) => keygenIn(dir, name);
  /** `ssh -p <port> root@127.0.0.1 '<remote>'`, as a person types it (root is the shared local account). */
  const ssh = (key: string, remote: string | undefined, options: { input?: string; extra?: string[] } = {}) =>
    run(
      'ssh',
      [
        ...clientOptions(key),
        ...(options.extra ?? []),
        '-b',
        personAddress,
        '-p',
        String(port),
        'root@127.0.0.1',
        ...(remote === undefined ? [] : [remote]),
      ],
      options.input === undefined ? {} : { input: options.input },
    );
  /** A WebSocket upgrade request that the server refuses: its HTTP status. */
  const upgrade = (url: string, headers: Record<string, string>) =>
    new Promise<{ status: number }>((resolve, reject) => {
      const request = http.get(`${server.url}${url}`, {
        headers: {
          connection: 'Upgrade',
          upgrade: 'websocket',
          'sec-websocket-version': '13',
          ...headers,
          'sec-websocket-key': randomBytes(16).toString('base64'),
        },
      });
      request.on('response', (response) => {
        response.resume();
        resolve({ status: response.statusCode ?? 0 });
      });
      request.on('upgrade', (_response, socket) => {
        socket.destroy();
        reject(new Error(`${url} was upgraded`));
      });
      request.on('error', reject);
    });
  const fleetgate = (args: string[], env: Record<string, string> = {}) =>
    run(process.execPath, [cli, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-openssh-'));
    server = await startListeningServer({ flags: { presenceFlushMs: 50 } });

    // The service credential, made by the server administrator with the CLI, in a root-only file.
    serviceKeyName = 'bastion-sshd';
    const made = await fleetgate(['api-keys', 'create', serviceKeyName, '--service', 'openssh', '--json'], {
      FLEETGATE_SERVER: server.url,
      FLEETGATE_TOKEN: server.adminToken,
    });
    if (made.code !== 0) throw new Error(`api-keys create --service openssh: ${made.stderr}`);
    const serviceKey = JSON.parse(made.stdout).key as string;
    tokenFile = path.join(dir, 'ssh-service-token');
    fs.writeFileSync(tokenFile, `${serviceKey}\n`, { mode: 0o600 });

    // People: the admin (owner of the default organization) and beta's owner (another organization), each with
    // a registered key; and a key nobody registered.
    adminKey = await keygen('id_admin');
    await api('POST', '/api/v1/ssh-keys', { publicKey: fs.readFileSync(`${adminKey}.pub`, 'utf8') });
    await api('POST', '/api/v1/users', { email: 'beta@example.test', password: 'beta owner password' });
    betaToken = (
      await requestJson(`${server.url}/api/v1/auth/login`, {
        method: 'POST',
        body: { email: 'beta@example.test', password: 'beta owner password' },
      })
    ).body.token as string;
    await api('POST', '/api/v1/orgs', { name: 'Beta' }, betaToken);
    betaKey = await keygen('id_beta');
    await api(
      'POST',
      '/api/v1/ssh-keys',
      { publicKey: fs.readFileSync(`${betaKey}.pub`, 'utf8') },
      betaToken,
    );
    strangerKey = await keygen('id_stranger');

    // The device: a real agent with its exec service, named kiosk-17.
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'openssh-fleet',
      defaultDeviceType: 'generic-amd64',
    });
    const { key } = await api('POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, { name: 'openssh' });
    const enrolled = await enrollAgent(
      server.url,
      key,
      { agentVersion: '0.1.0-openssh' },
      async (id) => (await api('GET', `/api/v1/devices/${id}`)).status === 'online',
    );
    agents.push(enrolled.agent);
    uuid = enrolled.uuid;
    await api('PATCH', `/api/v1/devices/${uuid}`, { name: 'kiosk-17' });

    // The bastion's sshd. sshd runs the AuthorizedKeysCommand only when it and every directory above it are
    // root-owned and not group/world-writable, so the wrapper lives in a fresh 0755 directory under /run (not
    // under /tmp, which is world-writable). One shared account (root here) for everyone: keys by fingerprint.
    commandDir = fs.mkdtempSync('/run/fleetgate-openssh-');
    fs.chmodSync(commandDir, 0o755);
    const wrapper = path.join(commandDir, 'fleetgate-authorized-keys');
    fs.writeFileSync(
      wrapper,
      [
        '#!/bin/sh',
        `export PATH=${JSON.stringify(process.env.PATH ?? '/usr/bin:/bin')} HOME=/root`,
        `exec ${process.execPath} ${cli} --server ${server.url} ssh-authorized-keys --token-file ${tokenFile} --fingerprint "$1"`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    port = await freePort();
    sshd = await startSshd(dir, port, 'bastion_host_key', [
      'AuthorizedKeysFile none',
      `AuthorizedKeysCommand ${wrapper} %f`,
      'AuthorizedKeysCommandUser root',
      'UsePAM no',
      'PermitRootLogin yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      // scp and sftp name the device in this variable (ssh -o SetEnv=FLEETGATE_DEVICE=…).
      'AcceptEnv FLEETGATE_DEVICE',
      // Under the forced command, sshd hands this command line to ssh-proxy as SSH_ORIGINAL_COMMAND.
      'Subsystem sftp /usr/lib/openssh/sftp-server -l INFO',
      'LogLevel ERROR',
    ]);
    await untilListening(port, 'the bastion sshd');
  }, 60_000);

  afterAll(async () => {
    sshd?.kill();
    await Promise.all(agents.map((a) => a.stop()));
    await server?.close();
    removeTemporaryDirs();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    if (commandDir) fs.rmSync(commandDir, { recursive: true, force: true });
  });

  it('prints forced-command lines for a login, and nothing for an unknown one', async () => {
    const env = { FLEETGATE_SERVER: server.url, FLEETGATE_TOKEN_FILE: tokenFile };
    const keys = await fleetgate(
      ['ssh-authorized-keys', 'admin@example.test', '--proxy-command', '/usr/local/bin/fleetgate'],
      env,
    );
    expect(keys.stderr).toBe('');
    expect(keys.code).toBe(0);
    const [id] = (await api('GET', '/api/v1/ssh-keys')).items.map((k: { id: number }) => k.id);
    const publicKey = fs.readFileSync(`${adminKey}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
    expect(keys.stdout).toBe(
      `restrict,pty,command="/usr/local/bin/fleetgate --server ${server.url} ssh-proxy --token-file ${tokenFile} ${id}" ${publicKey}\n`,
    );
    const unknown = await fleetgate(['ssh-authorized-keys', 'nobody'], env);
    expect(unknown).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('lists keys for the service credential only', async () => {
    const asBeta = await requestJson(`${server.url}/api/v1/ssh/authorized-keys?login=admin`, {
      token: betaToken,
    });
    expect(asBeta.status).toBe(403);
    const refused = await fleetgate(['ssh-authorized-keys', 'admin'], {
      FLEETGATE_SERVER: server.url,
      FLEETGATE_TOKEN: betaToken,
    });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain('service credential');
  });

  it('runs "<device> <command>" with stdout, stderr, stdin and the exit status', async () => {
    const hi = await ssh(adminKey, 'kiosk-17 echo hi; exit 3');
    expect(hi).toEqual({ code: 3, stdout: 'hi\n', stderr: '' });
    const apart = await ssh(adminKey, `${uuid.slice(0, 8)} echo out; echo err >&2`);
    expect(apart).toEqual({ code: 0, stdout: 'out\n', stderr: 'err\n' });
    const piped = await ssh(adminKey, `${uuid} wc -c`, { input: 'x'.repeat(100_000) });
    expect(piped.stdout.trim()).toBe('100000');
    expect(piped.code).toBe(0);
  });

  it('gives a shell a terminal whose size follows window changes', async () => {
    const client = new ssh2.Client();
    await new Promise<void>((resolve, reject) => {
      client.on('ready', () => resolve());
      client.on('error', reject);
      client.connect({
        host: '127.0.0.1',
        port,
        username: 'root',
        privateKey: fs.readFileSync(adminKey),
        // From the person's address, like every client here.
        sock: net.connect({ host: '127.0.0.1', port, localAddress: personAddress }),
      });
    });
    try {
      // ssh2's exec with a pty (`ssh -t host 'kiosk-17'`); src/features/ssh-gateway/ssh2.d.ts declares only
      // the form without options.
      const withPty = client as unknown as {
        exec(
          command: string,
          options: { pty: { term: string; cols: number; rows: number } },
          callback: (error: Error | undefined, channel: ClientChannel) => void,
        ): void;
      };
      const channel = await new Promise<ClientChannel>((resolve, reject) =>
        withPty.exec('kiosk-17', { pty: { term: 'xterm', cols: 91, rows: 20 } }, (error, stream) =>
          error ? reject(error) : resolve(stream),
        ),
      );
      let output = '';
      channel.on('data', (data: Buffer) => {
        output += data.toString();
      });
      channel.write('echo "tty=$(tty) cols=$(tput cols)"\n');
      await waitFor(() => /tty=\/dev\/pts\/\d+ cols=91/.test(output), 15_000, 'the first size');
      channel.setWindow(33, 132, 0, 0);
      // The new size travels apart from the keystrokes (sshd signals ssh-proxy, which tells the device), so a
      // command typed right after may still see the old size: ask again until the new one shows.
      const ask = () => channel.write('echo "cols=$(tput cols) lines=$(tput lines)"\n');
      ask();
      const asking = setInterval(ask, 500);
      try {
        await waitFor(() => output.includes('cols=132 lines=33'), 10_000, 'the new size');
      } finally {
        clearInterval(asking);
      }
      const closed = new Promise<number>((resolve) => channel.on('exit', (code: number) => resolve(code)));
      channel.write('exit 4\n');
      expect(await closed).toBe(4);
    } finally {
      client.end();
    }
  });

  it("records the session as the key owner, from the person's address, through the service", async () => {
    const sessions = await api('GET', '/api/v1/sessions?surface=openssh');
    expect(sessions.items.length).toBeGreaterThan(0);
    expect(sessions.items[0].user.label).toBe('admin@example.test');
    expect(sessions.items[0].device.uuid).toBe(uuid);
    // The person came from 127.0.0.2 (sshd's SSH_CONNECTION); the bastion reached the server from 127.0.0.1.
    expect(sessions.items.map((item: { clientAddress: string }) => item.clientAddress)).toEqual(
      sessions.items.map(() => personAddress),
    );
    const audit = await api('GET', '/api/v1/audit?action=device.stream.open&limit=200');
    const opened = audit.items.find(
      (e: { details?: { surface?: string } }) => e.details?.surface === 'openssh',
    );
    expect(opened?.details?.via).toMatchObject({ service: 'openssh', name: serviceKeyName });
    expect(opened?.details?.via?.bastion).toMatch(/127\.0\.0\.1$/);
    expect(opened?.actor?.label).toBe('admin@example.test');
    expect(opened?.sourceIp).toBe(personAddress);
  });

  it('copies a file up and down with scp (SFTP and legacy) and lists a directory with sftp', async () => {
    const onDevice = fs.mkdtempSync(path.join(dir, 'device-'));
    const original = path.join(dir, 'firmware.bin');
    fs.writeFileSync(original, randomBytes(3 * 1024 * 1024 + 17));
    const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
    const transfer = (program: 'scp' | 'sftp', args: string[], input?: string) =>
      run(
        program,
        [
          ...clientOptions(adminKey),
          '-o',
          'SetEnv=FLEETGATE_DEVICE=kiosk-17',
          '-o',
          `BindAddress=${personAddress}`,
          '-P',
          String(port),
          ...args,
        ],
        input === undefined ? {} : { input },
      );
    const remote = (file: string) => `root@127.0.0.1:${path.join(onDevice, file)}`;

    // OpenSSH 9's scp speaks SFTP: sshd runs the forced command for the sftp subsystem.
    const up = await transfer('scp', [original, remote('up.bin')]);
    expect(up, up.stderr).toMatchObject({ code: 0 });
    expect(sha256(path.join(onDevice, 'up.bin'))).toBe(sha256(original));
    const down = await transfer('scp', [remote('up.bin'), path.join(dir, 'down.bin')]);
    expect(down, down.stderr).toMatchObject({ code: 0 });
    expect(sha256(path.join(dir, 'down.bin'))).toBe(sha256(original));

    // scp -O: the legacy protocol, `scp -t`/`scp -f` run on the device.
    const legacyUp = await transfer('scp', ['-O', original, remote('legacy.bin')]);
    expect(legacyUp, legacyUp.stderr).toMatchObject({ code: 0 });
    expect(sha256(path.join(onDevice, 'legacy.bin'))).toBe(sha256(original));
    const legacyDown = await transfer('scp', ['-O', remote('legacy.bin'), path.join(dir, 'legacy-down.bin')]);
    expect(legacyDown, legacyDown.stderr).toMatchObject({ code: 0 });
    expect(sha256(path.join(dir, 'legacy-down.bin'))).toBe(sha256(original));

    const listing = await transfer('sftp', ['-b', '-', 'root@127.0.0.1'], `ls -1 ${onDevice}\n`);
    expect(listing, listing.stderr).toMatchObject({ code: 0 });
    expect(listing.stdout).toContain(path.join(onDevice, 'legacy.bin'));
    expect(listing.stdout).toContain(path.join(onDevice, 'up.bin'));

    const sessions = await api('GET', '/api/v1/sessions?surface=openssh&limit=100');
    expect(sessions.items.some((item: { target: string }) => /sftp/.test(item.target))).toBe(true);
  });

  it('refuses scp without a device, saying how to name it where sshd lets it say anything', async () => {
    const file = path.join(dir, 'small.txt');
    fs.writeFileSync(file, 'hello\n');
    const scp = (extra: string[]) =>
      run('scp', [
        ...clientOptions(adminKey),
        ...extra,
        '-P',
        String(port),
        file,
        `root@127.0.0.1:${path.join(dir, 'nowhere.txt')}`,
      ]);
    // sshd drops a subsystem's stderr, so SFTP-based scp only sees the connection close.
    const overSftp = await scp([]);
    expect(overSftp.code).not.toBe(0);
    const legacy = await scp(['-O']);
    expect(legacy.code).not.toBe(0);
    expect(legacy.stderr).toContain('SetEnv=FLEETGATE_DEVICE=<device>');
    expect(fs.existsSync(path.join(dir, 'nowhere.txt'))).toBe(false);
  });

  it("refuses another organization's user, a missing device name and an unregistered key", async () => {
    const beta = await ssh(betaKey, 'kiosk-17 echo hi');
    expect(beta.code).toBe(255);
    expect(beta.stdout).toBe('');
    expect(beta.stderr).toContain('fleetgate: no device "kiosk-17" among your devices');
    const nothing = await ssh(adminKey, undefined, { extra: ['-T'] });
    expect(nothing.code).toBe(255);
    expect(nothing.stderr).toContain('name a device');
    const stranger = await ssh(strangerKey, 'kiosk-17 echo hi');
    expect(stranger.code).toBe(255);
    expect(stranger.stdout).toBe('');
    expect(stranger.stderr).toContain('Permission denied');
  });

  it("acts on behalf of a key for the service credential only, and takes only its word for the person's address", async () => {
    const [id] = (await api('GET', '/api/v1/ssh-keys')).items.map((k: { id: number }) => k.id);
    const before = (await api('GET', '/api/v1/sessions?surface=openssh&limit=200')).total;
    // A person's token, and even a server administrator's own API key, may not act for a key's owner (nor say
    // where the person is).
    const adminApiKey = (await api('POST', '/api/v1/api-keys', { name: 'not a service key' })).key as string;
    for (const token of [betaToken, adminApiKey]) {
      const refused = await fleetgate(['ssh-proxy', String(id)], {
        FLEETGATE_SERVER: server.url,
        FLEETGATE_TOKEN: token,
        SSH_ORIGINAL_COMMAND: 'kiosk-17 echo hi',
        SSH_CONNECTION: '203.0.113.9 40000 127.0.0.1 22',
      });
      expect(refused.code).toBe(255);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toContain('service credential');
    }
    const spoofed = await upgrade('/api/v1/ssh/proxy?device=kiosk-17', {
      authorization: `Bearer ${adminApiKey}`,
      'x-fleetgate-ssh-key-id': String(id),
      'x-fleetgate-client-address': '203.0.113.9',
    });
    expect(spoofed.status).toBe(403);
    const malformed = await upgrade('/api/v1/ssh/proxy?device=kiosk-17', {
      authorization: `Bearer ${fs.readFileSync(tokenFile, 'utf8').trim()}`,
      'x-fleetgate-ssh-key-id': String(id),
      'x-fleetgate-client-address': '203.0.113.9, 10.0.0.1',
    });
    expect(malformed.status).toBe(400);
    const after = await api('GET', '/api/v1/sessions?surface=openssh&limit=200');
    expect(after.total).toBe(before);
    expect(JSON.stringify(after)).not.toContain('203.0.113.9');
    const removedKey = await fleetgate(['ssh-proxy', '999999'], {
      FLEETGATE_SERVER: server.url,
      FLEETGATE_TOKEN_FILE: tokenFile,
      SSH_ORIGINAL_COMMAND: 'kiosk-17 echo hi',
    });
    expect(removedKey.code).toBe(255);
    expect(removedKey.stderr).toContain('no longer registered');
  });

  it("revoking the bastion's service key ends the sessions it opened, and the person's ssh says why", async () => {
    const serviceKey = (await api('GET', '/api/v1/api-keys')).items.find(
      (k: { name: string }) => k.name === serviceKeyName,
    );
    // A person's `cat` on the device, held open through the bastion.
    const held = spawn(
      'ssh',
      [...clientOptions(adminKey), '-b', personAddress, '-p', String(port), 'root@127.0.0.1', 'kiosk-17 cat'],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    held.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    held.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => held.once('exit', (code) => resolve(code)));
    try {
      held.stdin.write('held open\n');
      await waitFor(() => stdout.includes('held open\n'), 30_000, `the session to echo (${stderr})`);
      await api('DELETE', `/api/v1/api-keys/${serviceKey.id}`);
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([
        exited,
        new Promise((resolve) => {
          timer = setTimeout(() => resolve('still running after 15 s'), 15_000);
        }),
      ]).finally(() => clearTimeout(timer));
      expect(code).toBe(255);
      expect(stderr).toMatch(/access revoked: the service key it was opened through was revoked/);
    } finally {
      held.kill();
      // The bastion gets a new key for the tests after this one (sshd's commands read the file each time).
      const made = await api('POST', '/api/v1/api-keys', { name: serviceKeyName, service: 'openssh' });
      fs.writeFileSync(tokenFile, `${made.key}\n`, { mode: 0o600 });
    }
  });

  it('says so when the device is offline', async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await waitFor(
      async () => (await api('GET', `/api/v1/devices/${uuid}`)).status === 'offline',
      10_000,
      'the device to be offline',
    );
    const offline = await ssh(adminKey, 'kiosk-17 true');
    expect(offline.code).toBe(255);
    expect(offline.stderr).toContain('is offline');
  });
});
