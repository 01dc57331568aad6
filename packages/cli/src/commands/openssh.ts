import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { constants } from 'node:os';
import {
  ExecDecoder,
  type ExecExitStatus,
  type ExecRequest,
  encodeExecMessage,
  HEADER_SIZE,
  MAX_FRAME_PAYLOAD,
  Multiplexer,
  StreamError,
  type TunnelStream,
} from '@fleetgate/protocol';
import type { Command } from 'commander';
import WebSocket from 'ws';
import { ApiClient } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';

/**
 * The OpenSSH integration mode (DESIGN section 7, seed 004): the bastion's own `sshd` authenticates people with
 * the SSH keys they registered in fleetgate, and relays their sessions to devices through the server.
 *
 * - `ssh-authorized-keys` is sshd's `AuthorizedKeysCommand`: one `restrict,pty,command="… ssh-proxy <key id>"`
 *   line per registered key, so whoever signs in with that key runs nothing but the proxy for that key.
 * - `ssh-proxy <key id>` is that forced command: it reads `SSH_ORIGINAL_COMMAND` (`<device> [command…]`, or just
 *   the command when `FLEETGATE_DEVICE` names the device) and runs the command, a shell, or — for sftp and
 *   scp — the device's sftp-server on the device through the agent's exec service, as the owner of the key, and
 *   tells the server the address the person came from (`SSH_CONNECTION`).
 *
 * Both speak to the server with the bastion's service credential (`fleetgate api-keys create <name> --service
 * openssh`), read from a root-only file (`--token-file`), never from the command line sshd writes into its logs.
 */

/** Characters a path or URL may hold to go into `command="…"` unquoted (no quotes, spaces or shell syntax). */
const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** The environment variable that names the device when the command has no room for it (scp, sftp). */
export const DEVICE_ENV = 'FLEETGATE_DEVICE';

/** The exit status of a remote command, handed back to sshd without a message. */
class RemoteExit extends CliError {
  constructor(code: number) {
    super('', { exitCode: code });
  }
}

interface ServiceOptions {
  tokenFile?: string;
  timeout: string;
}

/** The server and the service credential: `--token-file`, `FLEETGATE_TOKEN_FILE`, then `--token`/`FLEETGATE_TOKEN`. */
async function serviceConnection(
  ctx: CommandContext,
  options: ServiceOptions,
): Promise<{ server: string; token: string; tokenFile: string | undefined }> {
  const { server, token: given } = await ctx.connection();
  if (!server) throw new CliError('no server: give --server URL (or FLEETGATE_SERVER)');
  const tokenFile = options.tokenFile ?? (ctx.io.env.FLEETGATE_TOKEN_FILE || undefined);
  let token = given;
  if (tokenFile) {
    try {
      token = (await readFile(tokenFile, 'utf8')).trim();
    } catch (error) {
      throw new CliError(`cannot read the service token from ${tokenFile}: ${(error as Error).message}`);
    }
  }
  if (!token)
    throw new CliError(
      'no service credential: give --token-file FILE (a key from fleetgate api-keys create <name> --service openssh)',
    );
  return { server, token, tokenFile };
}

function timeoutMsOf(text: string): number {
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 300)
    throw new CliError(`--timeout is a number of seconds from 0 to 300, got "${text}"`);
  return seconds * 1000;
}

/** The command sshd should run for a key: this very fleetgate, unless `--proxy-command` says otherwise. */
function proxyCommandPrefix(given: string | undefined): string[] {
  if (given) return given.trim().split(/\s+/);
  const script = process.argv[1];
  return script ? [process.execPath, script] : ['fleetgate'];
}

