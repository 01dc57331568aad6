/**
 * What the tests with real OpenSSH programs share: running a command to its end, a free port, `ssh-keygen`,
 * the `ssh -o` options of a non-interactive client, an API call as the administrator, and a temporary `sshd`.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { waitFor } from '@fleetgate/agent/test/helpers.ts';
import { type ListeningServer, requestJson } from '../listening.ts';

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; never rejects (the caller checks `code`). */
export function run(
  file: string,
  args: string[],
  options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      {
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 16 * 1024 * 1024,
        ...(options.env ? { env: options.env } : {}),
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
  });
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A new Ed25519 key pair without a passphrase, `<dir>/<name>` and `<dir>/<name>.pub` (comment `comment`);
 * answers the first.
 */
export async function keygen(dir: string, name: string, comment = name): Promise<string> {
  const file = path.join(dir, name);
  const made = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
  if (made.code !== 0) throw new Error(`ssh-keygen: ${made.stderr}`);
  return file;
}

/** `ssh` options for a client that never asks anything and signs in with `key` only. */
export const clientOptions = (key: string) => [
  '-o',
  'StrictHostKeyChecking=no',
  '-o',
  'UserKnownHostsFile=/dev/null',
  '-o',
  'BatchMode=yes',
  '-o',
  'IdentitiesOnly=yes',
  '-o',
  'LogLevel=ERROR',
  '-i',
  key,
];

/**
 * `ssh -J <login>@<gateway> -p <port> root@<target> <command>` to a device's own sshd through fleetgate's SSH
 * gateway, as a person writes it; the options come from an ssh_config written in `dir` (`-F`), which OpenSSH
 * hands on to the ssh it starts for the jump.
 */
export function sshJump(
  dir: string,
  options: { key: string; login: string; gateway: string; target: string; port: number },
  command: string[],
): Promise<Run> {
  const config = path.join(dir, `ssh_config_${randomBytes(4).toString('hex')}`);
  fs.writeFileSync(
    config,
    [
      'Host *',
      '  StrictHostKeyChecking no',
      '  UserKnownHostsFile /dev/null',
      '  BatchMode yes',
      '  IdentitiesOnly yes',
      `  IdentityFile ${options.key}`,
      '',
    ].join('\n'),
  );
  return run('ssh', [
    '-F',
    config,
    '-J',
    `${options.login}@${options.gateway}`,
    '-p',
    String(options.port),
    `root@${options.target}`,
    ...command,
  ]);
}

/**
 * One API call to `server` (as its administrator unless `token` says otherwise); throws on a status from 300
 * up. Tests read answers loosely, hence `any`.
 */
export async function api(
  server: ListeningServer,
  method: string,
  url: string,
  body?: unknown,
  token = server.adminToken,
  // biome-ignore lint/suspicious/noExplicitAny: see above.
): Promise<any> {
  const answer = await requestJson(`${server.url}${url}`, {
    method,
    ...(body === undefined ? {} : { body }),
    token,
  });
  if (answer.status >= 300) throw new Error(`${method} ${url}: ${answer.status} ${answer.text}`);
  return answer.body;
}

/**
 * Starts a real `sshd` on 127.0.0.1:`port` from a temporary config in `dir` (see {@link writeSshdConfig}) with
 * a new host key `hostKeyName`; `untilListening` waits for it.
 */
export async function startSshd(
  dir: string,
  port: number,
  hostKeyName: string,
  settings: string[],
): Promise<ChildProcess> {
  const config = await writeSshdConfig(dir, port, hostKeyName, settings);
  return spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: 'ignore' });
}

/**
 * Writes `<dir>/sshd_config` for a temporary `sshd` on `listenAddress`:`port` (`Port`, `ListenAddress`,
 * `HostKey` — a new key `hostKeyName` — and `PidFile`, then `settings`) and answers its path.
 */
export async function writeSshdConfig(
  dir: string,
  port: number,
  hostKeyName: string,
  settings: string[],
  listenAddress = '127.0.0.1',
): Promise<string> {
  const hostKey = await keygen(dir, hostKeyName);
  fs.mkdirSync('/run/sshd', { recursive: true });
  const config = path.join(dir, 'sshd_config');
  fs.writeFileSync(
    config,
    [
      `Port ${port}`,
      `ListenAddress ${listenAddress}`,
      `HostKey ${hostKey}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      // Sessions get a HOME without dotfiles: this machine's ~/.bashrc (pyenv) must not decide a test.
      `SetEnv HOME=${emptyHome(dir)}`,
      ...settings,
      '',
    ].join('\n'),
  );
  return config;
}

function emptyHome(dir: string): string {
  const home = path.join(dir, 'sshd-home');
  fs.mkdirSync(home, { recursive: true });
  return home;
}

/** Resolves once 127.0.0.1:`port` accepts connections; throws after 10 s. */
export async function untilListening(port: number, what: string): Promise<void> {
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.destroy();
          resolve(true);
        });
        socket.on('error', () => resolve(false));
      }),
    10_000,
    what,
  );
}
