/**
 * The server under test, shared by the benchmarks: fleetgate in a child process of its own, so that the
 * server and the load generator each have an event loop and a core (in one process they would share a thread
 * and the figures would measure the load generator as much as fleetgate).
 *
 * Forked with `serve <flags>`, this file is that child: it runs fleetgate with `flags` and no environment (a
 * developer's FLEETGATE_* variables cannot change the run), sends its URL, answers `'cpu'` with its CPU time
 * and `'memory'` with its memory (after a full garbage collection), and closes when the parent disconnects.
 * A normal exit lets `--cpu-prof` write its profile.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type StartOptions, startServer } from '@fleetgate/server';
import { CLI_BIN, nodeFlagsOf } from './bins.ts';

/** `fleetgate serve` flags: the server's configuration. */
export type Flags = NonNullable<StartOptions['flags']>;

/** The first owner every benchmark's server is started with (FLEETGATE_ADMIN_EMAIL / _PASSWORD). */
export const ADMIN_EMAIL = 'admin@bench.fleetgate.test';
export const ADMIN_PASSWORD = 'bench-password-not-secret';

export interface MemoryFigures {
  rssBytes: number;
  heapUsedBytes: number;
  externalBytes: number;
}

export interface ServerProcess {
  url: string;
  /** The SSH gateway's port (the one it bound with `sshPort: 0`). */
  sshPort: number;
  pid: number;
  /** The server process's CPU time so far (user + system), in microseconds. */
  cpuMicros(): Promise<number>;
  /** The server's memory after a full garbage collection. */
  memory(): Promise<MemoryFigures>;
  /** Asks the server to close (kills it after 15 s) and waits for the process to end. */
  stop(): Promise<void>;
  /** Ends the process at once, as a crash or `kill -9` would. */
  kill(): Promise<void>;
}

async function serve(flags: Flags): Promise<void> {
  const server = await startServer({ flags, env: {}, print: () => {} });
  let closing = false;
  const close = async () => {
    if (closing) return;
    closing = true;
    await server.close();
    process.exit(0);
  };
  process.on('disconnect', close);
  process.on('SIGINT', close);
  process.on('message', (message) => {
    if (message === 'cpu') {
      const { user, system } = process.cpuUsage();
      process.send!({ cpuMicros: user + system });
    } else if (message === 'memory') {
      globalThis.gc?.();
      const { rss, heapUsed, external } = process.memoryUsage();
      process.send!({ memory: { rssBytes: rss, heapUsedBytes: heapUsed, externalBytes: external } });
    }
  });
  process.send!({ url: server.url, sshPort: server.sshPort });
}

export function startServerProcess(
  flags: Flags,
  options: { cpuProfDir?: string | undefined } = {},
): Promise<ServerProcess> {
  const child = fork(fileURLToPath(import.meta.url), ['serve', JSON.stringify(flags)], {
    // process.execArgv carries tsx's loader, so the child runs TypeScript too.
    execArgv: [
      ...process.execArgv,
      '--expose-gc',
      // As `fleetgate serve` runs: with the Node flags of the CLI's first line.
      ...nodeFlagsOf(CLI_BIN),
      ...(options.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`] : []),
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const running = () => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    if (!running()) return;
    if (child.connected) child.disconnect();
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  const kill = async () => {
    if (!running()) return;
    child.kill('SIGKILL');
    await exited;
  };
  function ask<T>(question: string, key: string): Promise<T> {
    return new Promise<T>((resolve) => {
      const onMessage = (message: Record<string, unknown>) => {
        if (!(key in message)) return;
        child.off('message', onMessage);
        resolve(message[key] as T);
      };
      child.on('message', onMessage);
      child.send(question);
    });
  }
  return new Promise((resolve, reject) => {
    child.once('message', (message: { url: string; sshPort: number }) =>
      resolve({
        url: message.url,
        sshPort: message.sshPort,
        pid: child.pid!,
        cpuMicros: () => ask<number>('cpu', 'cpuMicros'),
        memory: () => ask<MemoryFigures>('memory', 'memory'),
        stop,
        kill,
      }),
    );
    child.once('exit', (code) =>
      reject(new Error(`the server process ended before listening (code ${code})`)),
    );
  });
}

/**
 * One API call during set-up; throws with the answer on a non-2xx status. Set-up reads answers loosely and
 * checks what it uses, hence `any`.
 */
export async function api(
  base: string,
  method: string,
  url: string,
  token?: string,
  body?: unknown,
  // biome-ignore lint/suspicious/noExplicitAny: see above.
): Promise<any> {
  const response = await fetch(base + url, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${url} answered ${response.status}: ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** Signs in as the bench admin (`ADMIN_EMAIL`); answers the session token. */
export async function signInAsAdmin(base: string): Promise<string> {
  const { token } = await api(base, 'POST', '/api/v1/auth/login', undefined, {
    email: ADMIN_EMAIL,
    password: ADMIN_PASSWORD,
  });
  return token as string;
}

/** A command-line integer option, checked. */
export function wholeNumber(name: string, text: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, not ${text}`);
  return n;
}

/** `a / b` as a ratio for a table: two decimals from 1 up, two significant digits below. */
export function ratio(value: number, baseline: number): string {
  const r = value / baseline;
  return `${r >= 1 ? r.toFixed(2) : r.toPrecision(2)}×`;
}

if (process.argv[2] === 'serve' && process.argv[1] === fileURLToPath(import.meta.url)) {
  await serve(JSON.parse(process.argv[3]!) as Flags);
}