export function registerOpenSshCommands(program: Command, io: CliIo): void {
  program
    .command('ssh-authorized-keys')
    .description(
      "print a login's registered SSH keys as forced-command lines, for sshd's AuthorizedKeysCommand",
    )
    .argument('[login]', "the person's e-mail or unique local part (sshd %u, when accounts are per person)")
    .option(
      '--fingerprint <fingerprint>',
      'only the key with this SHA256 fingerprint (sshd %f, for a shared account)',
    )
    .option(
      '--token-file <file>',
      'file holding the service credential (api-keys create <name> --service openssh)',
    )
    .option(
      '--proxy-command <command>',
      'how sshd starts fleetgate (default: this fleetgate, by absolute path)',
    )
    .option('--timeout <seconds>', 'give up after this long, so sshd never waits on us', '5')
    .addHelpText(
      'after',
      '\nIn sshd_config (see the README):\n' +
        '  Match User fleet\n' +
        '    AuthorizedKeysCommand /usr/local/bin/fleetgate --server https://fleet.example.com ssh-authorized-keys --token-file /etc/fleetgate/ssh-service-token --fingerprint %f\n' +
        '    AuthorizedKeysCommandUser root\n' +
        'Unknown logins and keys print nothing (sshd then refuses the key).',
    )
    .action(
      async (
        login: string | undefined,
        options: ServiceOptions & { fingerprint?: string; proxyCommand?: string },
        command: Command,
      ) => {
        const ctx = new CommandContext(io, command);
        const timeoutMs = timeoutMsOf(options.timeout);
        if (login === undefined && options.fingerprint === undefined)
          throw new CliError('give a login, --fingerprint, or both');
        const { server, token, tokenFile } = await serviceConnection(ctx, options);
        const prefix = proxyCommandPrefix(options.proxyCommand);
        const words = [
          ...prefix,
          '--server',
          server,
          'ssh-proxy',
          ...(tokenFile ? ['--token-file', tokenFile] : []),
        ];
        const unsafe = words.find((word) => !SAFE_WORD.test(word));
        if (unsafe !== undefined)
          throw new CliError(
            `"${unsafe}" cannot go into an authorized_keys command: use a path without spaces or quotes`,
          );
        const client = new ApiClient({ server, token, timeoutMs, ...(io.fetch ? { fetch: io.fetch } : {}) });
        const answer = await client.request<{ items: { id: number; publicKey: string }[] }>(
          'GET',
          '/ssh/authorized-keys',
          { query: { login, fingerprint: options.fingerprint } },
        );
        for (const key of answer.items) {
          io.stdout.write(`restrict,pty,command="${words.join(' ')} ${key.id}" ${key.publicKey}\n`);
        }
      },
    );

  program
    .command('ssh-proxy')
    .description(
      '(sshd forced command) run SSH_ORIGINAL_COMMAND "<device> [command]" on the device as the key\'s owner',
    )
    .argument('<key-id>', 'the registered SSH key sshd accepted (written by ssh-authorized-keys)')
    .option(
      '--token-file <file>',
      'file holding the service credential (api-keys create <name> --service openssh)',
    )
    .option('--timeout <seconds>', 'give up connecting after this long', '15')
    .addHelpText(
      'after',
      `\nThe device is the first word of the command, or ${DEVICE_ENV} when set (ssh -o SetEnv=${DEVICE_ENV}=<device>;\n` +
        `the bastion's sshd needs AcceptEnv ${DEVICE_ENV}): scp and sftp have no other place for it. The sftp\n` +
        "subsystem (sshd's Subsystem sftp command: internal-sftp or a path to sftp-server) runs the device's\n" +
        'sftp-server, which sftp and scp use; legacy scp (scp -O) runs scp on the device.',
    )
    .action(async (keyId: string, options: ServiceOptions, command: Command) => {
      const ctx = new CommandContext(io, command);
      if (!/^[1-9]\d{0,9}$/.test(keyId))
        throw new CliError(`a key id is a number, got "${keyId}"`, { exitCode: 255 });
      const request = proxyRequestOf(io.env.SSH_ORIGINAL_COMMAND ?? '', io.env[DEVICE_ENV]);
      const connection = await serviceConnection(ctx, options).catch((error: CliError) => {
        throw new CliError(error.message, { exitCode: 255 });
      });
      const code = await runProxy({
        ...connection,
        keyId,
        request,
        clientAddress: clientAddressOf(io.env),
        env: io.env,
        timeoutMs: timeoutMsOf(options.timeout),
      });
      if (code !== 0) throw new RemoteExit(code);
    });
}

/**
 * `SSH_ORIGINAL_COMMAND` as people write it after the bastion: the first word names the device, the rest (as
 * typed, for the device's shell) is the command; no command means an interactive shell.
 */
export function parseOriginalCommand(
  text: string,
): { device: string; command: string | undefined } | undefined {
  const match = /^\s*(\S+)(?:\s+([\s\S]*))?$/.exec(text);
  if (!match) return undefined;
  const command = match[2]?.trim();
  return { device: match[1]!, command: command ? command : undefined };
}

/** What ssh-proxy runs on the device: a command (a shell when undefined), or the device's sftp-server. */
export type ProxyRequest =
  | { device: string; command: string | undefined; sftp?: undefined }
  | { device: string; sftp: true };

