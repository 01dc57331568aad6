import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { CliError } from './errors.ts';

/** What `fleetgate login` saves for one server: the server, a session token for it, and who signed in. */
export interface Credentials {
  server: string;
  token: string;
  email: string;
  /**
   * PEM of the CA certificate(s) the server's certificate is checked against, besides the system's: given with
   * `login --ca FILE`, or trusted on first use. Absent for plain HTTP and publicly trusted servers.
   */
  ca?: string;
  /** The organization commands use when `--org` is left out (id, slug or name): `fleetgate orgs use`. */
  org?: string;
}

/**
 * The credentials file: one profile per server signed in to, and the one commands use when neither `--profile`
 * nor `FLEETGATE_PROFILE` says otherwise. A file of the first format (one login) reads as the profile `default`.
 */
export interface Profiles {
  current: string | undefined;
  profiles: Record<string, Credentials>;
}

/** The profile used when none was ever named. */
export const DEFAULT_PROFILE = 'default';

/** Where the server and token of a command come from, strongest first. */
export type CredentialSource = 'flag' | 'env' | 'file';

export interface Connection {
  /** Normalized base URL, without `/api/v1` and without a trailing slash. */
  server?: string;
  token?: string;
  tokenSource?: CredentialSource;
  /** The CA certificates saved with the login to this server (see `Credentials.ca`). */
  ca?: string;
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

/** Every saved profile; none when there is no file. A damaged file is an error the user must fix. */
export async function readProfiles(env: NodeJS.ProcessEnv): Promise<Profiles> {
  const file = credentialsFile(env);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (isNodeError(error) && error.code === 'ENOENT') return { current: undefined, profiles: {} };
    throw new CliError(`cannot read ${file}: ${describe(error)}`, { cause: error });
  }
  const saved = parseProfiles(text);
  if (!saved) {
    throw new CliError(`${file} is damaged: run \`fleetgate login --server URL\` again`);
  }
  return saved;
}

/**
 * Saves every profile readable by its owner only: the directory is created 0700, and the file is written 0600
 * to a temporary name and renamed, so it is never visible with looser permissions or half written.
 */
