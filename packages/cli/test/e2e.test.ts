import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  startTestServer,
  type TestServer,
} from '@fleetgate/server/test/harness.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/index.ts';
import { memoryIo } from '../src/memory-io.ts';

/**
 * End-to-end: the CLI, run as `runCli` with in-memory streams (and once as the real `bin/fleetgate.js`),
 * against a real fleetgate listening on 127.0.0.1, on SQLite or, with DATABASE_URL, PostgreSQL. Nothing is
 * mocked: every command goes over HTTP to the real API.
 */

const run = promisify(execFile);
const bin = fileURLToPath(new URL('../bin/fleetgate.js', import.meta.url));

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

let server: TestServer;
let url: string;
const temporaries: string[] = [];

async function temporaryDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  temporaries.push(dir);
  return dir;
}

beforeAll(async () => {
  server = await startTestServer();
  await server.app.listen({ port: 0, host: '127.0.0.1' });
  const address = server.app.server.address();
  if (typeof address !== 'object' || address === null) throw new Error('the test server does not listen');
  url = `http://127.0.0.1:${address.port}`;
});

afterAll(async () => {
  await server?.close();
  await Promise.all(temporaries.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** `fleetgate ...args` in-process, with exactly the environment given (no FLEETGATE_* of the real shell). */
async function fleetgate(
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; stdin?: string },
): Promise<Result> {
  const memory = memoryIo({ env: options.env, stdin: options.stdin });
  const code = await runCli(args, memory.io);
  return { code, stdout: memory.stdout(), stderr: memory.stderr() };
}

/** A command that must succeed quietly on standard error. */
function succeeded(result: Result): string {
  expect(result, `stderr: ${result.stderr}`).toMatchObject({ code: 0, stderr: '' });
  return result.stdout;
}

/** A failure as users must see it: non-zero exit, nothing on stdout, one `fleetgate: …` line, no stack. */
function failedWith(result: Result, reason: RegExp): void {
  expect(result.code).not.toBe(0);
  expect(result.stdout).toBe('');
  expect(result.stderr).toMatch(/^fleetgate: [^\n]+\n$/);
  expect(result.stderr).toMatch(reason);
  expect(result.stderr).not.toMatch(/\n\s+at /);
}

/** A free port with nothing listening on it any more. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe('fleetgate login and logout', () => {
  let xdg: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    xdg = await temporaryDir('fleetgate-e2e-xdg-');
    env = { XDG_CONFIG_HOME: xdg };
  });

  it('refuses a wrong password with one line and saves no login', async () => {
    const result = await fleetgate(
      ['login', '--server', url, '--email', ADMIN_EMAIL, '--password', 'not the password'],
      { env },
    );
    failedWith(result, /password|credentials|invalid/i);
    await expect(stat(path.join(xdg, 'fleetgate', 'credentials.json'))).rejects.toThrow(/ENOENT/);
  });

  it('logs in with --email and --password and saves the token, readable by its owner only, without printing it', async () => {
    const result = await fleetgate(
      ['login', '--server', `${url}/`, '--email', ADMIN_EMAIL, '--password', ADMIN_PASSWORD],
      { env },
    );
    const stdout = succeeded(result);
    expect(stdout).toContain(`logged in to ${url} as ${ADMIN_EMAIL}`);

    const file = path.join(xdg, 'fleetgate', 'credentials.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    const profiles = JSON.parse(await readFile(file, 'utf8'));
    // One profile per server signed in to; this first one becomes the current profile.
    const saved = profiles.profiles[profiles.current];
    expect(saved).toMatchObject({ server: url, email: ADMIN_EMAIL });
    expect(saved.token).toEqual(expect.any(String));
    expect(stdout).not.toContain(saved.token);
  });

  it('runs later commands with the saved login, without --server or --token', async () => {
    const whoami = succeeded(await fleetgate(['whoami'], { env }));
    expect(whoami).toContain(ADMIN_EMAIL);
    expect(whoami).toContain('Default (org 1): owner');
    const orgs = JSON.parse(succeeded(await fleetgate(['orgs', 'ls', '--json'], { env })));
    expect(orgs.items).toContainEqual(expect.objectContaining({ id: 1, slug: 'default', name: 'Default' }));
  });

  it('logs in with the password in FLEETGATE_PASSWORD too', async () => {
    const other = { FLEETGATE_CONFIG_DIR: await temporaryDir('fleetgate-e2e-config-') };
    const result = await fleetgate(['login', '--server', url, '--email', ADMIN_EMAIL, '--json'], {
      env: { ...other, FLEETGATE_PASSWORD: ADMIN_PASSWORD },
    });
    const answer = JSON.parse(succeeded(result));
    expect(answer).toMatchObject({
      server: url,
      user: { email: ADMIN_EMAIL },
      expiresAt: expect.any(String),
    });
    const { token } = JSON.parse(
      await readFile(path.join(other.FLEETGATE_CONFIG_DIR, 'credentials.json'), 'utf8'),
    );
    expect(result.stdout).not.toContain(token);
    expect(succeeded(await fleetgate(['whoami'], { env: other }))).toContain(ADMIN_EMAIL);
  });

  it('logs out: the saved login is gone, the next command fails with one line, and the old token is dead', async () => {
    const file = path.join(xdg, 'fleetgate', 'credentials.json');
    const saved = JSON.parse(await readFile(file, 'utf8'));
    const { token } = saved.profiles[saved.current];

    expect(succeeded(await fleetgate(['logout'], { env }))).toContain(`logged out of ${url}`);
    await expect(stat(file)).rejects.toThrow(/ENOENT/);

    failedWith(await fleetgate(['devices', 'ls'], { env }), /not logged in.*fleetgate login --server/);
    // The server ended the session too: the token is refused even when given explicitly.
    failedWith(
      await fleetgate(['devices', 'ls', '--server', url, '--token', token], { env }),
      /fleetgate login --server/,
    );
  });
});

describe('fleetgate without a saved login', () => {
  let configDir: string;

  beforeAll(async () => {
    configDir = await temporaryDir('fleetgate-e2e-empty-');
  });

  it('takes the server and token from --server and --token', async () => {
    const result = await fleetgate(['--server', url, '--token', server.adminToken, 'orgs', 'ls'], {
      env: { FLEETGATE_CONFIG_DIR: configDir },
    });
    expect(succeeded(result)).toMatch(/ID\s+SLUG\s+NAME\s+CREATED\n1\s+default\s+Default\s/);
  });

  it('takes the server and token from FLEETGATE_SERVER and FLEETGATE_TOKEN', async () => {
    const result = await fleetgate(['whoami', '--json'], {
      env: { FLEETGATE_CONFIG_DIR: configDir, FLEETGATE_SERVER: url, FLEETGATE_TOKEN: server.adminToken },
    });
    expect(JSON.parse(succeeded(result))).toMatchObject({ email: ADMIN_EMAIL, serverAdmin: true });
  });

  it('accepts the API base URL that `fleetgate serve` prints (…/api/v1) as the server', async () => {
    const result = await fleetgate(
      ['--server', `${url}/api/v1/`, '--token', server.adminToken, 'orgs', 'ls', '--json'],
      {
        env: { FLEETGATE_CONFIG_DIR: configDir },
      },
    );
    expect(JSON.parse(succeeded(result)).items).toContainEqual(expect.objectContaining({ slug: 'default' }));
  });

  it('says how to log in when there is neither flag, environment nor saved login', async () => {
    failedWith(
      await fleetgate(['devices', 'ls'], { env: { FLEETGATE_CONFIG_DIR: configDir } }),
      /not logged in: run `fleetgate login --server URL`/,
    );
  });
});

describe('an admin session with fleetgate', () => {
  /** The admin's saved login. */
  let env: NodeJS.ProcessEnv;
  /** No saved login at all: for commands that bring their own --server and --token. */
  let bare: NodeJS.ProcessEnv;
  const as = (args: readonly string[], stdin?: string) => fleetgate(args, { env, stdin });
  const json = async (args: readonly string[], stdin?: string) =>
    JSON.parse(succeeded(await as([...args, '--json'], stdin)));

  let lobby: { id: number };
  let warehouse: { id: number };
  let kiosk: { id: number; uuid: string };
  let spare: { id: number; uuid: string };
  const secretValue = 's3cr3t-value-never-printed';
  const pipedSecret = 'piped-secret-never-printed';

  beforeAll(async () => {
    env = { FLEETGATE_CONFIG_DIR: await temporaryDir('fleetgate-e2e-admin-') };
    bare = { FLEETGATE_CONFIG_DIR: await temporaryDir('fleetgate-e2e-bare-') };
    succeeded(await as(['login', '--server', url, '--email', ADMIN_EMAIL, '--password', ADMIN_PASSWORD]));
  });

  it('lists my organizations as a table and as JSON', async () => {
    expect(succeeded(await as(['orgs', 'ls']))).toMatch(
      /^ID\s+SLUG\s+NAME\s+CREATED\n1\s+default\s+Default\s/,
    );
    expect((await json(['orgs', 'ls'])).items).toEqual([expect.objectContaining({ id: 1, slug: 'default' })]);
  });

  it('creates fleets and lists them', async () => {
    lobby = await json([
      'fleets',
      'create',
      'lobby',
      '--org',
      '1',
      '--device-type',
      'raspberrypi4-64',
      '--description',
      'screens in the lobby',
    ]);
    expect(lobby).toMatchObject({ orgId: 1, name: 'lobby', defaultDeviceType: 'raspberrypi4-64' });
    const created = succeeded(await as(['fleets', 'create', 'warehouse', '--org', '1']));
    expect(created).toMatch(/^name:\s+warehouse$/m);
    warehouse = (await json(['fleets', 'ls'])).items.find(
      (fleet: { name: string }) => fleet.name === 'warehouse',
    );
    expect(warehouse).toMatchObject({ orgId: 1, deviceCount: 0 });

    const table = succeeded(await as(['fleets', 'ls']));
    expect(table).toMatch(/^ID\s+ORG\s+NAME\s+DEVICE TYPE\s+DEVICES/);
    expect(table).toMatch(new RegExp(`^${lobby.id}\\s+1\\s+lobby\\s+raspberrypi4-64\\s+0\\s`, 'm'));
    expect(table).toMatch(new RegExp(`^${warehouse.id}\\s+1\\s+warehouse\\s`, 'm'));
  });

  it('lists the built-in device types and adds a custom one', async () => {
    expect(succeeded(await as(['device-types', 'ls']))).toMatch(/^-\s+raspberrypi4-64\s.*\sbuilt-in$/m);
    const created = await json([
      'device-types',
      'create',
      'acme-gw',
      '--org',
      '1',
      '--name',
      'Acme Gateway',
      '--arch',
      'aarch64',
    ]);
    expect(created).toMatchObject({ slug: 'acme-gw', name: 'Acme Gateway', arch: 'aarch64', builtin: false });
    const types = (await json(['device-types', 'ls'])).items;
    expect(types).toContainEqual(expect.objectContaining({ slug: 'raspberrypi4-64', builtin: true }));
    expect(types).toContainEqual(expect.objectContaining({ slug: 'acme-gw', builtin: false, orgId: 1 }));
    expect(succeeded(await as(['device-types', 'ls']))).toMatch(
      /^\d+\s+acme-gw\s+Acme Gateway\s+aarch64\s+1$/m,
    );
  });

  it('creates devices with the fleet default or a custom type, and lists them', async () => {
    kiosk = await json(['devices', 'create', '--fleet', String(lobby.id), '--name', 'kiosk-1']);
    expect(kiosk).toMatchObject({ name: 'kiosk-1', fleetId: lobby.id, deviceType: 'raspberrypi4-64' });
    expect(kiosk.uuid).toMatch(/^[0-9a-f]{32}$/);
    const text = succeeded(
      await as([
        'devices',
        'create',
        '--fleet',
        String(lobby.id),
        '--name',
        'gateway-1',
        '--type',
        'acme-gw',
      ]),
    );
    expect(text).toMatch(/^name:\s+gateway-1$/m);
    expect(text).toMatch(/^deviceType:\s+acme-gw$/m);
    spare = (await json(['devices', 'ls', '--search', 'gateway-1'])).items[0];
    expect(spare).toMatchObject({ name: 'gateway-1', deviceType: 'acme-gw' });

    const table = succeeded(await as(['devices', 'ls']));
    expect(table).toMatch(/^ID\s+UUID\s+NAME\s+FLEET\s+TYPE\s+STATUS\s+LAST SEEN\s+TAGS$/m);
    expect(table).toMatch(
      new RegExp(
        `^${kiosk.id}\\s+${kiosk.uuid}\\s+kiosk-1\\s+lobby\\s+raspberrypi4-64\\s+never-connected\\s+-\\s`,
        'm',
      ),
    );
    expect(table).toMatch(
      new RegExp(`^${spare.id}\\s+${spare.uuid}\\s+gateway-1\\s+lobby\\s+acme-gw\\s`, 'm'),
    );
    const listed = await json(['devices', 'ls', '--fleet', String(lobby.id)]);
    expect(listed.total).toBe(2);
    expect(listed.items.map((device: { name: string }) => device.name).sort()).toEqual([
      'gateway-1',
      'kiosk-1',
    ]);
  });

  it('shows a device by id or uuid, renames, moves and tags it', async () => {
    expect(succeeded(await as(['devices', 'show', String(kiosk.id)]))).toMatch(
      new RegExp(`^id:\\s+${kiosk.id}\\nuuid:\\s+${kiosk.uuid}\\nname:\\s+kiosk-1\\n`),
    );
    expect(await json(['devices', 'show', kiosk.uuid])).toMatchObject({ id: kiosk.id, name: 'kiosk-1' });

    expect(await json(['devices', 'rename', String(kiosk.id), 'lobby-kiosk'])).toMatchObject({
      name: 'lobby-kiosk',
    });
    expect(succeeded(await as(['devices', 'move', kiosk.uuid, '--fleet', String(warehouse.id)]))).toMatch(
      /^fleetName:\s+warehouse$/m,
    );

    expect(succeeded(await as(['devices', 'tag', String(kiosk.id), 'site', 'paris']))).toBe(
      `tagged device ${kiosk.id}: site=paris\n`,
    );
    expect(succeeded(await as(['devices', 'tag', String(kiosk.id)]))).toMatch(
      /^KEY\s+VALUE\nsite\s+paris\n$/,
    );
    expect(await json(['devices', 'tag', String(kiosk.id), 'site'])).toEqual({ tags: { site: 'paris' } });
    const tagged = await json(['devices', 'ls', '--tag', 'site=paris']);
    expect(tagged.items).toEqual([
      expect.objectContaining({
        id: kiosk.id,
        name: 'lobby-kiosk',
        fleetId: warehouse.id,
        fleetName: 'warehouse',
        tags: { site: 'paris' },
      }),
    ]);
    expect(succeeded(await as(['fleets', 'ls']))).toMatch(
      new RegExp(`^${warehouse.id}\\s+1\\s+warehouse\\s+-\\s+1\\s`, 'm'),
    );
  });

  it('deletes a device, after which it is unknown', async () => {
    expect(succeeded(await as(['devices', 'rm', spare.uuid, '--yes']))).toBe(
      `deleted device ${spare.uuid}\n`,
    );
    failedWith(await as(['devices', 'show', String(spare.id)]), /not found/i);
    expect((await json(['devices', 'ls'])).items.map((device: { id: number }) => device.id)).toEqual([
      kiosk.id,
    ]);
  });

  it('sets fleet-wide and per-device variables; the device value overrides the fleet one; secrets are never printed', async () => {
    const fleetFlag = ['--fleet', String(warehouse.id)];
    const deviceFlag = ['--device', String(kiosk.id)];
    const printed: string[] = [];
    const keep = (result: Result) => {
      printed.push(result.stdout, result.stderr);
      return succeeded(result);
    };

    expect(keep(await as(['vars', 'set', 'GREETING', 'hello', ...fleetFlag]))).toBe(
      `set GREETING on fleet ${warehouse.id}\n`,
    );
    expect(keep(await as(['vars', 'set', 'LOG_LEVEL', 'info', ...fleetFlag]))).toContain('LOG_LEVEL');
    expect(keep(await as(['vars', 'set', 'GREETING', 'bonjour', ...deviceFlag]))).toBe(
      `set GREETING on device ${kiosk.id}\n`,
    );
    expect(keep(await as(['vars', 'set', 'API_TOKEN', secretValue, '--secret', ...fleetFlag]))).toBe(
      `set API_TOKEN on fleet ${warehouse.id} (secret)\n`,
    );
    const setJson = JSON.parse(
      keep(
        await as(
          ['vars', 'set', 'DB_PASSWORD', '-', '--secret', ...deviceFlag, '--json'],
          `${pipedSecret}\n`,
        ),
      ),
    );
    expect(setJson).toMatchObject({ name: 'DB_PASSWORD', secret: true, value: null });

    const fleetTable = keep(await as(['vars', 'ls', ...fleetFlag]));
    expect(fleetTable).toMatch(/^GREETING\s+hello\s/m);
    expect(fleetTable).toMatch(/^API_TOKEN\s+\(secret\)\s/m);

    const deviceTable = keep(await as(['vars', 'ls', ...deviceFlag]));
    expect(deviceTable).toMatch(/^NAME\s+VALUE\s+FROM\s+UPDATED$/m);
    expect(deviceTable).toMatch(/^GREETING\s+bonjour\s+device \(overrides fleet\)\s/m);
    expect(deviceTable).toMatch(/^LOG_LEVEL\s+info\s+fleet\s/m);
    expect(deviceTable).toMatch(/^API_TOKEN\s+\(secret\)\s+fleet\s/m);
    expect(deviceTable).toMatch(/^DB_PASSWORD\s+\(secret\)\s+device\s/m);
    expect(deviceTable).not.toMatch(/^GREETING\s+hello/m);

    const effective = JSON.parse(keep(await as(['vars', 'ls', ...deviceFlag, '--json']))).items;
    expect(effective).toHaveLength(4);
    expect(effective).toContainEqual(
      expect.objectContaining({ name: 'GREETING', value: 'bonjour', source: 'device', overridesFleet: true }),
    );
    expect(effective).toContainEqual(
      expect.objectContaining({ name: 'API_TOKEN', value: null, secret: true, source: 'fleet' }),
    );
    keep(await as(['vars', 'ls', ...fleetFlag, '--json']));

    for (const text of printed) {
      expect(text).not.toContain(secretValue);
      expect(text).not.toContain(pipedSecret);
    }
  });

  it('adds a member with a role, who can then log in with the one-time password', async () => {
    const added = succeeded(
      await as([
        'members',
        'add',
        '1',
        'olivia@example.test',
        '--role',
        'operator',
        '--fleet',
        String(lobby.id),
      ]),
    );
    expect(added).toMatch(/^email:\s+olivia@example.test$/m);
    expect(added).toMatch(/^role:\s+operator$/m);
    const password = /one-time password for olivia@example.test: (\S+)/.exec(added)?.[1];
    expect(password).toEqual(expect.any(String));

    const table = succeeded(await as(['members', 'ls', '1']));
    expect(table).toMatch(/^USER ID\s+EMAIL\s+NAME\s+ROLE\s+FLEETS\s+ADDED$/m);
    expect(table).toMatch(new RegExp(`^\\d+\\s+olivia@example.test\\s+.*\\boperator\\s+${lobby.id}\\s`, 'm'));
    expect(table).toMatch(/^\d+\s+admin@example.test\s+.*\bowner\s+all\s/m);
    expect((await json(['members', 'ls', '1'])).items).toContainEqual(
      expect.objectContaining({ email: 'olivia@example.test', role: 'operator', fleetIds: [lobby.id] }),
    );

    const olivia = { FLEETGATE_CONFIG_DIR: await temporaryDir('fleetgate-e2e-olivia-') };
    succeeded(
      await fleetgate(['login', '--server', url, '--email', 'olivia@example.test', '--password', password!], {
        env: olivia,
      }),
    );
    expect(succeeded(await fleetgate(['whoami'], { env: olivia }))).toContain(
      `Default (org 1): operator, fleets ${lobby.id}`,
    );
    // Her membership is narrowed to the lobby, now empty: the warehouse kiosk stays out of her sight.
    expect(succeeded(await fleetgate(['devices', 'ls'], { env: olivia }))).toBe('no devices\n');
    failedWith(
      await fleetgate(['members', 'add', '1', 'mallory@example.test', '--role', 'owner'], { env: olivia }),
      /your role \(operator\) does not allow/,
    );

    // She replaces the one-time password: the old one stops working, the new one signs in.
    failedWith(
      await fleetgate(['passwd', '--current', 'not her password', '--new', 'olivia new secret'], {
        env: olivia,
      }),
      /password/i,
    );
    expect(
      succeeded(
        await fleetgate(['passwd', '--current', password!, '--new', 'olivia new secret'], { env: olivia }),
      ),
    ).toBe('password changed for olivia@example.test\n');
    const login = (secret: string) =>
      fleetgate(['login', '--server', url, '--email', 'olivia@example.test', '--password', secret], {
        env: olivia,
      });
    failedWith(await login(password!), /password|credentials|invalid/i);
    succeeded(await login('olivia new secret'));
  });

  it('lists the users', async () => {
    const table = succeeded(await as(['users', 'ls']));
    expect(table).toMatch(/^ID\s+EMAIL\s+NAME\s+SERVER ADMIN\s+CREATED$/m);
    expect(table).toMatch(/^\d+\s+admin@example.test\s.*\byes\s/m);
    expect(table).toMatch(/^\d+\s+olivia@example.test\s.*\bno\s/m);
    const emails = (await json(['users', 'ls'])).items.map((user: { email: string }) => user.email);
    expect(emails.sort()).toEqual(['admin@example.test', 'olivia@example.test']);
  });

  it('creates an API key shown once, works with it as --token, and refuses it once revoked', async () => {
    const created = succeeded(await as(['api-keys', 'create', 'ci-pipeline']));
    expect(created).toMatch(/^created API key \d+ "ci-pipeline" \(expires never\)$/m);
    expect(created).toContain('cannot be shown again');
    const key = /^ {2}(\S+)$/m.exec(created)?.[1];
    expect(key).toEqual(expect.any(String));
    const keyId = /^created API key (\d+)/m.exec(created)?.[1];

    const listed = succeeded(await as(['api-keys', 'ls']));
    expect(listed).toMatch(new RegExp(`^${keyId}\\s+ci-pipeline\\s`, 'm'));
    expect(listed).not.toContain(key);
    expect(JSON.stringify(await json(['api-keys', 'ls']))).not.toContain(key);

    const withKey = await fleetgate(['--server', url, '--token', key!, 'devices', 'ls', '--json'], {
      env: bare,
    });
    expect(JSON.parse(succeeded(withKey)).items).toEqual([expect.objectContaining({ id: kiosk.id })]);

    expect(succeeded(await as(['api-keys', 'revoke', keyId!]))).toBe(`revoked API key ${keyId}\n`);
    failedWith(
      await fleetgate(['--server', url, '--token', key!, 'devices', 'ls'], { env: bare }),
      /fleetgate login --server URL/,
    );
    expect((await json(['api-keys', 'ls'])).items).toEqual([
      expect.objectContaining({ name: 'ci-pipeline', revokedAt: expect.any(String) }),
    ]);
  });

  it('adds an SSH public key and lists it with the fingerprint ssh-keygen shows, and refuses a private key', async () => {
    const dir = await temporaryDir('fleetgate-e2e-ssh-');
    const keyFile = path.join(dir, 'id_ed25519');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'admin@laptop', '-f', keyFile], {
      timeout: 10_000,
    });
    const { stdout: listing } = await run('ssh-keygen', ['-lf', `${keyFile}.pub`], { timeout: 10_000 });
    const fingerprint = listing.split(' ')[1]!;
    expect(fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);

    const added = succeeded(await as(['ssh-keys', 'add', `${keyFile}.pub`, '--name', 'laptop']));
    expect(added).toMatch(/^name:\s+laptop$/m);
    expect(added).toContain(fingerprint);

    const table = succeeded(await as(['ssh-keys', 'ls']));
    expect(table).toMatch(
      new RegExp(`^\\d+\\s+laptop\\s+\\S*ed25519\\S*\\s+${fingerprint.replace(/[+/]/g, '\\$&')}\\s`, 'mi'),
    );
    expect((await json(['ssh-keys', 'ls'])).items).toEqual([
      expect.objectContaining({ name: 'laptop', fingerprint }),
    ]);

    failedWith(await as(['ssh-keys', 'add', keyFile]), /that is a private key/);
  });

  it('shows what was just done in the audit log, without secret values', async () => {
    const events = (await json(['audit', '--limit', '200'])).items as {
      action: string;
      actor: { label: string };
      outcome: string;
    }[];
    const actions = new Set(events.map((event) => event.action));
    for (const action of [
      'auth.login',
      'fleet.create',
      'device_type.create',
      'device.create',
      'device.update',
      'device.tag.set',
      'device.delete',
      'fleet.variable.set',
      'device.variable.set',
      'member.add',
      'api_key.create',
      'api_key.revoke',
      'ssh_key.add',
    ]) {
      expect(actions, action).toContain(action);
    }
    expect(events.find((event) => event.action === 'device.delete')).toMatchObject({
      actor: { label: ADMIN_EMAIL },
      outcome: 'success',
    });
    const raw = succeeded(await as(['audit', '--limit', '200', '--json']));
    expect(raw).not.toContain(secretValue);
    expect(raw).not.toContain(pipedSecret);

    const table = succeeded(await as(['audit', '--action', 'device.delete']));
    expect(table).toMatch(/^AT\s+ACTOR\s+ACTION\s+RESOURCE\s+OUTCOME\s+FROM$/m);
    expect(table).toMatch(
      new RegExp(`\\s${ADMIN_EMAIL}\\s+device\\.delete\\s+device ${spare.uuid}\\s+success\\s`),
    );
  });
});

