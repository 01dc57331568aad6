import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { initTls, loadTlsPair } from '@fleetgate/server';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  startTestServer,
  type TestServer,
} from '@fleetgate/server/test/harness.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliBin } from './processes.ts';

/**
 * Several servers and HTTPS (issue 21), through the real `bin/fleetgate.js` as a child process: a plain HTTP
 * server and a second server on HTTPS with its own CA (`fleetgate init`'s), each signed in to as its own profile.
 * No NODE_EXTRA_CA_CERTS anywhere: the CA is given with `login --ca` or trusted on first use.
 */

/** Each test runs several CLI processes (about a second each, more on a loaded machine). */
const PROCESSES_TIMEOUT_MS = 120_000;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

let plain: TestServer;
let plainUrl: string;
let secure: TestServer;
let secureUrl: string;
let caFile: string;
let otherCaFile: string;
const dirs: string[] = [];

async function temporaryDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

async function listen(server: TestServer, scheme: string): Promise<string> {
  await server.app.listen({ port: 0, host: '127.0.0.1' });
  const address = server.app.server.address();
  if (typeof address !== 'object' || address === null) throw new Error('the test server does not listen');
  return `${scheme}://127.0.0.1:${address.port}`;
}

beforeAll(async () => {
  plain = await startTestServer();
  plainUrl = await listen(plain, 'http');
  const data = await temporaryDir('fleetgate-https-data-');
  const { files } = await initTls({ dataDir: data, hosts: [] });
  caFile = files.caCert;
  const pair = loadTlsPair(files.serverCert, files.serverKey);
  secure = await startTestServer({}, { tls: { cert: pair.cert, key: pair.key } });
  secureUrl = await listen(secure, 'https');
  otherCaFile = (await initTls({ dataDir: await temporaryDir('fleetgate-https-other-'), hosts: [] })).files
    .caCert;
}, PROCESSES_TIMEOUT_MS);

afterAll(async () => {
  await plain?.close();
  await secure?.close();
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** `fleetgate ...args` as its own process, with only PATH and `home` (its saved logins); `stdin` piped in. */
function fleetgate(home: string, args: readonly string[], stdin = ''): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [cliBin, ...args],
      { timeout: 30_000, env: { PATH: process.env.PATH, HOME: home } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin!.end(stdin);
  });
}

function login(home: string, server: string, ...extra: string[]): Promise<Result> {
  return fleetgate(home, [
    'login',
    '--server',
    server,
    '--email',
    ADMIN_EMAIL,
    '--password',
    ADMIN_PASSWORD,
    ...extra,
  ]);
}

function failedWith(result: Result, reason: RegExp): void {
  expect(result.code, result.stdout).not.toBe(0);
  expect(result.stdout).toBe('');
  expect(result.stderr).toMatch(/^fleetgate: [^\n]+\n$/);
  expect(result.stderr).toMatch(reason);
}

describe('an HTTPS server with its own CA', { timeout: PROCESSES_TIMEOUT_MS }, () => {
  it('says what to do when its certificate cannot be verified, and sends no password to it', async () => {
    const home = await temporaryDir('fleetgate-https-home-');
    const signIns = async () =>
      (await secure.api('GET', '/api/v1/audit?action=auth.login', { token: secure.adminToken })).body.total;
    const before = await signIns();
    const refused = await login(home, secureUrl);
    failedWith(
      refused,
      /issued by a CA this computer does not trust .*SHA-256 [0-9A-F:]+\): .*--yes, or with --ca FILE/,
    );
    expect(refused.code).toBe(2);
    const ca = new X509Certificate(await readFile(caFile));
    expect(refused.stderr).toContain(ca.fingerprint256);
    // Nothing was sent: no sign-in reached the server.
    expect(await signIns()).toBe(before);
    // A command with a token given by hand says what to do too.
    failedWith(
      await fleetgate(home, ['--server', secureUrl, '--token', secure.adminToken, 'devices', 'ls']),
      /cannot verify the certificate of https:\/\/127\.0\.0\.1:\d+ \(\w+\): sign in with the server's CA, `fleetgate login --server .* --ca ca\.crt`/,
    );
  });

  it('signs in with --ca FILE, and later commands verify with the saved CA', async () => {
    const home = await temporaryDir('fleetgate-https-home-');
    const signedIn = await login(home, secureUrl, '--ca', caFile);
    expect(signedIn.code, signedIn.stderr).toBe(0);
    expect(signedIn.stdout).toContain(`logged in to ${secureUrl} as ${ADMIN_EMAIL} (profile default`);
    const listed = await fleetgate(home, ['orgs', 'ls', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout).items[0]).toMatchObject({ slug: 'default' });
  });

  it('refuses a CA file that did not issue the certificate, and a file that is not a certificate', async () => {
    const home = await temporaryDir('fleetgate-https-home-');
    failedWith(
      await login(home, secureUrl, '--ca', otherCaFile),
      /is not issued by the CA in .*give the server's own ca\.crt/,
    );
    const notPem = path.join(home, 'not.pem');
    await writeFile(notPem, 'hello');
    failedWith(await login(home, secureUrl, '--ca', notPem), /does not hold a PEM certificate/);
  });

  it('trusts the CA the server sends on first use with --yes, after showing its fingerprint', async () => {
    const home = await temporaryDir('fleetgate-https-home-');
    const signedIn = await login(home, secureUrl, '--yes');
    expect(signedIn.code, signedIn.stderr).toBe(0);
    const ca = new X509Certificate(await readFile(caFile));
    expect(signedIn.stderr).toContain(`SHA-256:  ${ca.fingerprint256}`);
    const whoami = await fleetgate(home, ['whoami']);
    expect(whoami.code, whoami.stderr).toBe(0);
    expect(whoami.stdout).toContain(ADMIN_EMAIL);
  });
});