export async function saveProfiles(env: NodeJS.ProcessEnv, saved: Profiles): Promise<string> {
  const dir = configDir(env);
  const file = credentialsFile(env);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  // `mode` only applies to a new file: clear a leftover of a crashed run and insist on creating it.
  await rm(temporary, { force: true });
  await writeFile(temporary, `${JSON.stringify(saved, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  await rename(temporary, file);
  return file;
}

/** The profile a command uses: `--profile`, then `FLEETGATE_PROFILE`, then the current one, then `default`. */
export function profileName(flag: string | undefined, env: NodeJS.ProcessEnv, saved: Profiles): string {
  return nonEmpty(flag) ?? nonEmpty(env.FLEETGATE_PROFILE) ?? saved.current ?? DEFAULT_PROFILE;
}

/** Profile names are typed in commands and shown in lists: letters, digits and `._:@-`. */
export function checkProfileName(name: string): string {
  if (!/^[A-Za-z0-9._:@-]{1,64}$/.test(name)) {
    throw new CliError(`invalid profile name "${name}": use letters, digits and . _ : @ - (at most 64)`);
  }
  return name;
}

/** A profile name for a server signed in to without `--profile`: its host, and its port when it has one. */
export function profileNameFor(server: string): string {
  return new URL(server).host.replace(/[^A-Za-z0-9._:@-]/g, '-');
}

/** The saved login of `profile` (default: the current profile), or undefined when there is none. */
export async function readCredentials(
  env: NodeJS.ProcessEnv,
  profile?: string,
): Promise<Credentials | undefined> {
  const saved = await readProfiles(env);
  return saved.profiles[profile ?? profileName(undefined, env, saved)];
}

/** Saves `credentials` as `profile` (default: the current profile), which becomes the current one. */
export async function saveCredentials(
  env: NodeJS.ProcessEnv,
  credentials: Credentials,
  profile?: string,
): Promise<string> {
  // A damaged file is replaced: signing in again is what its error message asks for.
  const saved = await readProfiles(env).catch((): Profiles => ({ current: undefined, profiles: {} }));
  const name = profile ?? profileName(undefined, env, saved);
  return saveProfiles(env, { current: name, profiles: { ...saved.profiles, [name]: credentials } });
}

/** Forgets the saved login of `profile` (default: the current one); true when there was one. */
export async function removeCredentials(env: NodeJS.ProcessEnv, profile?: string): Promise<boolean> {
  const saved = await readProfiles(env);
  const name = profile ?? profileName(undefined, env, saved);
  if (!saved.profiles[name]) return false;
  const { [name]: _, ...rest } = saved.profiles;
  if (!Object.keys(rest).length) {
    const file = credentialsFile(env);
    try {
      await rm(file);
    } catch (error) {
      if (!(isNodeError(error) && error.code === 'ENOENT')) {
        throw new CliError(`cannot remove ${file}: ${describe(error)}`, { cause: error });
      }
    }
    return true;
  }
  // The current profile gone, none is current: commands then say to pick one rather than guess.
  await saveProfiles(env, { current: saved.current === name ? undefined : saved.current, profiles: rest });
  return true;
}

/**
 * The name of the saved login a command uses. A named profile (`--profile`, `FLEETGATE_PROFILE`) is used as it
 * is; otherwise, when `--server`/`FLEETGATE_SERVER` names a server, the profile signed in to that server (so its
 * token and CA go with it), else the current profile.
 */
export function savedProfileFor(
  sources: { flags: { server?: string; profile?: string }; env: NodeJS.ProcessEnv },
  saved: Profiles,
): string {
  const { flags, env } = sources;
  const named = profileName(flags.profile, env, saved);
  if (nonEmpty(flags.profile) || nonEmpty(env.FLEETGATE_PROFILE)) return named;
  const serverText = nonEmpty(flags.server) ?? nonEmpty(env.FLEETGATE_SERVER);
  if (serverText === undefined) return named;
  const server = normalizeServer(serverText);
  const current = saved.profiles[named];
  if (current && normalizeServer(current.server) === server) return named;
  const other = Object.entries(saved.profiles).find(([, login]) => normalizeServer(login.server) === server);
  return other?.[0] ?? named;
}

/** The saved login `savedProfileFor` picks, if there is one. */
export function savedLoginFor(
  sources: { flags: { server?: string; profile?: string }; env: NodeJS.ProcessEnv },
  saved: Profiles,
): Credentials | undefined {
  return saved.profiles[savedProfileFor(sources, saved)];
}

/**
 * The profile `fleetgate login` saves into: the one named (`--profile`, `FLEETGATE_PROFILE`); else the current
 * one or another already signed in to the same server; else `default` for a first login; else a new profile
 * named after the server, so signing in to a second server never replaces the first.
 */
export function profileForLogin(named: string | undefined, server: string, saved: Profiles): string {
  if (nonEmpty(named)) return checkProfileName(named!.trim());
  const sameServer = (name: string) => {
    const login = saved.profiles[name];
    return login !== undefined && normalizeServer(login.server) === server;
  };
  if (saved.current !== undefined && sameServer(saved.current)) return saved.current;
  const existing = Object.keys(saved.profiles).find(sameServer);
  if (existing) return existing;
  if (!Object.keys(saved.profiles).length) return saved.current ?? DEFAULT_PROFILE;
  const base = profileNameFor(server);
  let name = base;
  for (let n = 2; saved.profiles[name]; n++) name = `${base}-${n}`;
  return name;
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
  const sameServer = saved && server !== undefined && normalizeServer(saved.server) === server;
  const ca = sameServer && saved.ca ? { ca: saved.ca } : {};
  const flagToken = nonEmpty(flags.token);
  if (flagToken) return { server, token: flagToken, tokenSource: 'flag', ...ca };
  const envToken = nonEmpty(env.FLEETGATE_TOKEN);
  if (envToken) return { server, token: envToken, tokenSource: 'env', ...ca };
  if (sameServer) return { server, token: saved.token, tokenSource: 'file', ...ca };
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

function parseProfiles(text: string): Profiles | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  // The first format: one login, no profiles.
  if (!('profiles' in record)) {
    const login = credentialsOf(record);
    return login ? { current: DEFAULT_PROFILE, profiles: { [DEFAULT_PROFILE]: login } } : undefined;
  }
  if (typeof record.profiles !== 'object' || record.profiles === null) return undefined;
  const profiles: Record<string, Credentials> = {};
  for (const [name, entry] of Object.entries(record.profiles as Record<string, unknown>)) {
    const login =
      typeof entry === 'object' && entry !== null
        ? credentialsOf(entry as Record<string, unknown>)
        : undefined;
    if (!login) return undefined;
    profiles[name] = login;
  }
  return { current: typeof record.current === 'string' ? record.current : undefined, profiles };
}

function credentialsOf(value: Record<string, unknown>): Credentials | undefined {
  const { server, token, email, ca, org } = value;
  if (typeof server !== 'string' || typeof token !== 'string') return undefined;
  return {
    server,
    token,
    email: typeof email === 'string' ? email : '',
    ...(typeof ca === 'string' ? { ca } : {}),
    ...(typeof org === 'string' ? { org } : {}),
  };
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
