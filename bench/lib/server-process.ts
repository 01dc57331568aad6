/**
 * The server under test, shared by the benchmarks: fleetgate in a child process of its own (server-child.mjs), so
 * that the server and the load generator each have an event loop and a core (in one process they would share a
 * thread and the figures would measure the load generator as much as fleetgate). The child runs the server from the
 * CLI's build, as `fleetgate serve` does (made first here when it is stale), or from the TypeScript sources through
 * tsx with FLEETGATE_FROM_SOURCE=1 in the bench's environment.
 */
import { fork, spawnSync } from 'node:child_process';
import path from 'node:path';
import type { StartOptions } from '@fleetgate/server';
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

const CHILD = path.join(import.meta.dirname, 'server-child.mjs');
const BUILD_SCRIPT = path.resolve(import.meta.dirname, '../../packages/cli/scripts/build.mjs');

/** Makes the CLI's build when it is missing or older than a source, as `fleetgate` does before it runs. */
function ensureBuilt(): void {
  if (process.env.FLEETGATE_FROM_SOURCE === '1') return;
  const build = spawnSync(process.execPath, [BUILD_SCRIPT, '--if-stale', '--quiet'], { encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`the CLI's build (${BUILD_SCRIPT}) failed:\n${build.stderr}`);
}

export function startServerProcess(
  flags: Flags,
  options: { cpuProfDir?: string | undefined } = {},
): Promise<ServerProcess> {
  ensureBuilt();
  const child = fork(CHILD, [JSON.stringify(flags)], {
    // Not this process's execArgv, which carries tsx's loader: the child loads it only to run the sources.
    execArgv: [
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