describe('several servers, one profile each', { timeout: PROCESSES_TIMEOUT_MS }, () => {
  it('keeps the first login when signing in to a second server, and switches between them', async () => {
    const home = await temporaryDir('fleetgate-profiles-home-');
    const first = await login(home, plainUrl);
    expect(first.code, first.stderr).toBe(0);
    await plain.api('POST', '/api/v1/fleets', {
      token: plain.adminToken,
      body: { orgId: 1, name: 'only-on-the-plain-server' },
    });
    const second = await login(home, secureUrl, '--ca', caFile, '--profile', 'secure');
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain('other profiles: default');

    const contexts = JSON.parse((await fleetgate(home, ['context', 'ls', '--json'])).stdout);
    expect(contexts.items).toEqual([
      { name: 'default', current: false, server: plainUrl, email: ADMIN_EMAIL, org: null, ca: false },
      { name: 'secure', current: true, server: secureUrl, email: ADMIN_EMAIL, org: null, ca: true },
    ]);
    const fleetsOf = async (...args: string[]) =>
      JSON.parse((await fleetgate(home, [...args, 'fleets', 'ls', '--json'])).stdout).items.map(
        (f: { name: string }) => f.name,
      );
    expect(await fleetsOf()).not.toContain('only-on-the-plain-server');
    expect(await fleetsOf('--profile', 'default')).toContain('only-on-the-plain-server');
    // --server of a saved login picks that login's token too.
    expect(await fleetsOf('--server', plainUrl)).toContain('only-on-the-plain-server');

    const used = await fleetgate(home, ['context', 'use', 'default']);
    expect(used).toMatchObject({
      code: 0,
      stdout: `commands now use default: ${ADMIN_EMAIL} on ${plainUrl}\n`,
    });
    expect(await fleetsOf()).toContain('only-on-the-plain-server');
    failedWith(
      await fleetgate(home, ['context', 'use', 'nope']),
      /no profile "nope" \(saved: default, secure\)/,
    );
    failedWith(await fleetgate(home, ['--profile', 'nope', 'devices', 'ls']), /no profile "nope"/);

    // Signing in to a third server without --profile makes a profile named after it: nothing is replaced.
    const third = await startTestServer();
    try {
      const thirdUrl = await listen(third, 'http');
      const signedIn = await login(home, thirdUrl);
      expect(signedIn.code, signedIn.stderr).toBe(0);
      const names = JSON.parse((await fleetgate(home, ['context', 'ls', '--json'])).stdout).items.map(
        (p: { name: string }) => p.name,
      );
      expect(names).toEqual(['default', 'secure', new URL(thirdUrl).host]);
      // Logging out forgets that profile only.
      expect((await fleetgate(home, ['logout'])).code).toBe(0);
      const left = JSON.parse((await fleetgate(home, ['context', 'ls', '--json'])).stdout).items;
      expect(left.map((p: { name: string }) => p.name)).toEqual(['default', 'secure']);
    } finally {
      await third.close();
    }
  });
});
