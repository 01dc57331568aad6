import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { dropPostgresSchema } from '@fleetgate/server';

/**
 * fleetgate's programs as their own processes, as on real machines: `fleetgate serve` on a data directory (and,
 * with DATABASE_URL, a PostgreSQL schema) that outlives any one server process, `fleetgate-agent`, the CLI.
 */
/** The `fleetgate` people run: it runs the CLI's build (packages/cli/dist), making it first when it is stale. */
export const cliBin = path.resolve(import.meta.dirname, '../bin/fleetgate.js');
export const agentBin = path.resolve(import.meta.dirname, '../../agent/bin/fleetgate-agent.js');

export interface Running {
  child: ChildProcess;
  /** What the process printed so far, standard output and error together. */
  output: () => string;
}

/** One test file's processes and their temporary directory (their HOME); `cleanUp` kills what still runs. */
export class Processes {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-processes-'));
  readonly databaseUrl = process.env.DATABASE_URL;
  /** The PostgreSQL schema of every server this file starts: a restarted server finds its data again. */
  readonly schema = `fg_processes_${randomBytes(4).toString('hex')}`;
  private readonly children: ChildProcess[] = [];

  /** Runs `node command ...args`, with only PATH and HOME (no FLEETGATE_* of the developer's shell) and `env`. */
  start(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Running {
    const child = spawn(process.execPath, [command, ...args], {
      env: { PATH: process.env.PATH, HOME: this.dir, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.children.push(child);
    let output = '';
    child.stdout!.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr!.on('data', (chunk) => {
      output += chunk;
    });
    return { child, output: () => output };
  }

  /** Kills `child` (another program this file started) with the others at `cleanUp`. */
  adopt(child: ChildProcess): void {
    this.children.push(child);
  }

  /**
   * `fleetgate serve` on `port`, with `<dir>/server` as its data directory (and this file's schema), logging
   * warnings and errors only. Every call starts on the same data: a restart.
   */
  serve(
    port: number,
    admin: { email: string; password: string },
    env: NodeJS.ProcessEnv = {},
    /** The CONNECT proxy's port; default 0 (any free one). */
    proxyPort = 0,
  ): Running {
    return this.start(
      cliBin,
      [
        'serve',
        '--data-dir',
        path.join(this.dir, 'server'),
        '--port',
        String(port),
        '--proxy-port',
        String(proxyPort),
        '--ssh-port',
        '0',
        '--admin-email',
        admin.email,
        '--admin-password',
        admin.password,
        '--log-level',
        'warn',
        ...(this.databaseUrl ? ['--database-url', this.databaseUrl, '--db-schema', this.schema] : []),
      ],
      env,
    );
  }

  async cleanUp(): Promise<void> {
    for (const child of this.children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (this.databaseUrl) await dropPostgresSchema(this.databaseUrl, this.schema).catch(() => {});
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Asks `probe` every 100 ms until it answers something other than undefined or false (errors count as no). */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await Promise.resolve()
      .then(probe)
      .catch(() => undefined);
    if (value !== undefined && value !== false) return value as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A TCP port free on 127.0.0.1 right now (for a server that must come back on the same one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

// biome-ignore lint/suspicious/noExplicitAny: tests read answers loosely and check what they use.
type LooseJson = any;

/** One call to a server's REST API at `base`, with `token` as the bearer if given: the JSON answer, or throws. */
export async function callApi(
  base: string,
  token: string | undefined,
  method: string,
  url: string,
  body?: unknown,
): Promise<LooseJson> {
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
