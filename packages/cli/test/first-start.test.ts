/**
 * A first start as a new user meets it, with real `fleetgate` processes: a port already taken stops the start with
 * which listener, which port and which flag moves it, before any owner exists; the next start, on a free port,
 * creates the owner and prints a password that signs in. And when no way in remains, `fleetgate users
 * reset-password` on the machine sets a new one, ends the old sessions and is audited. SQLite, or PostgreSQL with
 * DATABASE_URL.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callApi, cliBin, eventually, freePort, Processes, type Running } from './processes.ts';

const EMAIL = 'owner@first-start.test';

let processes: Processes;
let dataDir: string;
/** `--database-url`/`--db-schema` of this file's schema on PostgreSQL, nothing on SQLite. */
let databaseFlags: string[];
let server: Running | undefined;
let base: string;

/** `fleetgate serve` on the shared data directory, without --admin-password: fleetgate chooses it. */
function serve(ports: { http: number; ssh: number; proxy: number }): Running {
  return processes.start(cliBin, [
    'serve',
    '--data-dir',
    dataDir,
    '--port',
    String(ports.http),
    '--ssh-port',
    String(ports.ssh),
    '--proxy-port',
    String(ports.proxy),
    '--admin-email',
    EMAIL,
    '--log-level',
    'warn',
    ...databaseFlags,
  ]);
}

async function exited(running: Running): Promise<number | null> {
  if (running.child.exitCode === null && running.child.signalCode === null) await once(running.child, 'exit');
  return running.child.exitCode;
}

async function login(password: string): Promise<string> {
  return (await callApi(base, undefined, 'POST', '/api/v1/auth/login', { email: EMAIL, password })).token;
}

beforeAll(() => {
  processes = new Processes();
  dataDir = path.join(processes.dir, 'server');
  databaseFlags = processes.databaseUrl
    ? ['--database-url', processes.databaseUrl, '--db-schema', processes.schema]
    : [];
});

afterAll(async () => {
  server?.child.kill('SIGTERM');
  if (server) await exited(server);
  await processes?.cleanUp();
});

describe('the first start', () => {
  let password: string;

  it('stops on a port in use saying which listener, which port and which setting moves it, and creates no owner', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const takenPort = (taken.address() as net.AddressInfo).port;
    try {
      const failed = serve({ http: 0, ssh: takenPort, proxy: 0 });
      expect(await exited(failed)).toBe(1);
      const output = failed.output();
      expect(output).toContain(`the SSH gateway cannot listen on 127.0.0.1:${takenPort}`);
      expect(output).toContain('already in use');
      expect(output).toContain('--ssh-port <port> or FLEETGATE_SSH_PORT');
      // One line for people, no stack trace, and no password printed for an owner nobody could reach.
      expect(output).not.toMatch(/^\s+at /m);
      expect(output).not.toMatch(/^ {2}password /m);
      expect(output).not.toContain('First start: created');
    } finally {
      taken.close();
    }
  }, 120_000);

  it('then succeeds on free ports and prints a password the owner signs in with', async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = serve({ http: port, ssh: 0, proxy: 0 });
    const running = server;
    password = await eventually(
      'the banner with the password',
      () => /^ {2}password {5}(\S+)$/m.exec(running.output())?.[1],
    );
    expect(running.output()).toContain(`created the organization "Default" and its owner ${EMAIL}`);
    const token = await login(password);
    const me = await callApi(base, token, 'GET', '/api/v1/me');
    expect(me).toMatchObject({ email: EMAIL, serverAdmin: true });
    expect(me.memberships).toMatchObject([{ orgName: 'Default', role: 'owner' }]);
  }, 120_000);

  it('leaves a locked-out owner `users reset-password` on the machine: a new password, old sessions ended, audited', async () => {
    const oldSession = await login(password);
    const reset = processes.start(cliBin, [
      'users',
      'reset-password',
      EMAIL,
      '--data-dir',
      dataDir,
      ...databaseFlags,
      '--json',
    ]);
    expect(await exited(reset)).toBe(0);
    const answer = JSON.parse(reset.output());
    expect(answer).toMatchObject({ email: EMAIL, sessionsRevoked: 2, password: expect.any(String) });
    expect(answer.password).not.toBe(password);

    // The running server refuses the old session and the old password, and takes the new one.
    await expect(callApi(base, oldSession, 'GET', '/api/v1/me')).rejects.toThrow(/answered 401/);
    await expect(login(password)).rejects.toThrow(/answered 401/);
    const token = await login(answer.password);
    const events = await callApi(base, token, 'GET', '/api/v1/audit?action=user.reset_password');
    expect(events.items).toMatchObject([
      {
        actor: { type: 'system', label: `fleetgate on the machine, OS user ${os.userInfo().username}` },
        resourceType: 'user',
        resourceId: String(answer.id),
        outcome: 'success',
        details: { email: EMAIL, passwordGenerated: true, sessionsRevoked: 2 },
      },
    ]);
  }, 120_000);

  it('takes the new password from standard input with --password-stdin, and shows none', async () => {
    const child = spawn(
      process.execPath,
      [cliBin, 'users', 'reset-password', EMAIL, '--password-stdin', '--data-dir', dataDir, ...databaseFlags],
      { env: { PATH: process.env.PATH, HOME: processes.dir }, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr.on('data', (chunk) => {
      output += chunk;
    });
    child.stdin.end('chosen on the machine\n');
    const [code] = await once(child, 'exit');
    expect(code, output).toBe(0);
    expect(output).toContain(`new password set for ${EMAIL}`);
    expect(output).not.toMatch(/^ {2}password /m);
    expect(output).not.toContain('chosen on the machine');
    await login('chosen on the machine');
  }, 60_000);

  it('refuses, saying what to pass, an unknown e-mail or a data directory without a database', async () => {
    const unknown = processes.start(cliBin, [
      'users',
      'reset-password',
      'nobody@first-start.test',
      '--data-dir',
      dataDir,
      ...databaseFlags,
    ]);
    expect(await exited(unknown)).toBe(1);
    expect(unknown.output()).toContain('no user has the e-mail nobody@first-start.test');
    if (!processes.databaseUrl) {
      const elsewhere = path.join(processes.dir, 'elsewhere');
      const wrongDir = processes.start(cliBin, ['users', 'reset-password', EMAIL, '--data-dir', elsewhere]);
      expect(await exited(wrongDir)).toBe(1);
      expect(wrongDir.output()).toContain(`no fleetgate database at ${path.join(elsewhere, 'fleetgate.db')}`);
    }
  }, 60_000);
});