describe('fleetgate failures', () => {
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    env = { FLEETGATE_CONFIG_DIR: await temporaryDir('fleetgate-e2e-failures-') };
  });

  it('rejects a wrong token with a non-zero exit, one line on stderr and nothing on stdout', async () => {
    const result = await fleetgate(['--server', url, '--token', 'fgs_not-a-real-token', 'devices', 'ls'], {
      env,
    });
    failedWith(result, /run `fleetgate login --server URL`/);
    expect(result.code).toBe(1);
  });

  it('says clearly that an unknown device does not exist', async () => {
    failedWith(
      await fleetgate(['--server', url, '--token', server.adminToken, 'devices', 'show', '987654'], { env }),
      /not found/i,
    );
    failedWith(
      await fleetgate(
        [
          '--server',
          url,
          '--token',
          server.adminToken,
          'devices',
          'rename',
          'ffffffffffffffffffffffffffffffff',
          'x',
        ],
        { env },
      ),
      /not found/i,
    );
  });

  it('says which name is unknown when no device of mine has it', async () => {
    const result = await fleetgate(
      ['--server', url, '--token', server.adminToken, 'devices', 'show', 'kiosk'],
      {
        env,
      },
    );
    failedWith(result, /no device "kiosk" among your devices/);
  });

  it('says it cannot reach a server that is down, without a stack trace', async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    const result = await fleetgate(['--server', down, '--token', 'anything', 'devices', 'ls'], { env });
    failedWith(result, new RegExp(`^fleetgate: cannot reach ${down}: is \`fleetgate serve\` running\\?\\n$`));
    failedWith(
      await fleetgate(['login', '--server', down, '--email', ADMIN_EMAIL, '--password', ADMIN_PASSWORD], {
        env,
      }),
      /cannot reach/,
    );
  });
});

