import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  startTestServer,
  type TestServer,
} from '@fleetgate/server/test/harness.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliBin } from './processes.ts';

/**
 * The CLI as people use it (issue 21), each command run as the real `bin/fleetgate.js` child process against a
 * real server on 127.0.0.1 (SQLite, or PostgreSQL with DATABASE_URL): devices, fleets and organizations named
 * by name wherever an id is taken, and every setting reachable from the CLI.
 */

/** Each test runs several CLI processes (about a second each, more on a loaded machine). */
const PROCESSES_TIMEOUT_MS = 120_000;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

let server: TestServer;
let url: string;
let home: string;

beforeAll(async () => {
  server = await startTestServer();
  await server.app.listen({ port: 0, host: '127.0.0.1' });
  const address = server.app.server.address();
  if (typeof address !== 'object' || address === null) throw new Error('the test server does not listen');
  url = `http://127.0.0.1:${address.port}`;
  home = await mkdtemp(path.join(tmpdir(), 'fleetgate-names-'));
  const login = await fleetgate([
    'login',
    '--server',
    url,
    '--email',
    ADMIN_EMAIL,
    '--password',
    ADMIN_PASSWORD,
  ]);
  expect(login.code, login.stderr).toBe(0);
}, PROCESSES_TIMEOUT_MS);