/**
 * sshd's sftp subsystem under a forced command: sshd puts its `Subsystem sftp` command line into
 * `SSH_ORIGINAL_COMMAND` — `internal-sftp`, or the path of sftp-server with its arguments.
 */
const SFTP_SUBSYSTEM = /^(?:internal-sftp|(?:\S*\/)?sftp-server)(?:\s[\s\S]*)?$/;

/**
 * What to run, from `SSH_ORIGINAL_COMMAND` and `FLEETGATE_DEVICE`: with the variable set, it names the device and
 * the whole command is the command; without it, the command's first word is the device. The sftp subsystem (as
 * sftp and OpenSSH 9's scp ask for it) becomes the device's sftp-server. Throws with exit status 255 (as ssh does
 * when it cannot connect) when no device is named.
 */
export function proxyRequestOf(originalCommand: string, deviceVariable: string | undefined): ProxyRequest {
  const device = deviceVariable?.trim();
  const command = originalCommand.trim();
  if (device) {
    if (SFTP_SUBSYSTEM.test(command)) return { device, sftp: true };
    return { device, command: command || undefined };
  }
  const parsed = parseOriginalCommand(originalCommand);
  const fileTransfer = SFTP_SUBSYSTEM.test(command) || /^scp\s/.test(command);
  if (!parsed || fileTransfer)
    throw new CliError(
      fileTransfer
        ? `scp and sftp name the device with -o SetEnv=${DEVICE_ENV}=<device> (the bastion's sshd needs AcceptEnv ${DEVICE_ENV})`
        : 'name a device: ssh <account>@<bastion> <device> [command]',
      { exitCode: 255 },
    );
  return parsed;
}

/** The address the person connected from: the first field of sshd's `SSH_CONNECTION` (or `SSH_CLIENT`). */
export function clientAddressOf(env: NodeJS.ProcessEnv): string | undefined {
  for (const value of [env.SSH_CONNECTION, env.SSH_CLIENT]) {
    const first = value?.trim().split(/\s+/)[0];
    if (first && isIP(first) !== 0) return first;
  }
  return undefined;
}

interface ProxySetup {
  server: string;
  token: string;
  keyId: string;
  request: ProxyRequest;
  /** The person's address, for the session record. */
  clientAddress: string | undefined;
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
}

/** The refusal of an upgrade, from the server's error body. */
function upgradeRefusal(response: import('node:http').IncomingMessage): Promise<CliError> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    response.on('data', (chunk: Buffer) => chunks.push(chunk));
    response.on('error', () => {});
    response.on('end', () => {
      let message = `HTTP ${response.statusCode}`;
      try {
        message = JSON.parse(Buffer.concat(chunks).toString('utf8')).error.message ?? message;
      } catch {}
      resolve(new CliError(message, { exitCode: 255 }));
    });
  });
}

/**
 * Opens one exec stream on a WebSocket to the server (`/api/v1/ssh/proxy`) and relays this process's stdin,
 * stdout, stderr, terminal size and exit status through it. Answers the exit code for sshd: the command's own,
 * 128 + n for a signal, 255 when the session broke.
 */
async function runProxy(setup: ProxySetup): Promise<number> {
  const url = new URL('/api/v1/ssh/proxy', setup.server.replace(/^http/, 'ws'));
  url.searchParams.set('device', setup.request.device);
  const ws = new WebSocket(url, {
    headers: {
      authorization: `Bearer ${setup.token}`,
      'x-fleetgate-ssh-key-id': setup.keyId,
      ...(setup.clientAddress ? { 'x-fleetgate-client-address': setup.clientAddress } : {}),
    },
    perMessageDeflate: false,
    maxPayload: HEADER_SIZE + MAX_FRAME_PAYLOAD,
    handshakeTimeout: setup.timeoutMs,
  });
  const mux = new Multiplexer({
    role: 'server',
    software: 'fleetgate-ssh-proxy',
    send: (frame) => ws.send(frame),
    onClose: (close) => ws.close(close.code, close.reason.slice(0, 120)),
  });
  ws.on('message', (data, isBinary) => {
    if (isBinary) mux.receive(data as Buffer);
  });
  ws.on('close', () => mux.transportClosed('the connection to the server closed'));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', (error) =>
      reject(new CliError(`cannot reach ${setup.server}: ${error.message}`, { exitCode: 255 })),
    );
    ws.once('unexpected-response', (_request, response) => {
      upgradeRefusal(response).then(reject);
    });
  });
  ws.on('error', () => {});
  mux.start();

  const stdin = process.stdin;
  const stdout = process.stdout;
  const request = setup.request;
  // sftp speaks its binary protocol on plain pipes: never a terminal, whatever sshd was asked for.
  const terminal = !request.sftp && stdin.isTTY && stdout.isTTY;
  const exec: ExecRequest = {
    ...(request.sftp || request.command === undefined ? {} : { command: request.command }),
    ...(terminal
      ? {
          pty: {
            term: /^[\w.+-]{1,64}$/.test(setup.env.TERM ?? '') ? setup.env.TERM! : 'xterm',
            cols: stdout.columns || 80,
            rows: stdout.rows || 24,
          },
        }
      : {}),
  };
  let stream: TunnelStream;
  let timer: NodeJS.Timeout | undefined;
  try {
    stream = await Promise.race([
      mux.open(request.sftp ? { service: 'sftp' } : { exec }),
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(
          () =>
            reject(new Error(`${setup.server} did not open the session within ${setup.timeoutMs / 1000} s`)),
          setup.timeoutMs,
        );
      }),
    ]);
  } catch (error) {
    mux.close(1000, 'refused');
    const reason = error instanceof StreamError ? error.reason || error.code : (error as Error).message;
    throw new CliError(reason, { exitCode: 255 });
  } finally {
    clearTimeout(timer);
  }
  return relayExec(stream, { terminal, stdin, stdout }).finally(() => mux.close(1000, 'done'));
}