describe('the installed fleetgate command', () => {
  it('runs bin/fleetgate.js as a child process: exit code 0 and JSON on stdout', async () => {
    const configDir = await temporaryDir('fleetgate-e2e-bin-');
    const fleet = await server.api('POST', '/api/v1/fleets', {
      token: server.adminToken,
      body: { orgId: 1, name: 'bin-fleet', defaultDeviceType: 'generic-amd64' },
    });
    expect(fleet.status).toBe(201);
    const created = await server.api('POST', '/api/v1/devices', {
      token: server.adminToken,
      body: { fleetId: fleet.body.id, name: 'from-the-bin-test' },
    });
    expect(created.status).toBe(201);

    const childEnv = { PATH: process.env.PATH, HOME: configDir, FLEETGATE_CONFIG_DIR: configDir };
    const { stdout, stderr } = await run(
      process.execPath,
      [bin, '--server', url, '--token', server.adminToken, 'devices', 'ls', '--json'],
      { timeout: 20_000, env: childEnv },
    );
    expect(stderr).toBe('');
    const answer = JSON.parse(stdout);
    expect(answer.items).toContainEqual(
      expect.objectContaining({ name: 'from-the-bin-test', uuid: created.body.uuid }),
    );

    const failure = await run(process.execPath, [bin, '--server', url, '--token', 'wrong', 'devices', 'ls'], {
      timeout: 20_000,
      env: childEnv,
    }).then(
      () => undefined,
      (error: { code?: number; stdout: string; stderr: string }) => error,
    );
    expect(failure).toMatchObject({ code: 1, stdout: '' });
    expect(failure?.stderr).toMatch(/^fleetgate: [^\n]+\n$/);
  });

  it('refuses to delete or decommission a device from a script without --yes, and goes ahead with it', async () => {
    const configDir = await temporaryDir('fleetgate-e2e-yes-');
    const fleet = await server.api('POST', '/api/v1/fleets', {
      token: server.adminToken,
      body: { orgId: 1, name: 'yes-fleet', defaultDeviceType: 'generic-amd64' },
    });
    const created = await server.api('POST', '/api/v1/devices', {
      token: server.adminToken,
      body: { fleetId: fleet.body.id, name: 'kiosk-to-remove' },
    });
    expect(created.status).toBe(201);
    const childEnv = { PATH: process.env.PATH, HOME: configDir, FLEETGATE_CONFIG_DIR: configDir };
    const connection = ['--server', url, '--token', server.adminToken];
    // Standard input is a pipe here, as in a script or CI job: nothing can be confirmed.
    for (const command of ['decommission', 'rm']) {
      const refused = await run(
        process.execPath,
        [bin, ...connection, 'devices', command, created.body.uuid],
        {
          timeout: 20_000,
          env: childEnv,
        },
      ).then(
        () => undefined,
        (error: { code?: number; stdout: string; stderr: string }) => error,
      );
      expect(refused).toMatchObject({
        code: 2,
        stdout: '',
        stderr:
          'fleetgate: standard input is not a terminal, so nothing can be confirmed: add --yes to go ahead\n',
      });
    }
    const untouched = await server.api('GET', `/api/v1/devices/${created.body.uuid}`, {
      token: server.adminToken,
    });
    expect(untouched.body.status).toBe('never-connected');

    const removed = await run(
      process.execPath,
      [bin, ...connection, 'devices', 'rm', created.body.uuid, '--yes'],
      {
        timeout: 20_000,
        env: childEnv,
      },
    );
    expect(removed.stdout).toBe(`deleted device ${created.body.uuid}\n`);
    const gone = await server.api('GET', `/api/v1/devices/${created.body.uuid}`, {
      token: server.adminToken,
    });
    expect(gone.status).toBe(404);
  });

  it('logs in through bin/fleetgate.js into ~/.config/fleetgate by default, and later runs need no token', async () => {
    const home = await temporaryDir('fleetgate-e2e-home-');
    const childEnv = { PATH: process.env.PATH, HOME: home };
    const login = await run(
      process.execPath,
      [bin, 'login', '--server', url, '--email', ADMIN_EMAIL, '--password', ADMIN_PASSWORD],
      { timeout: 20_000, env: childEnv },
    );
    expect(login.stdout).toContain(`logged in to ${url} as ${ADMIN_EMAIL}`);
    const file = path.join(home, '.config', 'fleetgate', 'credentials.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    const { stdout } = await run(process.execPath, [bin, 'devices', 'ls', '--json'], {
      timeout: 20_000,
      env: childEnv,
    });
    const expected = await server.api('GET', '/api/v1/devices', { token: server.adminToken });
    expect(JSON.parse(stdout)).toEqual(expected.body);
  });
});