afterAll(async () => {
  await server?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

/** `fleetgate ...args` as its own process, with only PATH and a HOME of its own (its saved login). */
function fleetgate(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliBin, ...args],
      { timeout: 30_000, env: { PATH: process.env.PATH, HOME: home, ...env } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The JSON a command printed with --json; fails the test with its standard error otherwise. */
// biome-ignore lint/suspicious/noExplicitAny: tests read answers loosely and check what they use.
async function json(args: readonly string[]): Promise<any> {
  const result = await fleetgate([...args, '--json']);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout);
}

/** A failure as users must see it: non-zero exit, nothing on stdout, one `fleetgate: …` line. */
function failedWith(result: Result, reason: RegExp): void {
  expect(result.code, result.stdout).not.toBe(0);
  expect(result.stdout).toBe('');
  expect(result.stderr).toMatch(/^fleetgate: [^\n]+\n$/);
  expect(result.stderr).toMatch(reason);
}

describe('names wherever an id is taken', { timeout: PROCESSES_TIMEOUT_MS }, () => {
  it('creates a fleet without --org when I am in one organization, and names it by name after', async () => {
    const fleet = await json(['fleets', 'create', 'lobby', '--device-type', 'generic-amd64']);
    expect(fleet).toMatchObject({ name: 'lobby', orgId: 1 });
    expect((await json(['fleets', 'show', 'lobby'])).id).toBe(fleet.id);
    const device = await json(['devices', 'create', '--fleet', 'lobby', '--name', 'kiosk-17']);
    expect(device).toMatchObject({ fleetId: fleet.id, name: 'kiosk-17' });
    const listed = await json(['devices', 'ls', '--fleet', 'lobby', '--org', 'default']);
    expect(listed.items.map((d: { name: string }) => d.name)).toEqual(['kiosk-17']);
  });

  it('shows, tags, moves and deletes a device by its name, uuid prefix or uuid', async () => {
    await json(['fleets', 'create', 'hall', '--org', 'Default', '--device-type', 'generic-amd64']);
    const device = await json(['devices', 'show', 'kiosk-17']);
    expect((await json(['devices', 'show', device.uuid.slice(0, 8)])).id).toBe(device.id);
    const tagged = await fleetgate(['devices', 'tag', 'kiosk-17', 'site', 'paris']);
    expect(tagged.code, tagged.stderr).toBe(0);
    expect((await json(['devices', 'show', device.uuid])).tags).toEqual({ site: 'paris' });
    const moved = await json(['devices', 'move', 'kiosk-17', '--fleet', 'hall']);
    expect(moved.fleetName).toBe('hall');
    const removed = await fleetgate(['devices', 'rm', 'kiosk-17', '--yes']);
    expect(removed).toMatchObject({ code: 0, stdout: 'deleted device kiosk-17\n' });
    failedWith(await fleetgate(['devices', 'show', 'kiosk-17']), /no device "kiosk-17" among your devices/);
  });

  it('lists the candidates of an ambiguous name and reaches each by its uuid', async () => {
    const a = await json(['devices', 'create', '--fleet', 'lobby', '--name', 'twin']);
    const b = await json(['devices', 'create', '--fleet', 'hall', '--name', 'twin']);
    const result = await fleetgate(['devices', 'show', 'twin']);
    failedWith(result, /names several of your devices/);
    expect(result.stderr).toContain(a.uuid);
    expect(result.stderr).toContain(b.uuid);
    expect((await json(['devices', 'show', b.uuid])).fleetName).toBe('hall');
  });

  it('asks which organization when I am in several and no default is set, then takes the default', async () => {
    await json(['orgs', 'create', 'Second Org', '--slug', 'second']);
    failedWith(
      await fleetgate(['fleets', 'create', 'nowhere']),
      /which organization\? you are in 2 \(default, second\): pass --org, or set a default with `fleetgate orgs use <org>`/,
    );
    expect((await json(['orgs', 'use', 'Second Org'])).org.slug).toBe('second');
    expect((await json(['fleets', 'create', 'lobby'])).orgId).toBe(
      (await json(['orgs', 'show', 'second'])).id,
    );
    // The same fleet name in two of my organizations is ambiguous by name alone.
    failedWith(await fleetgate(['fleets', 'show', 'lobby']), /names several of your fleets .*use the id/);
    failedWith(await fleetgate(['orgs', 'use', 'no-such-org']), /no organization "no-such-org"/);
    expect((await json(['orgs', 'use', '--clear'])).org).toBeNull();
  });
});

describe('every setting from the CLI', { timeout: PROCESSES_TIMEOUT_MS }, () => {
  it("shows and sets a fleet's and a device's port allow-lists, and goes back to inheriting", async () => {
    await json(['devices', 'create', '--fleet', 'hall', '--name', 'ports-kiosk']);
    expect(await json(['fleets', 'ports', 'hall'])).toEqual({ ports: [22], source: 'default' });
    expect(await json(['fleets', 'ports', 'hall', '8080', '22'])).toEqual({
      ports: [22, 8080],
      source: 'fleet',
    });
    expect(await json(['devices', 'ports', 'ports-kiosk'])).toEqual({ ports: [22, 8080], source: 'fleet' });
    const own = await fleetgate(['devices', 'ports', 'ports-kiosk', '5900']);
    expect(own).toMatchObject({
      code: 0,
      stdout: "device ports-kiosk: ports 5900 (the device's own list)\n",
    });
    expect(await json(['devices', 'ports', 'ports-kiosk', '--none'])).toEqual({
      ports: [],
      source: 'device',
    });
    expect(await json(['devices', 'ports', 'ports-kiosk', '--inherit'])).toEqual({
      ports: [22, 8080],
      source: 'fleet',
    });
    expect(await json(['fleets', 'ports', 'hall', '--inherit'])).toEqual({ ports: [22], source: 'default' });
    failedWith(await fleetgate(['devices', 'ports', 'ports-kiosk', '70000']), /"70000" is not a port/);
  });

  it("shows and sets a device's notes, from an argument or standard input, and clears them", async () => {
    const set = await fleetgate(['devices', 'notes', 'ports-kiosk', 'behind the front desk']);
    expect(set).toMatchObject({ code: 0, stdout: 'behind the front desk\n' });
    expect((await json(['devices', 'notes', 'ports-kiosk'])).notes).toBe('behind the front desk');
    const piped = await new Promise<Result>((resolve) => {
      const child = execFile(
        process.execPath,
        [cliBin, 'devices', 'notes', 'ports-kiosk', '-'],
        { timeout: 30_000, env: { PATH: process.env.PATH, HOME: home } },
        (error, stdout, stderr) => resolve({ code: error ? 1 : 0, stdout, stderr }),
      );
      child.stdin!.end('line one\nline two\n');
    });
    expect(piped).toMatchObject({ code: 0, stdout: 'line one\nline two\n' });
    expect((await json(['devices', 'notes', 'ports-kiosk', '--clear'])).notes).toBe('');
    expect((await fleetgate(['devices', 'notes', 'ports-kiosk'])).stdout).toBe(
      'device ports-kiosk has no notes\n',
    );
  });

  it("shows and sets an organization's session recording and device limit", async () => {
    expect(await json(['orgs', 'recording', '--org', 'default'])).toEqual({ orgId: 1, enabled: false });
    expect(await json(['orgs', 'recording', 'on', '--org', 'default'])).toEqual({ orgId: 1, enabled: true });
    const shown = await fleetgate(['orgs', 'recording', '--org', 'Default']);
    expect(shown.stdout).toMatch(/^organization 1 records its shell sessions/);
    const limit = await json(['orgs', 'device-limit', '100', '--org', 'default']);
    expect(limit).toMatchObject({ orgId: 1, limit: 100 });
    const text = await fleetgate(['orgs', 'device-limit', '--org', 'default']);
    expect(text.stdout).toBe(`organization 1: ${limit.accepted} devices accepted, limit 100\n`);
    expect((await json(['orgs', 'device-limit', 'unlimited', '--org', 'default'])).limit).toBeNull();
    failedWith(
      await fleetgate(['orgs', 'device-limit', 'lots', '--org', 'default']),
      /expected a count from 0/,
    );
    failedWith(
      await fleetgate(['orgs', 'recording', 'maybe', '--org', 'default']),
      /Allowed choices are on, off/,
    );
  });
});