/** Pipes the process's standard streams through the exec sub-protocol until the command exits. */
function relayExec(
  stream: TunnelStream,
  io: { terminal: boolean; stdin: NodeJS.ReadStream; stdout: NodeJS.WriteStream },
): Promise<number> {
  const { stdin, stdout, terminal } = io;
  const stderr = process.stderr;
  const decoder = new ExecDecoder({ from: 'agent' });
  let status: ExecExitStatus | undefined;
  const send = (message: Parameters<typeof encodeExecMessage>[0]) => {
    if (!stream.writable) return;
    if (!stream.write(encodeExecMessage(message))) {
      stdin.pause();
      stream.once('drain', () => stdin.resume());
    }
  };
  // With a terminal, the keys go to the device's terminal as they are typed: sshd's pty must not cook them.
  if (terminal) stdin.setRawMode(true);
  const onResize = () => send({ type: 'resize', cols: stdout.columns || 80, rows: stdout.rows || 24 });
  if (terminal) stdout.on('resize', onResize);
  stdin.on('data', (data: Buffer) => send({ type: 'stdin', data }));
  stdin.on('end', () => send({ type: 'eofStdin' }));
  stdin.on('error', () => {});
  // sshd hangs up (the person went away): the device's process goes too.
  const hangUp = () => stream.destroy(new Error('the SSH client went away'));
  process.once('SIGHUP', hangUp);
  process.once('SIGTERM', hangUp);

  return new Promise<number>((resolve) => {
    let settled = false;
    const done = (code: number) => {
      if (settled) return;
      settled = true;
      if (terminal) {
        stdout.off('resize', onResize);
        stdin.setRawMode(false);
      }
      process.off('SIGHUP', hangUp);
      process.off('SIGTERM', hangUp);
      stdin.pause();
      stdin.destroy();
      resolve(code);
    };
    stream.on('data', (chunk: Buffer) => {
      let messages: ReturnType<ExecDecoder['push']>;
      try {
        messages = decoder.push(chunk);
      } catch (error) {
        stderr.write(`fleetgate: the device broke the session: ${(error as Error).message}\r\n`);
        stream.destroy();
        done(255);
        return;
      }
      for (const message of messages) {
        if (message.type === 'stdout') {
          if (!stdout.write(message.data)) {
            stream.pause();
            stdout.once('drain', () => stream.resume());
          }
        } else if (message.type === 'stderr') stderr.write(message.data);
        else if (message.type === 'exit') status = message.status;
      }
    });
    stream.on('end', () => {
      stream.end();
      const exit = status;
      if (exit === undefined) {
        stderr.write('fleetgate: the session ended without an exit status\r\n');
        done(255);
      } else if ('code' in exit) done(exit.code);
      else {
        const name = (exit.signal.startsWith('SIG') ? exit.signal : `SIG${exit.signal}`) as NodeJS.Signals;
        done(128 + (constants.signals[name] ?? 0));
      }
    });
    stream.on('error', (error: Error) => {
      if (settled) return;
      const reason = error instanceof StreamError ? error.reason || error.code : error.message;
      stderr.write(`fleetgate: the session broke: ${reason}\r\n`);
      done(255);
    });
  });
}
