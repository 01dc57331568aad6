/**
 * How an SSH gateway session ends, as the person at the `ssh` client and an administrator listing sessions see it:
 * a command that exits is a session that closed (not an error), and a session an administrator ends, or whose
 * access goes, tells the person why on their ssh's standard error before the connection closes.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Agent } from '@fleetgate/agent';
import { enrollAgent, removeTemporaryDirs } from '@fleetgate/agent/test/helpers.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ListeningServer, requestJson, startListeningServer } from '../listening.ts';
import { api as callApi, clientOptions, keygen, run } from './openssh-tools.ts';

describe('the end of an SSH gateway session', () => {
  let server: ListeningServer;
  let dir: string;
  let agent: Agent;
  let uuid: string;
  let adminKey: string;
  // Two services on the device: one answers a line and hangs up, the other echoes until the person's end.
  const hangsUp = net.createServer((socket) => socket.end('hello\n'));
  const echoes = net.createServer((socket) => socket.pipe(socket));
  let ports: number[];
  const api = (method: string, url: string, body?: unknown, token?: string) =>
    callApi(server, method, url, body, token);
  const sshArgs = (command: string) => [
    ...clientOptions(adminKey),
    '-p',
    String(server.server.sshPort),
    `admin+${uuid}@127.0.0.1`,
    command,
  ];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-ssh-end-'));
    await Promise.all(
      [hangsUp, echoes].map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))),
    );
    ports = [hangsUp, echoes].map((s) => (s.address() as net.AddressInfo).port);
    server = await startListeningServer({ flags: { presenceFlushMs: 50 } });
    adminKey = await keygen(dir, 'id_admin');
    await api('POST', '/api/v1/ssh-keys', { publicKey: fs.readFileSync(`${adminKey}.pub`, 'utf8') });
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'end-fleet',
      defaultDeviceType: 'generic-amd64',
    });
    const { key } = await api('POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, { name: 'end' });
    ({ agent, uuid } = await enrollAgent(
      server.url,
      key,
      { agentVersion: '0.1.0-ssh-end', allowedPorts: ports },
      async (id) => (await api('GET', `/api/v1/devices/${id}`)).status === 'online',
    ));
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    hangsUp.close();
    echoes.close();
    await server?.close();
    removeTemporaryDirs();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** The device's sessions, newest first, once none is live any more. */
  async function endedSessions() {
    for (let tries = 0; tries < 100; tries++) {
      const { items } = await api('GET', `/api/v1/sessions?device=${uuid}`);
      if (items.length && !items.some((s: { live: boolean }) => s.live)) return items;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('the sessions did not end');
  }

  it('records a command that exits, with any status, as closed rather than an error', async () => {
    expect(await run('ssh', sshArgs('echo done'))).toMatchObject({ code: 0, stdout: 'done\n' });
    expect(await run('ssh', sshArgs('exit 3'))).toMatchObject({ code: 3 });
    const sessions = await endedSessions();
    expect(sessions.slice(0, 2).map((s: { outcome: string }) => s.outcome)).toEqual(['closed', 'closed']);
  });

  /** `ssh <login>+<device> sleep 60` running, with its live session's id, its stderr and its exit. */
  async function sleepingSession(key: string, login: string) {
    const args = [
      ...clientOptions(key),
      '-p',
      String(server.server.sshPort),
      `${login}+${uuid}@127.0.0.1`,
      'sleep 60',
    ];
    const child = spawn('ssh', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let live: { id: string } | undefined;
    for (let tries = 0; tries < 100 && !live; tries++) {
      const { items } = await api('GET', `/api/v1/sessions?device=${uuid}&live=true`);
      live = items[0];
      if (!live) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(live, `the ssh session never became live: ${stderr}`).toBeDefined();
    return { id: live!.id, exited, stderr: () => stderr, kill: () => child.kill('SIGTERM') };
  }

  it('records a forwarded connection that either end closes as closed', async () => {
    try {
      await api('PUT', `/api/v1/devices/${uuid}/allowed-ports`, { ports });
      const forward = (port: number, input: string) =>
        run(
          'ssh',
          [
            ...clientOptions(adminKey),
            '-p',
            String(server.server.sshPort),
            '-W',
            `${uuid}:${port}`,
            'admin@127.0.0.1',
          ],
          { input },
        );
      expect(await forward(ports[0]!, '')).toMatchObject({ code: 0, stdout: 'hello\n' });
      expect(await forward(ports[1]!, 'ping\n')).toMatchObject({ code: 0, stdout: 'ping\n' });
      const sessions = await endedSessions();
      expect(sessions.slice(0, 2).map((s: { outcome: string }) => s.outcome)).toEqual(['closed', 'closed']);
    } finally {
      await api('PUT', `/api/v1/devices/${uuid}/allowed-ports`, { ports: null });
    }
  });

  it('records a session whose person hung up (ssh killed mid-command) as closed, not as an error', async () => {
    const session = await sleepingSession(adminKey, 'admin');
    session.kill();
    await session.exited;
    const [ended] = await endedSessions();
    expect(ended).toMatchObject({ id: session.id, outcome: 'closed' });
  });

  it('tells the person on their ssh standard error that an administrator ended the session', async () => {
    const session = await sleepingSession(adminKey, 'admin');
    await api('POST', `/api/v1/sessions/${session.id}/terminate`, {});
    expect(await session.exited).toBe(255);
    expect(session.stderr()).toMatch(/^fleetgate: terminated by admin@example\.test\r?\n/m);
    const [ended] = await endedSessions();
    expect(ended.outcome).toBe('terminated by admin@example.test');
  });

  it('tells the person why when their access to the device is revoked', async () => {
    const member = await api('POST', '/api/v1/orgs/1/members', {
      email: 'ops@example.test',
      role: 'operator',
    });
    const token = (
      await requestJson(`${server.url}/api/v1/auth/login`, {
        method: 'POST',
        body: { email: 'ops@example.test', password: member.password },
      })
    ).body.token as string;
    const opsKey = await keygen(dir, 'id_ops');
    await api('POST', '/api/v1/ssh-keys', { publicKey: fs.readFileSync(`${opsKey}.pub`, 'utf8') }, token);
    const session = await sleepingSession(opsKey, 'ops');
    await api('DELETE', `/api/v1/orgs/1/members/${member.userId}`);
    expect(await session.exited).toBe(255);
    expect(session.stderr()).toMatch(/^fleetgate: access revoked: [^\r\n]+\r?\n/m);
  });
});