describe('fleetgate after too many failed sign-ins', () => {
  let limited: TestServer;
  let limitedUrl: string;

  beforeAll(async () => {
    limited = await startTestServer({ loginAttempts: 2 });
    await limited.app.listen({ port: 0, host: '127.0.0.1' });
    const address = limited.app.server.address();
    if (typeof address !== 'object' || address === null) throw new Error('the test server does not listen');
    limitedUrl = `http://127.0.0.1:${address.port}`;
  });

  afterAll(() => limited?.close());

  it('says in how many seconds to try again (the server sends Retry-After)', async () => {
    const env = { FLEETGATE_CONFIG_DIR: await temporaryDir('fleetgate-e2e-429-') };
    const login = ['login', '--server', limitedUrl, '--email', ADMIN_EMAIL, '--password', 'a wrong guess'];
    for (let attempt = 0; attempt < 2; attempt++)
      failedWith(await fleetgate(login, { env }), /password|credentials/i);
    const refused = await fleetgate(login, { env });
    failedWith(refused, /too many failed sign-ins/);
    const seconds = Number(/try again in (\d+) s\n$/.exec(refused.stderr)?.[1]);
    expect(seconds).toBeGreaterThan(0);
    expect(seconds).toBeLessThanOrEqual(15 * 60);
  });
});
