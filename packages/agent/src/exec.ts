/**
 * The exec service: the server opens a stream with target `{exec: {command?, pty?, env?}}` (for the SSH
 * gateway) and the agent runs the command — or the user's login shell — as the agent's user, speaking
 * the exec sub-protocol of @fleetgate/protocol inside the stream.
 *
 * - With `pty`: node-pty, window size changes applied, one output channel (stdout).
 * - Without: child_process with separate stdout and stderr pipes and stdin closable by `eof-stdin`.
 *
 * Backpressure both ways: when the tunnel stream's `write()` answers false (the peer's window is full),
 * the process's output is paused until 'drain', so a fast producer (`cat /dev/zero`) holds at most a
 * window in memory; when the process's stdin is full, the stream is paused, which stops returning
 * credit to the peer.
 *
 * A named service (e.g. `{service: 'sftp'}` → `sftp-server` without a pty) is `runProcess` with a
 * fixed program: add it to `services` below.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import {
  type ExecClientMessage,
  ExecDecoder,
  type ExecExitStatus,
  type ExecRequest,
  encodeExecMessage,
  type IncomingOpen,
  StreamError,
  StreamErrorCode,
  type TunnelStream,
} from '@fleetgate/protocol';
import type { Logger } from './log.ts';

export interface ExecOptions {
  /** The environment the process starts from (the agent's own; `env` of the request is merged over it). */
  baseEnv: NodeJS.ProcessEnv;
  /** The shell for commands and logins. Default: the agent user's login shell, else /bin/sh. */
  shell?: string;
  log: Logger;
}

