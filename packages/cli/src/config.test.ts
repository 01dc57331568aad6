import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type Credentials,
  configDir,
  credentialsFile,
  normalizeServer,
  profileForLogin,
  readCredentials,
  readProfiles,
  removeCredentials,
  resolveConnection,
  saveCredentials,
  savedLoginFor,
} from './config.ts';
import { CliError } from './errors.ts';

const saved: Credentials = { server: 'http://saved.test:8080', token: 'fgs_saved', email: 'me@example.test' };

const tempDirs: string[] = [];
afterAll(async () => {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'fleetgate-cli-config-'));
  tempDirs.push(dir);
  return dir;
}

/** The permission bits of a file or directory, e.g. 0o600. */
async function modeOf(file: string): Promise<number> {
  return (await stat(file)).mode & 0o777;
}

describe('configDir', () => {
  it('is FLEETGATE_CONFIG_DIR when set, even with XDG_CONFIG_HOME', () => {
    expect(configDir({ FLEETGATE_CONFIG_DIR: '/tmp/fg-conf', XDG_CONFIG_HOME: '/xdg' })).toBe('/tmp/fg-conf');
  });

  it('is $XDG_CONFIG_HOME/fleetgate, else ~/.config/fleetgate', () => {
    expect(configDir({ XDG_CONFIG_HOME: '/xdg' })).toBe('/xdg/fleetgate');
    expect(configDir({})).toBe(path.join(homedir(), '.config', 'fleetgate'));
    expect(credentialsFile({ XDG_CONFIG_HOME: '/xdg' })).toBe('/xdg/fleetgate/credentials.json');
  });
});

describe('resolveConnection', () => {
  const env = { FLEETGATE_SERVER: 'http://env.test', FLEETGATE_TOKEN: 'fgs_env' };

  it('prefers the flags to the environment and the environment to the saved login', () => {
    expect(
      resolveConnection({ flags: { server: 'http://flag.test', token: 'fgs_flag' }, env, saved }),
    ).toEqual({
      server: 'http://flag.test',
      token: 'fgs_flag',
      tokenSource: 'flag',
    });
    expect(resolveConnection({ flags: {}, env, saved })).toEqual({
      server: 'http://env.test',
      token: 'fgs_env',
      tokenSource: 'env',
    });
    expect(resolveConnection({ flags: {}, env: {}, saved })).toEqual({
      server: 'http://saved.test:8080',
      token: 'fgs_saved',
      tokenSource: 'file',
    });
  });

  it('resolves server and token separately: a flag token with the saved server', () => {
    expect(resolveConnection({ flags: { token: 'fgk_key' }, env: {}, saved })).toEqual({
      server: 'http://saved.test:8080',
      token: 'fgk_key',
      tokenSource: 'flag',
    });
  });

  it('never sends the saved token to another server', () => {
    expect(resolveConnection({ flags: { server: 'http://other.test' }, env: {}, saved })).toEqual({
      server: 'http://other.test',
      token: undefined,
    });
    expect(
      resolveConnection({ flags: {}, env: { FLEETGATE_SERVER: 'http://other.test' }, saved }).token,
    ).toBe(undefined);
  });

  it('uses the saved token when the server only differs in spelling', () => {
    const connection = resolveConnection({ flags: { server: 'saved.test:8080/' }, env: {}, saved });
    expect(connection).toMatchObject({ server: 'http://saved.test:8080', tokenSource: 'file' });
  });

  it('treats empty environment variables as unset', () => {
    const connection = resolveConnection({
      flags: {},
      env: { FLEETGATE_SERVER: '', FLEETGATE_TOKEN: ' ' },
      saved,
    });
    expect(connection.tokenSource).toBe('file');
  });

  it('has neither without flags, environment or saved login', () => {
    expect(resolveConnection({ flags: {}, env: {} })).toEqual({ server: undefined });
  });
});

describe('normalizeServer', () => {
  it('adds http:// and drops trailing slashes', () => {
    expect(normalizeServer('127.0.0.1:8080/')).toBe('http://127.0.0.1:8080');
    expect(normalizeServer('https://fleet.example.test/fleetgate/')).toBe(
      'https://fleet.example.test/fleetgate',
    );
  });

  it("takes the API's base URL, as `serve` prints it, for the server", () => {
    expect(normalizeServer('http://127.0.0.1:8080/api/v1')).toBe('http://127.0.0.1:8080');
    expect(normalizeServer('https://fleet.example.test/fleetgate/api/v1/')).toBe(
      'https://fleet.example.test/fleetgate',
    );
  });

  it('refuses what is not an http(s) URL', () => {
    expect(() => normalizeServer('ftp://x.test')).toThrow(CliError);
    expect(() => normalizeServer('http://x.test/?a=1')).toThrow(/invalid server URL/);
  });
});

