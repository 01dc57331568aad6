import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { credentialsFile, readCredentials, saveCredentials } from './config.ts';
import { runCli } from './index.ts';
import { memoryIo } from './memory-io.ts';

interface SeenRequest {
  method: string;
  url: string;
  authorization: IncomingHttpHeaders['authorization'];
  body: unknown;
}

/** Answers of the fake API by `METHOD /path` (query string left out); anything else is a 404. */
let routes: Record<string, { status: number; body?: unknown; headers?: Record<string, string> }> = {};
const seen: SeenRequest[] = [];
let server: Server;
let base: string;
let configDirectory: string;

beforeAll(async () => {
  server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      seen.push({
        method: request.method ?? '',
        url: request.url ?? '',
        authorization: request.headers.authorization,
        body: text ? JSON.parse(text) : undefined,
      });
      const route = routes[`${request.method} ${request.url?.split('?')[0]}`] ?? {
        status: 404,
        body: { error: { code: 'not_found', message: 'device not found' } },
      };
      response.writeHead(route.status, { 'content-type': 'application/json', ...route.headers });
      response.end(route.body === undefined ? undefined : JSON.stringify(route.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(async () => {
  routes = {};
  seen.length = 0;
  configDirectory = await mkdtemp(path.join(tmpdir(), 'fleetgate-cli-run-'));
  return () => rm(configDirectory, { recursive: true, force: true });
});

/** Runs `fleetgate ...args` in-process with its own config directory. */
async function fleetgate(args: string[], options: { env?: NodeJS.ProcessEnv; stdin?: string } = {}) {
  const memory = memoryIo({
    env: { FLEETGATE_CONFIG_DIR: configDirectory, ...options.env },
    stdin: options.stdin,
  });
  const code = await runCli(args, memory.io);
  return { code, stdout: memory.stdout(), stderr: memory.stderr() };
}

async function logIn() {
  await saveCredentials(
    { FLEETGATE_CONFIG_DIR: configDirectory },
    { server: base, token: 'fgs_saved', email: 'a@b.c' },
  );
}

const device = {
  id: 42,
  uuid: '0123456789abcdef0123456789abcdef',
  name: 'kiosk-17',
  orgId: 1,
  fleetId: 3,
  fleetName: 'lobby',
  deviceType: 'raspberrypi4-64',
  notes: '',
  status: 'never-connected',
  tags: { site: 'paris' },
  createdAt: '2025-01-31T12:00:00.000Z',
  updatedAt: '2025-01-31T12:00:00.000Z',
};

describe('fleetgate', () => {
  it('says how to log in, on one line, when there is no login', async () => {
    const result = await fleetgate(['devices', 'ls']);
    expect(result).toEqual({
      code: 1,
      stdout: '',
      stderr: 'fleetgate: not logged in: run `fleetgate login --server URL`\n',
    });
  });

  it('logs in with FLEETGATE_PASSWORD and saves the token 0600, without printing it', async () => {
    routes['POST /api/v1/auth/login'] = {
      status: 200,
      body: { token: 'fgs_new', expiresAt: '2025-02-01T00:00:00.000Z', user: { email: 'a@b.c' } },
    };
    const result = await fleetgate(['login', '--server', `${base}/`, '--email', 'a@b.c'], {
      env: { FLEETGATE_PASSWORD: 'secret-pw' },
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`logged in to ${base} as a@b.c`);
    expect(result.stdout).not.toContain('fgs_new');
    expect(seen[0]?.body).toEqual({ email: 'a@b.c', password: 'secret-pw' });
    const env = { FLEETGATE_CONFIG_DIR: configDirectory };
    expect(await readCredentials(env)).toEqual({ server: base, token: 'fgs_new', email: 'a@b.c' });
    expect((await stat(credentialsFile(env))).mode & 0o777).toBe(0o600);
  });

  it('refuses to log in without a password when there is no terminal to ask on', async () => {
    const result = await fleetgate(['login', '--server', base, '--email', 'a@b.c']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      'fleetgate: no password given and no terminal to ask on: pass --password or set FLEETGATE_PASSWORD\n',
    );
    expect(seen).toEqual([]);
  });

  it('lists devices as a table with the saved login, passing the filters on', async () => {
    await logIn();
    routes['GET /api/v1/devices'] = { status: 200, body: { items: [device], total: 1, page: 1, limit: 50 } };
    const result = await fleetgate([
      'devices',
      'ls',
      '--fleet',
      '3',
      '--tag',
      'site=paris',
      '--search',
      'kiosk',
    ]);
    expect(result.code).toBe(0);
    // A table asks only for the keys it prints.
    expect(seen[0]?.url).toBe(
      '/api/v1/devices?fleetId=3&tag=site%3Dparis&q=kiosk&fields=uuid%2Cname%2CfleetName%2CdeviceType%2Cstatus%2ClastSeenAt%2Ctags',
    );
    expect(seen[0]?.authorization).toBe('Bearer fgs_saved');
    expect(result.stdout.split('\n')[0]).toMatch(
      /^ID\s+UUID\s+NAME\s+FLEET\s+TYPE\s+STATUS\s+LAST SEEN\s+TAGS$/,
    );
    expect(result.stdout).toContain('kiosk-17');
    expect(result.stdout).toContain('site=paris');
  });

  it('prefers --token to the saved login', async () => {
    await logIn();
    routes['GET /api/v1/devices/42'] = { status: 200, body: device };
    const result = await fleetgate(['devices', 'show', '42', '--token', 'fgk_flag', '--json']);
    expect(seen[0]?.authorization).toBe('Bearer fgk_flag');
    expect(JSON.parse(result.stdout)).toEqual(device);
  });

  it('confirms a delete in one line, or with {"ok":true} in JSON', async () => {
    await logIn();
    routes['DELETE /api/v1/devices/42'] = { status: 204 };
    expect((await fleetgate(['devices', 'rm', '42', '--yes'])).stdout).toBe('deleted device 42\n');
    expect(await fleetgate(['devices', 'rm', '42', '--yes', '--json'])).toEqual({
      code: 0,
      stdout: '{\n  "ok": true\n}\n',
      stderr: '',
    });
    expect(seen.map((request) => request.method)).toEqual(['DELETE', 'DELETE']);
  });

  it('asks on a terminal before deleting or decommissioning a device, and does nothing on "n"', async () => {
    await logIn();
    routes['GET /api/v1/devices/42'] = { status: 200, body: device };
    routes['DELETE /api/v1/devices/42'] = { status: 204 };
    routes['POST /api/v1/devices/42/decommission'] = { status: 200, body: device };
    const onTerminal = async (args: string[], typed: string) => {
      const memory = memoryIo({ env: { FLEETGATE_CONFIG_DIR: configDirectory } });
      memory.io.stdin = Object.assign(Readable.from([typed]), { isTTY: true });
      const code = await runCli(args, memory.io);
      return { code, stdout: memory.stdout(), stderr: memory.stderr() };
    };

    const declined = await onTerminal(['devices', 'rm', '42'], 'n\n');
    expect(declined).toEqual({
      code: 1,
      stdout: '',
      stderr: `Delete ${device.name} (${device.uuid})? [y/N] fleetgate: cancelled: nothing was changed\n`,
    });
    expect(seen.map((request) => request.method)).toEqual(['GET']);

    expect(await onTerminal(['devices', 'rm', '42'], 'y\n')).toMatchObject({
      code: 0,
      stdout: 'deleted device 42\n',
    });
    const decommissioned = await onTerminal(['devices', 'decommission', '42'], 'yes\n');
    expect(decommissioned.code).toBe(0);
    expect(decommissioned.stderr).toBe(`Decommission ${device.name} (${device.uuid})? [y/N] `);
    expect(seen.map((request) => `${request.method} ${request.url}`)).toEqual([
      'GET /api/v1/devices/42',
      'GET /api/v1/devices/42',
      'DELETE /api/v1/devices/42',
      'GET /api/v1/devices/42',
      'POST /api/v1/devices/42/decommission',
    ]);
  });

  it('refuses to delete or decommission without --yes when no one can answer, before asking the server', async () => {
    await logIn();
    for (const command of ['rm', 'decommission']) {
      expect(await fleetgate(['devices', command, '42'])).toEqual({
        code: 2,
        stdout: '',
        stderr:
          'fleetgate: standard input is not a terminal, so nothing can be confirmed: add --yes to go ahead\n',
      });
    }
    expect(seen).toEqual([]);
  });

  it('lists devices with when each was last seen, and --json as the API answered', async () => {
    await logIn();
    const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();
    const answer = {
      items: [
        { ...device, status: 'offline', lastSeenAt: minutesAgo(3) },
        { ...device, id: 43, name: 'kiosk-18', status: 'online', lastSeenAt: minutesAgo(2) },
        { ...device, id: 44, name: 'kiosk-19', lastSeenAt: null },
      ],
      total: 3,
    };
    routes['GET /api/v1/devices'] = { status: 200, body: answer };
    const table = (await fleetgate(['devices', 'ls'])).stdout;
    expect(table).toMatch(/^ID\s+UUID\s+NAME\s+FLEET\s+TYPE\s+STATUS\s+LAST SEEN\s+TAGS$/m);
    expect(table).toMatch(/^42\s.*\soffline\s+3 min ago\s+site=paris$/m);
    expect(table).toMatch(/^43\s.*\sonline\s+now\s+site=paris$/m);
    expect(table).toMatch(/^44\s.*\snever-connected\s+-\s+site=paris$/m);
    expect(JSON.parse((await fleetgate(['devices', 'ls', '--json'])).stdout)).toEqual(answer);
  });

  it('says in how many seconds to try again when the server answers 429 with Retry-After', async () => {
    await logIn();
    routes['GET /api/v1/devices/42'] = {
      status: 429,
      headers: { 'retry-after': '37' },
      body: {
        error: { code: 'rate_limited', message: 'too many refused device credentials: try again later' },
      },
    };
    expect(await fleetgate(['devices', 'show', '42'])).toEqual({
      code: 1,
      stdout: '',
      stderr: 'fleetgate: too many refused device credentials: try again in 37 s\n',
    });
    // A message that says it already is not repeated.
    routes['GET /api/v1/devices/42'] = {
      status: 429,
      headers: { 'retry-after': '12' },
      body: { error: { code: 'rate_limited', message: 'too many failed sign-ins: try again in 12 s' } },
    };
    expect((await fleetgate(['devices', 'show', '42'])).stderr).toBe(
      'fleetgate: too many failed sign-ins: try again in 12 s\n',
    );
  });

  it("prints the server's error message and exits 1", async () => {
    await logIn();
    const result = await fleetgate(['devices', 'show', '7']);
    expect(result).toEqual({ code: 1, stdout: '', stderr: 'fleetgate: device not found\n' });
  });

  it('turns a rejected token into how to log in again', async () => {
    await logIn();
    routes['GET /api/v1/me'] = {
      status: 401,
      body: {
        error: {
          code: 'unauthorized',
          message: 'invalid, expired or revoked token: sign in again (POST /api/v1/auth/login)',
        },
      },
    };
    const result = await fleetgate(['whoami']);
    expect(result.stderr).toBe(
      'fleetgate: invalid, expired or revoked token: run `fleetgate login --server URL`\n',
    );
  });

  it('reports usage errors on one line, before calling the server', async () => {
    await logIn();
    expect(await fleetgate(['devices', 'ls', '--bogus'])).toEqual({
      code: 1,
      stdout: '',
      stderr: "fleetgate: unknown option '--bogus'\n",
    });
    const badCount = await fleetgate(['devices', 'ls', '--limit', 'x']);
    expect(badCount.code).toBe(1);
    expect(badCount.stderr).toMatch(/^fleetgate: .*expected a positive integer\n$/);
    expect(seen).toEqual([]);
  });

  it('lists only the server-wide audit events with --server-wide, which takes no --org', async () => {
    await logIn();
    routes['GET /api/v1/audit'] = { status: 200, body: { items: [], total: 0, page: 1, limit: 50 } };
    const result = await fleetgate(['audit', '--server-wide', '--action', 'auth.login']);
    expect(result.code).toBe(0);
    expect(seen[0]?.url).toBe('/api/v1/audit?scope=server&action=auth.login');

    const both = await fleetgate(['audit', '--server-wide', '--org', '1']);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/^fleetgate: .*'--server-wide'.*'--org/);
    expect(seen).toHaveLength(1);
  });

  it('sets a tag with PUT, encoding the key', async () => {
    await logIn();
    routes['PUT /api/v1/devices/42/tags/room%2F1'] = { status: 204 };
    const result = await fleetgate(['devices', 'tag', '42', 'room/1', 'hall']);
    expect(result.stdout).toBe('tagged device 42: room/1=hall\n');
    expect(seen[0]?.body).toEqual({ value: 'hall' });
  });

  it('reads a variable value from standard input with -', async () => {
    await logIn();
    routes['PUT /api/v1/devices/42/variables/API_TOKEN'] = {
      status: 200,
      body: { name: 'API_TOKEN', value: null, secret: true, updatedAt: '2025-01-31T12:00:00.000Z' },
    };
    const result = await fleetgate(['vars', 'set', 'API_TOKEN', '-', '--device', '42', '--secret'], {
      stdin: 's3cr3t\n',
    });
    expect(result.stdout).toBe('set API_TOKEN on device 42 (secret)\n');
    expect(seen[0]?.body).toEqual({ value: 's3cr3t', secret: true });
  });

  it('shows a one-time password of a created member once, with a warning', async () => {
    await logIn();
    routes['POST /api/v1/orgs/1/members'] = {
      status: 201,
      body: {
        userId: 5,
        email: 'ops@x.test',
        name: 'ops',
        role: 'operator',
        fleetIds: [3],
        createdAt: 't',
        password: 'pw123456',
      },
    };
    const result = await fleetgate([
      'members',
      'add',
      '1',
      'ops@x.test',
      '--role',
      'operator',
      '--fleet',
      '3',
    ]);
    expect(seen[0]?.body).toEqual({ email: 'ops@x.test', role: 'operator', fleetIds: [3] });
    expect(result.stdout).toContain('one-time password for ops@x.test: pw123456');
    expect(result.stdout.match(/pw123456/g)).toHaveLength(1);
  });

  it('serve: lists every configuration problem and exits 2', async () => {
    const result = await fleetgate(['serve', '--port', 'abc', '--log-level', 'loud']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^fleetgate: invalid configuration:\n/);
    expect(result.stderr).toContain('FLEETGATE_HTTP_PORT');
    expect(result.stderr).toContain('FLEETGATE_LOG_LEVEL');
  });
});
