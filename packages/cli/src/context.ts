import type { Command } from 'commander';
import type { Fleet, Org, Page } from './api.ts';
import { isId } from './arguments.ts';
import { ApiClient, apiPath, type RequestOptions } from './client.ts';
import {
  type Connection,
  type Profiles,
  profileName,
  readProfiles,
  resolveConnection,
  savedLoginFor,
  savedProfileFor,
} from './config.ts';
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
  profile?: string;
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
  #profiles: Promise<Profiles> | undefined;

  constructor(io: CliIo, command: Command) {
    this.io = io;
    this.globals = command.optsWithGlobals<GlobalOptions>();
    this.out = new Output(io.stdout, { json: this.globals.json });
  }

  /** Every saved profile (read once per command). */
  async profiles(): Promise<Profiles> {
    this.#profiles ??= readProfiles(this.io.env);
    return this.#profiles;
  }

  /** The profile this command uses: `--profile`, `FLEETGATE_PROFILE`, then the current one. */
  async profileName(): Promise<string> {
    return profileName(this.globals.profile, this.io.env, await this.profiles());
  }

  /** The name of the saved login this command uses (see `savedProfileFor`). */
  async savedProfileName(): Promise<string> {
    return savedProfileFor({ flags: this.globals, env: this.io.env }, await this.profiles());
  }

  /**
   * Server, token and CA from flags, environment, then the saved login of the profile (see `savedLoginFor`
   * and `resolveConnection`).
   */
  async connection(): Promise<Connection> {
    const saved = savedLoginFor({ flags: this.globals, env: this.io.env }, await this.profiles());
    return resolveConnection({ flags: this.globals, env: this.io.env, saved });
  }

  /** A client for a signed-in command; fails with how to sign in when there is no server or token. */
  async client(): Promise<ApiClient> {
    const { server, token, ca } = await this.connection();
    if (!server) throw new CliError(await this.#notLoggedIn());
    if (!token) throw new CliError(`not logged in to ${server}: run \`fleetgate login --server ${server}\``);
    return this.clientFor(server, token, { ca });
  }

  async #notLoggedIn(): Promise<string> {
    const saved = await this.profiles();
    const names = Object.keys(saved.profiles);
    const wanted = this.globals.profile ?? this.io.env.FLEETGATE_PROFILE;
    if (wanted)
      return `no profile "${wanted}" (saved: ${names.join(', ') || 'none'}): run \`fleetgate login --server URL --profile ${wanted}\``;
    if (names.length)
      return `no current profile: pick one with \`fleetgate context use <${names.join('|')}>\``;
    return 'not logged in: run `fleetgate login --server URL`';
  }

  /**
   * The id of the fleet a person named (`--fleet lobby` or `--fleet 3`): an id as it is, a name resolved by the
   * server (`GET /fleets/:name`, which answers 409 with the candidates when the name is ambiguous).
   */
  async fleetId(ref: string): Promise<number> {
    if (isId(ref)) return Number(ref);
    return (await this.api<Fleet>('GET', apiPath`/fleets/${ref}`)).id;
  }

  /** `fleetId` for an optional filter: undefined stays undefined. */
  async optionalFleetId(ref: string | undefined): Promise<number | undefined> {
    return ref === undefined ? undefined : this.fleetId(ref);
  }

  /**
   * The id of the organization a command acts in: `--org` (id, slug or name, resolved by the server), else
   * the profile's default (`fleetgate orgs use`), else the person's only organization. Several and no default
   * is an error that says how to choose.
   */
  async orgId(ref: string | undefined): Promise<number> {
    const named = ref ?? savedLoginFor({ flags: this.globals, env: this.io.env }, await this.profiles())?.org;
    if (named !== undefined) {
      if (isId(named)) return Number(named);
      return (await this.api<Org>('GET', apiPath`/orgs/${named}`)).id;
    }
    const mine = await this.api<Page<Org>>('GET', '/orgs', { query: { limit: 500 } });
    if (mine.items.length === 1) return mine.items[0]!.id;
    if (!mine.items.length) {
      throw new CliError('you are in no organization: create one with `fleetgate orgs create NAME`');
    }
    const slugs = mine.items.map((org) => org.slug).join(', ');
    throw new CliError(
      `which organization? you are in ${mine.items.length} (${slugs}): pass --org, or set a default with \`fleetgate orgs use <org>\``,
    );
  }

  /** An organization filter (`devices ls --org acme`): the id of the one named, or undefined for all. */
  async optionalOrgId(ref: string | undefined): Promise<number | undefined> {
    if (ref === undefined) return undefined;
    return this.orgId(ref);
  }

  /** One API call as the signed-in user: `ctx.api<Device>('GET', apiPath\`/devices/${ref}\`)`. */
  async api<T = unknown>(method: string, path: string, options?: RequestOptions): Promise<T> {
    return (await this.client()).request<T>(method, path, options);
  }

  /** A client for `server`; `timeoutMs` and `ca` as in `ApiClientOptions` (default 30 s, the system's CAs). */
  clientFor(
    server: string,
    token?: string,
    options: { timeoutMs?: number; ca?: string | undefined } = {},
  ): ApiClient {
    return new ApiClient({
      server,
      token,
      fetch: this.io.fetch,
      timeoutMs: options.timeoutMs,
      ca: options.ca,
    });
  }
}
