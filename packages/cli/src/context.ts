import type { Command } from 'commander';
import { ApiClient, type RequestOptions } from './client.ts';
import { type Connection, readCredentials, resolveConnection } from './config.ts';
import { CliError } from './errors.ts';
import { Output, type TextSink } from './output.ts';
import type { InputStream } from './prompt.ts';

/**
 * Everything a command touches outside itself. `fleetgate` passes the process's streams and environment;
 * tests pass buffers, a fake environment (with `FLEETGATE_CONFIG_DIR`) and, if they like, a fake `fetch`.
 */
export interface CliIo {
  stdout: TextSink;
  stderr: TextSink;
  stdin: InputStream;
  env: NodeJS.ProcessEnv;
  /** The HTTP client; default Node's global `fetch`. */
  fetch?: typeof fetch;
}

/** The options every command takes (declared once, on the program). */
export interface GlobalOptions {
  server?: string;
  token?: string;
  json?: boolean;
}

export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
}

/** What one running command needs: its options, where to print, and a client for the API. */
export class CommandContext {
  readonly io: CliIo;
  readonly globals: GlobalOptions;
  readonly out: Output;

  constructor(io: CliIo, command: Command) {
    this.io = io;
    this.globals = command.optsWithGlobals<GlobalOptions>();
    this.out = new Output(io.stdout, { json: this.globals.json });
  }

  /** Server and token from flags, environment, then the saved login (see `resolveConnection`). */
  async connection(): Promise<Connection> {
    return resolveConnection({
      flags: this.globals,
      env: this.io.env,
      saved: await readCredentials(this.io.env),
    });
  }

  /** A client for a signed-in command; fails with how to sign in when there is no server or token. */
  async client(): Promise<ApiClient> {
    const { server, token } = await this.connection();
    if (!server) throw new CliError('not logged in: run `fleetgate login --server URL`');
    if (!token) throw new CliError(`not logged in to ${server}: run \`fleetgate login --server ${server}\``);
    return this.clientFor(server, token);
  }

  /** One API call as the signed-in user: `ctx.api<Device>('GET', apiPath\`/devices/${ref}\`)`. */
  async api<T = unknown>(method: string, path: string, options?: RequestOptions): Promise<T> {
    return (await this.client()).request<T>(method, path, options);
  }

  /** A client for `server`; `timeoutMs` as in `ApiClientOptions` (default 30 s). */
  clientFor(server: string, token?: string, options: { timeoutMs?: number } = {}): ApiClient {
    return new ApiClient({ server, token, fetch: this.io.fetch, timeoutMs: options.timeoutMs });
  }
}