/** What to run: a program and its arguments, with or without a terminal. */
export interface ProcessSpec {
  file: string;
  args: string[];
  pty?: { term: string; cols: number; rows: number };
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** Where distributions install OpenSSH's sftp-server: Debian/Ubuntu, Fedora/RHEL, Alpine/Arch, others. */
const SFTP_SERVERS = [
  '/usr/lib/openssh/sftp-server',
  '/usr/libexec/openssh/sftp-server',
  '/usr/lib/ssh/sftp-server',
  '/usr/libexec/sftp-server',
];

/**
 * Named services: a stream opened with `{service: name}` runs this program without a pty, or answers
 * undefined when the device has none. `sftp`: the device's OpenSSH sftp-server (the SSH gateway's `sftp`
 * subsystem, which `scp` and `sftp` use).
 */
const services = new Map<string, () => [file: string, ...args: string[]] | undefined>([
  [
    'sftp',
    () => {
      const file = SFTP_SERVERS.find((candidate) => {
        try {
          fs.accessSync(candidate, fs.constants.X_OK);
          return true;
        } catch {
          return false;
        }
      });
      return file === undefined ? undefined : [file];
    },
  ],
]);

/** Answers an OPEN for `{exec: …}`: starts the process and bridges it to the stream. */
export function handleExecStream(open: IncomingOpen, request: ExecRequest, options: ExecOptions): void {
  const shell = options.shell ?? loginShell();
  const spec: ProcessSpec = {
    file: shell,
    // Like sshd: a command goes through the user's shell; no command means an interactive login shell.
    args: request.command === undefined ? ['-l'] : ['-c', request.command],
    ...(request.pty ? { pty: request.pty } : {}),
    env: {
      ...options.baseEnv,
      ...(request.pty ? { TERM: request.pty.term } : {}),
      ...request.env,
    },
    cwd: homeDir(),
  };
  runProcess(open.accept(), spec, options.log).catch((error: unknown) =>
    options.log.error('exec failed', { error }),
  );
}

/** Answers an OPEN for `{service: name}`. */
export function handleServiceStream(open: IncomingOpen, name: string, options: ExecOptions): void {
  const service = services.get(name);
  if (!service) {
    open.reject(StreamErrorCode.notAllowed, `unknown service ${name}`);
    return;
  }
  const argv = service();
  if (!argv) {
    open.reject(StreamErrorCode.refused, `this device has no ${name} server`);
    return;
  }
  const [file, ...args] = argv;
  runProcess(open.accept(), { file, args, env: { ...options.baseEnv }, cwd: homeDir() }, options.log).catch(
    (error: unknown) => options.log.error('exec failed', { error }),
  );
}

/** The running process, whichever way it was started. */
interface RunningProcess {
  pid: number | undefined;
  writeStdin(data: Uint8Array): void;
  endStdin(): void;
  resize(cols: number, rows: number): void;
  kill(signal: NodeJS.Signals): void;
}

/**
 * Runs `spec` and speaks the exec sub-protocol over `stream` until the process exits; then sends `exit`
 * and ends the stream. If the stream goes away first, the process is hung up on (SIGHUP, then SIGKILL).
 */
export async function runProcess(stream: TunnelStream, spec: ProcessSpec, log: Logger): Promise<void> {
  if (stream.destroyed) return;
  const decoder = new ExecDecoder({ from: 'client' });
  let exited = false;
  let hangupTimer: NodeJS.Timeout | undefined;
  let child: RunningProcess;

  // Output → stream, pausing `pause` while the peer's window is full.
  let waitingForDrain = false;
  const send = (message: Parameters<typeof encodeExecMessage>[0], pause: () => void, resume: () => void) => {
    if (stream.destroyed || stream.writableEnded) return;
    if (!stream.write(encodeExecMessage(message)) && !waitingForDrain) {
      waitingForDrain = true;
      pause();
      stream.once('drain', () => {
        waitingForDrain = false;
        resume();
      });
    }
  };
  const finish = (status: ExecExitStatus) => {
    exited = true;
    clearTimeout(hangupTimer);
    if (stream.destroyed || stream.writableEnded) return;
    stream.write(encodeExecMessage({ type: 'exit', status }));
    stream.end();
  };

  try {
    const io: ProcessIo = {
      send,
      finish,
      // The process's stdin is full: stop reading the stream, so the peer runs out of credit.
      stdinFull: (drained) => {
        stream.pause();
        drained(() => stream.resume());
      },
    };
    child = spec.pty ? await startPty(spec, spec.pty, io) : startPipes(spec, io);
  } catch (error) {
    // A shell that cannot start is the command's failure, told the way a shell tells it: 127.
    log.warn('exec could not start', { file: spec.file, error });
    send(
      {
        type: 'stderr',
        data: Buffer.from(`fleetgate-agent: cannot run ${spec.file}: ${(error as Error).message}\n`),
      },
      noop,
      noop,
    );
    finish({ code: 127 });
    return;
  }
  log.debug('exec started', { pid: child.pid, pty: spec.pty !== undefined });

  const handle = (message: ExecClientMessage) => {
    switch (message.type) {
      case 'stdin':
        child.writeStdin(message.data);
        return;
      case 'eofStdin':
        child.endStdin();
        return;
      case 'resize':
        child.resize(message.cols, message.rows);
        return;
      case 'signal': {
        const name = (message.name.startsWith('SIG') ? message.name : `SIG${message.name}`) as NodeJS.Signals;
        if (os.constants.signals[name] === undefined) {
          log.debug('exec: unknown signal ignored', { name: message.name });
          return;
        }
        child.kill(name);
        return;
      }
      default:
        return assertNever(message);
    }
  };
  stream.on('data', (chunk: Buffer) => {
    try {
      for (const message of decoder.push(chunk)) {
        // The decoder only lets client messages through (`from: 'client'`).
        handle(message as ExecClientMessage);
      }
    } catch (error) {
      stream.destroy(new StreamError(StreamErrorCode.internal, (error as Error).message));
    }
  });
  // The client ended its side: no more input. (With a pty this is ignored, as a terminal has no EOF.)
  stream.on('end', () => child.endStdin());
  stream.on('error', () => {});

  stream.on('close', () => {
    if (exited) return;
    // The person went away (reset, connection lost): hang up as a closing terminal does, then insist.
    child.kill('SIGHUP');
    hangupTimer = setTimeout(() => {
      if (!exited) child.kill('SIGKILL');
    }, 5000);
    hangupTimer.unref();
  });
}

type Send = (message: Parameters<typeof encodeExecMessage>[0], pause: () => void, resume: () => void) => void;

/** How a started process reports back to `runProcess`. */
interface ProcessIo {
  /** Sends output; calls `pause` when the stream is full and `resume` once it drained. */
  send: Send;
  /** The process ended (after its output was sent). */
  finish: (status: ExecExitStatus) => void;
  /** The process's stdin buffer is full; call the callback given to `drained` when it drained. */
  stdinFull: (drained: (callback: () => void) => void) => void;
}

function startPipes(spec: ProcessSpec, { send, finish, stdinFull }: ProcessIo): RunningProcess {
  const child = spawn(spec.file, spec.args, {
    env: spec.env,
    cwd: spec.cwd,
    stdio: ['pipe', 'pipe', 'pipe'],
    // Its own process group: a signal reaches the command's children too (`sh -c 'sleep 100'`).
    detached: true,
  });
  const pause = () => {
    child.stdout?.pause();
    child.stderr?.pause();
  };
  const resume = () => {
    child.stdout?.resume();
    child.stderr?.resume();
  };
  child.stdout?.on('data', (data: Buffer) => send({ type: 'stdout', data }, pause, resume));
  child.stderr?.on('data', (data: Buffer) => send({ type: 'stderr', data }, pause, resume));
  // EPIPE when the process exits without reading its input: nothing to tell anyone.
  child.stdin?.on('error', () => {});
  let spawnError: Error | undefined;
  child.on('error', (error) => {
    spawnError = error;
  });
  // 'close' (not 'exit'): after stdout and stderr are drained, so `exit` is the last message.
  child.on('close', (code, signal) => {
    if (spawnError && code === null && signal === null) {
      send(
        {
          type: 'stderr',
          data: Buffer.from(`fleetgate-agent: cannot run ${spec.file}: ${spawnError.message}\n`),
        },
        noop,
        noop,
      );
      finish({ code: 127 });
      return;
    }
    finish(signal ? { signal: signal.replace(/^SIG/, '') } : { code: code ?? 0 });
  });
  return {
    pid: child.pid,
    writeStdin: (data) => {
      if (child.stdin && !child.stdin.destroyed && !child.stdin.writableEnded) {
        if (!child.stdin.write(data)) stdinFull((callback) => child.stdin?.once('drain', callback));
      }
    },
    endStdin: () => {
      if (child.stdin && !child.stdin.writableEnded) child.stdin.end();
    },
    resize: () => {
      // No terminal, no size.
    },
    kill: (signal) => signalGroup(child.pid, signal),
  };
}

/** How long a terminal's exit waits for the rest of its output at most (see `startPty`). */
const OUTPUT_DRAIN_MS = 1000;

async function startPty(
  spec: ProcessSpec,
  size: { term: string; cols: number; rows: number },
  { send, finish }: ProcessIo,
): Promise<RunningProcess> {
  // Loaded on first use: a device that never opens a shell does not pay for the native module.
  const nodePty = await import('node-pty');
  const terminal = nodePty.spawn(spec.file, spec.args, {
    name: size.term,
    cols: size.cols,
    rows: size.rows,
    cwd: spec.cwd,
    env: spec.env as Record<string, string>,
    // Bytes, not strings: output split inside a UTF-8 sequence must not be mangled.
    encoding: null,
  });
  const pause = () => terminal.pause();
  const resume = () => terminal.resume();
  terminal.onData((data: string | Buffer) =>
    send({ type: 'stdout', data: Buffer.from(data) }, pause, resume),
  );
  // node-pty may report the exit before the last output is read from the terminal (seen: a command's last line
  // lost under load): the exit is told once the terminal's output has ended (its socket closes at end of output),
  // or after a second at most, since a background process may keep the terminal open.
  const output = (
    terminal as unknown as { _socket?: { destroyed: boolean; once(e: 'close', f: () => void): void } }
  )._socket;
  terminal.onExit(({ exitCode, signal }) => {
    const name = signal ? signalName(signal) : undefined;
    const status = name ? { signal: name } : { code: exitCode & 0xff };
    let told = false;
    const tell = () => {
      if (told) return;
      told = true;
      clearTimeout(timer);
      finish(status);
    };
    const timer = setTimeout(tell, OUTPUT_DRAIN_MS);
    if (!output || output.destroyed) tell();
    else output.once('close', tell);
  });
  return {
    pid: terminal.pid,
    writeStdin: (data) => terminal.write(Buffer.from(data)),
    endStdin: () => {
      // A terminal has no end of input; a client that wants one sends ^D as stdin.
    },
    resize: (cols, rows) => terminal.resize(cols, rows),
    // The shell leads its own session and process group: signal the group, as a terminal's ^C does.
    kill: (signal) => signalGroup(terminal.pid, signal),
  };
}

/** Signals the process group led by `pid`, falling back to the process alone. */
function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

function signalName(signal: number): string | undefined {
  for (const [name, number] of Object.entries(os.constants.signals)) {
    if (number === signal) return name.replace(/^SIG/, '');
  }
  return undefined;
}

function loginShell(): string {
  try {
    const shell = os.userInfo().shell;
    if (shell && shell !== '/usr/sbin/nologin' && shell !== '/bin/false') return shell;
  } catch {
    // No passwd entry (a container with a numeric uid).
  }
  return '/bin/sh';
}

function homeDir(): string {
  try {
    return os.userInfo().homedir || '/';
  } catch {
    return '/';
  }
}

function noop(): void {}

function assertNever(value: never): never {
  throw new Error(`unreachable: ${JSON.stringify(value)}`);
}
