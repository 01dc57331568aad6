import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { CliError } from './errors.ts';

/** What `fleetgate login` saves: the server, a session token for it, and who signed in. */
export interface Credentials {
  server: string;
  token: string;
  email: string;
}

/** Where the server and token of a command come from, strongest first. */
export type CredentialSource = 'flag' | 'env' | 'file';

export interface Connection {
  /** Normalized base URL, without `/api/v1` and without a trailing slash. */
  server?: string;
  token?: string;
  tokenSource?: CredentialSource;
}

/**
 * The directory of the credentials file: `FLEETGATE_CONFIG_DIR` when set, else
 * `$XDG_CONFIG_HOME/fleetgate`, else `~/.config/fleetgate`.
 */
export function configDir(env: NodeJS.ProcessEnv): string {
  if (env.FLEETGATE_CONFIG_DIR) return path.resolve(env.FLEETGATE_CONFIG_DIR);
  const base = env.XDG_CONFIG_HOME ? path.resolve(env.XDG_CONFIG_HOME) : path.join(homedir(), '.config');
  return path.join(base, 'fleetgate');
}

export function credentialsFile(env: NodeJS.ProcessEnv): string {
  return path.join(configDir(env), 'credentials.json');
}

/** The saved login, or undefined when there is none. A damaged file is an error the user must fix. */
export async function readCredentials(env: NodeJS.ProcessEnv): Promise<Credentials | undefined> {
  const file = credentialsFile(env);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (isNodeError(error) && error.code === 'ENOENT') return undefined;
    throw new CliError(`cannot read ${file}: ${describe(error)}`, { cause: error });
  }
  const saved = parseCredentials(text);
  if (!saved) {
    throw new CliError(`${file} is damaged: run \`fleetgate login --server URL\` again`);
  }
  return saved;
}

/**
 * Saves the login readable by its owner only: the directory is created 0700, and the file is written 0600
 * to a temporary name and renamed, so it is never visible with looser permissions or half written.
 */
export async function saveCredentials(env: NodeJS.ProcessEnv, credentials: Credentials): Promise<string> {
  const dir = configDir(env);
  const file = credentialsFile(env);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  // `mode` only applies to a new file: clear a leftover of a crashed run and insist on creating it.
  await rm(temporary, { force: true });
  await writeFile(temporary, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  await rename(temporary, file);
  return file;
}

/** Forgets the saved login; true when there was one. */
export async function removeCredentials(env: NodeJS.ProcessEnv): Promise<boolean> {
  const file = credentialsFile(env);
  try {
    await rm(file);
    return true;
  } catch (error) {
    if (isNodeError(error) && error.code === 'ENOENT') return false;
    throw new CliError(`cannot remove ${file}: ${describe(error)}`, { cause: error });
  }
}

/**
 * Picks the server and token of a command: `--server`/`--token` flags, then `FLEETGATE_SERVER`/
 * `FLEETGATE_TOKEN`, then the saved login. The saved token is only used for the server it was issued by,
 * so `--server https://other` never sends it elsewhere.
 */
export function resolveConnection(sources: {
  flags: { server?: string; token?: string };
  env: NodeJS.ProcessEnv;
  saved?: Credentials;
}): Connection {
  const { flags, env, saved } = sources;
  const server = resolveServer(sources);

  const flagToken = nonEmpty(flags.token);
  if (flagToken) return { server, token: flagToken, tokenSource: 'flag' };
  const envToken = nonEmpty(env.FLEETGATE_TOKEN);
  if (envToken) return { server, token: envToken, tokenSource: 'env' };
  if (saved && server !== undefined && normalizeServer(saved.server) === server) {
    return { server, token: saved.token, tokenSource: 'file' };
  }
  return { server };
}

/** The server alone: `--server`, then `FLEETGATE_SERVER`, then the saved login's; normalized. */
export function resolveServer(sources: {
  flags: { server?: string };
  env: NodeJS.ProcessEnv;
  saved?: Credentials;
}): string | undefined {
  const text =
    nonEmpty(sources.flags.server) ?? nonEmpty(sources.env.FLEETGATE_SERVER) ?? sources.saved?.server;
  return text === undefined ? undefined : normalizeServer(text);
}

/**
 * `http://host:8080/` → `http://host:8080`. A URL without a scheme gets `http://`. The API's own base URL,
 * `http://host:8080/api/v1` (as `fleetgate serve` prints it), means the same server: the client adds
 * `/api/v1` itself. Anything but an http(s) URL without query or fragment is refused.
 */
export function normalizeServer(text: string): string {
  const trimmed = text.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new CliError(`invalid server URL "${text}": expected e.g. http://127.0.0.1:8080`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search || url.hash) {
    throw new CliError(`invalid server URL "${text}": expected e.g. http://127.0.0.1:8080`);
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '').replace(/\/api\/v1$/, '')}`;
}

function parseCredentials(text: string): Credentials | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { server, token, email } = value as Record<string, unknown>;
  if (typeof server !== 'string' || typeof token !== 'string') return undefined;
  return { server, token, email: typeof email === 'string' ? email : '' };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function isNodeError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && 'code' in error;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