describe('credentials file', () => {
  it('is written 0600 in a directory created 0700, and read back', async () => {
    const env = { FLEETGATE_CONFIG_DIR: path.join(await tempDir(), 'nested', 'fleetgate') };
    const file = await saveCredentials(env, saved);
    expect(file).toBe(credentialsFile(env));
    expect(await modeOf(file)).toBe(0o600);
    expect(await modeOf(configDir(env))).toBe(0o700);
    expect(await readCredentials(env)).toEqual(saved);
  });

  it('stays 0600 when it replaces a file others could read', async () => {
    const env = { FLEETGATE_CONFIG_DIR: await tempDir() };
    await writeFile(credentialsFile(env), '{}', { mode: 0o644 });
    expect(await modeOf(credentialsFile(env))).toBe(0o644);
    await saveCredentials(env, saved);
    expect(await modeOf(credentialsFile(env))).toBe(0o600);
  });

  it('is undefined when missing and an error naming the file when damaged', async () => {
    const env = { FLEETGATE_CONFIG_DIR: await tempDir() };
    expect(await readCredentials(env)).toBeUndefined();
    await writeFile(credentialsFile(env), '{"server": ');
    await expect(readCredentials(env)).rejects.toThrow(`${credentialsFile(env)} is damaged`);
  });

  it('is removed by removeCredentials, which says whether there was one', async () => {
    const env = { FLEETGATE_CONFIG_DIR: await tempDir() };
    await saveCredentials(env, saved);
    expect(await removeCredentials(env)).toBe(true);
    expect(await readCredentials(env)).toBeUndefined();
    expect(await removeCredentials(env)).toBe(false);
  });
});

describe('profiles', () => {
  const a = { server: 'http://a.test:8080', token: 'fgs_a', email: 'a@example.test' };
  const b = { server: 'https://b.test', token: 'fgs_b', email: 'b@example.test', ca: 'PEM' };

  it('reads a file of the first format (one login) as the profile "default"', async () => {
    const env = { FLEETGATE_CONFIG_DIR: await tempDir() };
    await writeFile(credentialsFile(env), JSON.stringify(a));
    expect(await readProfiles(env)).toEqual({ current: 'default', profiles: { default: a } });
    expect(await readCredentials(env)).toEqual(a);
  });

  it('saves a login as its own profile, which becomes current, and keeps the others', async () => {
    const env = { FLEETGATE_CONFIG_DIR: await tempDir() };
    await saveCredentials(env, a, 'default');
    await saveCredentials(env, b, 'b');
    expect(await readProfiles(env)).toEqual({ current: 'b', profiles: { default: a, b } });
    expect(await readCredentials(env, 'default')).toEqual(a);
    expect(await removeCredentials(env, 'b')).toBe(true);
    expect(await readProfiles(env)).toEqual({ current: undefined, profiles: { default: a } });
  });

  it('signs in to a new server as a new profile named after it, and again to a known one into its profile', () => {
    const saved = { current: 'default', profiles: { default: a } };
    expect(profileForLogin(undefined, 'https://b.test', saved)).toBe('b.test');
    expect(profileForLogin(undefined, 'http://a.test:8080', saved)).toBe('default');
    expect(profileForLogin('prod', 'https://b.test', saved)).toBe('prod');
    expect(profileForLogin(undefined, 'http://a.test:8080', { current: undefined, profiles: {} })).toBe(
      'default',
    );
    expect(() => profileForLogin('no spaces', 'https://b.test', saved)).toThrow(/invalid profile name/);
  });

  it("uses --profile, else FLEETGATE_PROFILE, else the profile of --server's server, else the current one", () => {
    const saved = { current: 'default', profiles: { default: a, b } };
    expect(savedLoginFor({ flags: {}, env: {} }, saved)).toEqual(a);
    expect(savedLoginFor({ flags: { profile: 'b' }, env: {} }, saved)).toEqual(b);
    expect(savedLoginFor({ flags: {}, env: { FLEETGATE_PROFILE: 'b' } }, saved)).toEqual(b);
    expect(savedLoginFor({ flags: { server: 'https://b.test/' }, env: {} }, saved)).toEqual(b);
    expect(resolveConnection({ flags: { server: 'https://b.test' }, env: {}, saved: b })).toEqual({
      server: 'https://b.test',
      token: 'fgs_b',
      tokenSource: 'file',
      ca: 'PEM',
    });
  });
});
