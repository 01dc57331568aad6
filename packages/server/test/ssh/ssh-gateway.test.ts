/**
 * The SSH gateway with real OpenSSH clients: a real fleetgate server, a real agent (in-process, over real
 * sockets) in front of a real `sshd` started from a temporary config (the device's sshd), and `ssh`, `scp` and
 * `sftp` as people run them.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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
  type Run,
  run,
  sshJump,
  startSshd,
  untilListening,
} from './openssh-tools.ts';

describe('SSH gateway with OpenSSH clients', () => {
  let server: ListeningServer;
  let dir: string;
  let sshPort: number;
  let sshd: ChildProcess;
  let sshdPort: number;
  let agent: Agent;
  let uuid: string;
  let adminKey: string;
  let betaKey: string;
  const agents: Agent[] = [];

  const api = (method: string, url: string, body?: unknown, token?: string) =>
    callApi(server, method, url, body, token);
  const keygen = (name: string) => keygenIn(dir, name);
  /** `ssh -J <login>@gw root@<target>` to the device's sshd, as a person writes it. */
  const jump = (key: string, login: string, target: string, port: number, command: string[]) =>
    sshJump(dir, { key, login, gateway: `127.0.0.1:${sshPort}`, target, port }, command);
  const direct = (key: string, user: string, command: string[], extra: string[] = []) =>
    run('ssh', [...clientOptions(key), ...extra, '-p', String(sshPort), `${user}@127.0.0.1`, ...command]);

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-ssh-'));
    server = await startListeningServer({ flags: { presenceFlushMs: 50 } });
    sshPort = server.server.sshPort;

    // People: the admin (owner of the default organization) and beta's owner, each with a key.
    adminKey = await keygen('id_admin');
    await api('POST', '/api/v1/ssh-keys', { publicKey: fs.readFileSync(`${adminKey}.pub`, 'utf8') });
    await api('POST', '/api/v1/users', { email: 'beta@example.test', password: 'beta owner password' });
    const betaToken = (
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

    // The device's own sshd, on a free high port, trusting the admin's key.
    sshdPort = await freePort();
    fs.copyFileSync(`${adminKey}.pub`, path.join(dir, 'authorized_keys'));
    sshd = await startSshd(dir, sshdPort, 'device_host_key', [
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'Subsystem sftp /usr/lib/openssh/sftp-server',
      'LogLevel ERROR',
    ]);
    await untilListening(sshdPort, 'the device sshd');

    // The device: a real agent, enrolled with a provisioning key, allowed to reach its sshd.
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'ssh-fleet',
      defaultDeviceType: 'generic-amd64',
    });
    const { key } = await api('POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, { name: 'ssh' });
    ({ agent, uuid } = await enrollAgent(
      server.url,
      key,
      { agentVersion: '0.1.0-ssh', allowedPorts: [sshdPort] },
      async (id) => (await api('GET', `/api/v1/devices/${id}`)).status === 'online',
    ));
    agents.push(agent);
    await api('PATCH', `/api/v1/devices/${uuid}`, { name: 'kitchen-pi' });
    await api('PUT', `/api/v1/devices/${uuid}/allowed-ports`, { ports: [22, sshdPort] });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    sshd?.kill();
    await server?.close();
    removeTemporaryDirs();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps its host keys in the data dir (0600) and offers Ed25519', () => {
    for (const name of ['ssh_host_ed25519_key', 'ssh_host_rsa_key']) {
      const stat = fs.statSync(path.join(server.dataDir, 'ssh', name));
      expect(stat.mode & 0o777).toBe(0o600);
    }
  });

  it('ssh -J reaches the device sshd by uuid, uuid prefix, <uuid>.devices and name', async () => {
    // A prefix with a letter in it: OpenSSH reads a host of digits alone as an IPv4 address (README).
    const prefix = uuid.slice(0, Math.max(8, uuid.search(/[a-f]/) + 1));
    for (const target of [uuid, prefix, `${uuid}.devices`, 'kitchen-pi']) {
      const answer = await jump(adminKey, 'admin', target, sshdPort, ['echo', 'hello-from', '$((6*7))']);
      // A failure shows what ssh said.
      expect(answer, `ssh -J to ${target}: ${answer.stderr}`).toMatchObject({
        code: 0,
        stdout: 'hello-from 42\n',
      });
    }
  });

  it('runs a command through the agent and returns its exit status, stdout and stderr apart', async () => {
    const seven = await direct(adminKey, `admin+${uuid}`, ['exit 7']);
    expect(seven.code).toBe(7);
    const both = await direct(adminKey, 'admin@example.test+kitchen-pi', ['echo out; echo err >&2; exit 3']);
    expect(both).toEqual({ code: 3, stdout: 'out\n', stderr: 'err\n' });
    // stdin reaches the command, and its end (EOF) ends the command's input.
    const piped = await run(
      'ssh',
      [...clientOptions(adminKey), '-p', String(sshPort), `admin+${uuid}@127.0.0.1`, 'wc -c'],
      { input: 'x'.repeat(100_000) },
    );
    expect(piped.stdout.trim()).toBe('100000');
    // A command killed by a signal: OpenSSH reports the signal (exit status 255, "killed by signal").
    const killed = await direct(adminKey, `admin+${uuid}`, ['kill -TERM $$']);
    expect(killed.code).toBe(255);
  });

  it('gives a shell a terminal whose size follows window changes', async () => {
    const privateKey = fs.readFileSync(adminKey);
    const client = new ssh2.Client();
    await new Promise<void>((resolve, reject) => {
      client.on('ready', () => resolve());
      client.on('error', reject);
      client.connect({ host: '127.0.0.1', port: sshPort, username: `admin+${uuid}`, privateKey });
    });
    try {
      const channel = await new Promise<ClientChannel>((resolve, reject) =>
        client.shell({ term: 'xterm', cols: 91, rows: 20 }, (error, stream) =>
          error ? reject(error) : resolve(stream),
        ),
      );
      let output = '';
      channel.on('data', (data: Buffer) => {
        output += data.toString();
      });
      channel.write('echo "cols=$(tput cols)"\n');
      await waitFor(() => output.includes('cols=91'), 10_000, 'the first size');
      channel.setWindow(33, 132, 0, 0);
      channel.write('echo "cols=$(tput cols) lines=$(tput lines)"\n');
      await waitFor(() => output.includes('cols=132 lines=33'), 10_000, 'the new size');
      const closed = new Promise<number>((resolve) => channel.on('exit', (code: number) => resolve(code)));
      channel.write('exit 4\n');
      expect(await closed).toBe(4);
    } finally {
      client.end();
    }
  });

  it('copies a 50 MB file both ways with scp (SFTP) and lists a directory with sftp', async () => {
    const local = path.join(dir, 'big.bin');
    fs.writeFileSync(local, randomBytes(50 * 1024 * 1024));
    const remote = path.join(dir, `remote-${randomBytes(4).toString('hex')}.bin`);
    const back = path.join(dir, 'back.bin');
    const scp = (from: string, to: string) =>
      run('scp', [...clientOptions(adminKey), '-q', '-P', String(sshPort), from, to], { timeoutMs: 120_000 });
    const up = await scp(local, `admin+${uuid}@127.0.0.1:${remote}`);
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    const down = await scp(`admin+${uuid}@127.0.0.1:${remote}`, back);
    expect(down.code).toBe(0);
    const sha = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
    expect(sha(back)).toBe(sha(local));
    expect(sha(remote)).toBe(sha(local));

    const listing = await run(
      'sftp',
      [...clientOptions(adminKey), '-P', String(sshPort), '-b', '-', `admin+${uuid}@127.0.0.1`],
      { input: `ls -1 ${dir}\n` },
    );
    expect(listing.code).toBe(0);
    expect(listing.stdout).toContain('big.bin');
    expect(listing.stdout).toContain('sshd_config');
  }, 180_000);

  it("refuses another organization's user without revealing the device", async () => {
    const viaJump = await jump(betaKey, 'beta', uuid, sshdPort, ['true']);
    expect(viaJump.code).toBe(255);
    expect(viaJump.stderr).toContain(`no device "${uuid}" among your devices`);
    const viaExec = await direct(betaKey, `beta+${uuid}`, ['true']);
    expect(viaExec.code).toBe(255);
    expect(viaExec.stderr).toContain(`no device "${uuid}" among your devices`);
    // The same words as for a device that does not exist at all.
    const unknown = await direct(betaKey, `beta+${'0'.repeat(32)}`, ['true']);
    expect(unknown.stderr).toContain('among your devices');
    // A key nobody registered, or registered by someone else, does not sign in.
    const wrongUser = await direct(betaKey, `admin+${uuid}`, ['true']);
    expect(wrongUser.code).toBe(255);
    expect(wrongUser.stderr).toContain('Permission denied');
  });

  it('refuses a port outside the allow-list when the channel opens', async () => {
    const answer = await jump(adminKey, 'admin', uuid, 2, ['true']);
    expect(answer.code).toBe(255);
    expect(answer.stderr).toMatch(
      /open failed: administratively prohibited: port 2 is not on the device's port allow-list/,
    );
  });

  it('accepts an API key as the password (for scripts)', async () => {
    const { key } = await api('POST', '/api/v1/api-keys', { name: 'ssh-script' });
    const askpass = path.join(dir, 'askpass.sh');
    fs.writeFileSync(askpass, `#!/bin/sh\necho '${key}'\n`, { mode: 0o700 });
    const answer = await new Promise<Run>((resolve) => {
      execFile(
        'ssh',
        [
          '-o',
          'StrictHostKeyChecking=no',
          '-o',
          'UserKnownHostsFile=/dev/null',
          '-o',
          'PreferredAuthentications=password',
          '-o',
          'PubkeyAuthentication=no',
          '-o',
          'LogLevel=ERROR',
          '-p',
          String(sshPort),
          `admin+${uuid}@127.0.0.1`,
          'echo via-api-key',
        ],
        { env: { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' } },
        (error, stdout, stderr) =>
          resolve({
            code: error ? (error.code as number) : 0,
            stdout: stdout.toString(),
            stderr: stderr.toString(),
          }),
      ).stdin?.end();
    });
    expect(answer.stdout).toBe('via-api-key\n');
  });

  it('records shell sessions when the organization turns recording on', async () => {
    expect(await api('PUT', '/api/v1/orgs/1/session-recording', { enabled: true })).toEqual({
      orgId: 1,
      enabled: true,
    });
    // Typed once the shell prompts, as a person would: typed ahead, the input raced the shell's start (seen
    // once in CI: the session ended before the command's output).
    const recorded = await new Promise<string>((resolve, reject) => {
      const child = spawn('ssh', [
        ...clientOptions(adminKey),
        '-tt',
        '-p',
        String(sshPort),
        `admin+${uuid}@127.0.0.1`,
      ]);
      let output = '';
      let typed = false;
      const timer = setTimeout(() => child.kill(), 20_000);
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (!typed && /[#$] $/.test(output)) {
          typed = true;
          child.stdin.write('echo recorded-$((40+2))\nexit\n');
        }
      });
      child.once('error', reject);
      child.once('close', () => {
        clearTimeout(timer);
        resolve(output);
      });
    });
    expect(recorded).toContain('recorded-42');
    const sessions = await api('GET', `/api/v1/sessions?device=${uuid}&surface=ssh&limit=100`);
    const shells = (sessions.items as { id: string; target: string; live: boolean }[]).filter(
      (s) => s.target === 'shell',
    );
    expect(shells.length).toBeGreaterThan(0);
    const cast = await waitFor(
      async () => {
        for (const session of shells) {
          const answer = await requestJson(`${server.url}/api/v1/sessions/${session.id}/recording`, {
            token: server.adminToken,
          });
          if (answer.status === 200 && answer.text.includes('recorded-42')) return answer;
        }
        return undefined;
      },
      10_000,
      'the recording',
    );
    if (!cast) throw new Error('no recording');
    expect(cast.headers['content-type']).toContain('application/x-asciicast');
    const [headerLine, ...events] = cast.text.trimEnd().split('\n');
    const header = JSON.parse(headerLine ?? '');
    expect(header).toMatchObject({ version: 2, width: expect.any(Number), height: expect.any(Number) });
    let last = 0;
    for (const line of events) {
      const [time, kind, data] = JSON.parse(line);
      expect(time).toBeGreaterThanOrEqual(last);
      last = time;
      expect(['o', 'r']).toContain(kind);
      expect(typeof data).toBe('string');
    }
    await api('PUT', '/api/v1/orgs/1/session-recording', { enabled: false });
  });

  it('tells a person clearly when the device is offline', async () => {
    await agent.stop();
    await waitFor(
      async () => (await api('GET', `/api/v1/devices/${uuid}`)).status !== 'online',
      10_000,
      'the device to be offline',
    );
    const viaJump = await jump(adminKey, 'admin', uuid, sshdPort, ['true']);
    expect(viaJump.code).toBe(255);
    expect(viaJump.stderr).toMatch(/open failed: connect failed: device kitchen-pi \(\w+\) is offline/);
    const viaExec = await direct(adminKey, `admin+${uuid}`, ['true']);
    expect(viaExec.code).toBe(255);
    expect(viaExec.stderr).toContain('is offline');
  });
});
