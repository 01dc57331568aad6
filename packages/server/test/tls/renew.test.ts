/**
 * Certificate expiry and renewal as an operator meets them: a server certificate with fewer than 30 days left is
 * a warning in the banner and the log, its days left are in `/readyz` and `/metrics`, and the real `fleetgate init
 * --renew` issues a new one from the same CA, for the same names, which the running server serves to new
 * connections while a TLS connection opened before carries on. SQLite, or PostgreSQL with DATABASE_URL.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../src/index.ts';
import { dropPostgresSchema } from '../../src/infra/db/index.ts';
import {
  createCertificateAuthority,
  initTls,
  issueServerCertificate,
  subjectAltNamesFor,
  tlsFilesOf,
} from '../../src/infra/tls/index.ts';
import { ADMIN_EMAIL, ADMIN_PASSWORD, dialectUnderTest } from '../harness.ts';
import { requestJson } from '../listening.ts';

const run = promisify(execFile);
const cliBin = fileURLToPath(new URL('../../../cli/bin/fleetgate.js', import.meta.url));
const dayMs = 24 * 3600 * 1000;

/** Runs the real `fleetgate` command with `env` added; answers its exit code and output instead of throwing. */
async function fleetgate(args: string[], env: NodeJS.ProcessEnv = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [cliBin, ...args], {
      env: { ...process.env, FLEETGATE_DATA_DIR: '', FLEETGATE_TLS_CERT: '', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** The value of one sample of the Prometheus text `metrics`. */
function sample(metrics: string, name: string, labels: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  if (!line) throw new Error(`no ${name}{${labels}} in /metrics`);
  return Number(line.split(' ')[1]);
}

/** SHA-256 fingerprint of the certificate a NEW TLS connection to `url` is served. */
function servedFingerprint(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? '');
      socket.end();
    });
    socket.on('error', reject);
  });
}

describe(`a server certificate close to its end (${dialectUnderTest})`, () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-renew-'));
  const files = tlsFilesOf(dataDir);
  const schema = `fg_test_${randomBytes(6).toString('hex')}`;
  let server: RunningServer;
  let banner = '';
  let logs = '';
  let ca: Buffer;
  const get = (url: string) => requestJson(`${server.url}${url}`, { ca });

  beforeAll(async () => {
    // fleetgate's own CA, then a server certificate from it with 10 days left, for a name of its own.
    await initTls({ dataDir, hosts: ['fleet.example.com'] });
    const pair = await issueServerCertificate(
      { cert: fs.readFileSync(files.caCert, 'utf8'), key: fs.readFileSync(files.caKey, 'utf8') },
      subjectAltNamesFor(['fleet.example.com']),
      { days: 10 },
    );
    fs.writeFileSync(files.serverKey, pair.key, { mode: 0o600 });
    fs.writeFileSync(files.serverCert, pair.cert);
    ca = fs.readFileSync(files.caCert);
    server = await startServer({
      env: process.env,
      print: (text) => {
        banner += text;
      },
      logDestination: new Writable({
        write(chunk, _encoding, done) {
          logs += chunk;
          done();
        },
      }),
      flags: {
        dataDir,
        adminEmail: ADMIN_EMAIL,
        adminPassword: ADMIN_PASSWORD,
        logLevel: 'info',
        httpPort: 0,
        proxyPort: 0,
        sshPort: 0,
        listen: '127.0.0.1',
        dbSchema: process.env.DATABASE_URL ? schema : 'public',
      },
    });
  });

  afterAll(async () => {
    await server?.close();
    if (server?.config.databaseUrl) await dropPostgresSchema(server.config.databaseUrl, schema);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('is a warning in the banner and the log, saying how to renew it, with its days left in /readyz and /metrics', async () => {
    expect(banner).toContain(
      `WARNING: the server certificate ${files.serverCert} expires in 9 day(s), on ` +
        `${new Date(Date.now() + 10 * dayMs).toISOString().slice(0, 10)}: renew it with ` +
        `\`fleetgate init --renew --data-dir ${dataDir}\``,
    );
    // The CA has ten years: no word about it.
    expect(banner).not.toMatch(/WARNING: the CA/);
    const warning = logs
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line))
      .find((line) => line.certificate === 'server');
    expect(warning).toMatchObject({ level: 40, daysLeft: 9, file: files.serverCert });

    const ready = await get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({
      status: 'ready',
      tls: {
        server: { daysLeft: 9, expiringSoon: true },
        ca: { daysLeft: expect.any(Number), expiringSoon: false },
      },
    });
    expect(ready.body.tls.ca.daysLeft).toBeGreaterThan(3600);

    const metrics = (await get('/metrics')).text;
    const serverSeconds = sample(metrics, 'fleetgate_tls_certificate_expiry_seconds', 'certificate="server"');
    expect(serverSeconds).toBeGreaterThan(10 * 86400 - 3600);
    expect(serverSeconds).toBeLessThanOrEqual(10 * 86400);
    expect(sample(metrics, 'fleetgate_tls_certificate_expiry_seconds', 'certificate="ca"')).toBeGreaterThan(
      3600 * 86400,
    );
  });

  it('is renewed by `fleetgate init --renew` from the same CA, for the same names, under live TLS connections', async () => {
    const caKey = fs.readFileSync(files.caKey);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
    const request = () =>
      new Promise<{ status: number; reused: boolean; socket: tls.TLSSocket }>((resolve, reject) => {
        const sent = https.get(`${server.url}/healthz`, { agent }, (response) => {
          const socket = response.socket as tls.TLSSocket;
          response.resume();
          response.on('end', () =>
            resolve({ status: response.statusCode ?? 0, reused: sent.reusedSocket, socket }),
          );
        });
        sent.on('error', reject);
      });
    try {
      const before = await request();
      const original = await servedFingerprint(server.url);
      expect(before.socket.getPeerX509Certificate()?.fingerprint256).toBe(original);

      const renew = await fleetgate(['init', '--renew', '--data-dir', dataDir, '--json']);
      expect(renew.code, renew.stderr).toBe(0);
      const renewed = JSON.parse(renew.stdout);
      expect(renewed).toMatchObject({
        renewed: true,
        keptCa: true,
        written: [files.serverCert, files.serverKey],
        hosts: ['fleet.example.com', 'localhost', '127.0.0.1', '::1'],
      });
      expect(Date.parse(renewed.serverValidTo)).toBeGreaterThan(Date.now() + 700 * dayMs);
      expect(renewed.serverFingerprint).not.toBe(original);
      // Nothing else changed: the CA, its key, the data directory's other files.
      expect(fs.readFileSync(files.caCert)).toEqual(ca);
      expect(fs.readFileSync(files.caKey)).toEqual(caKey);
      expect(fs.readdirSync(files.dir).sort()).toEqual(['ca.crt', 'ca.key', 'server.crt', 'server.key']);

      // New connections get the renewed certificate, trusted through the same ca.crt...
      await expect
        .poll(() => servedFingerprint(server.url), { timeout: 8000, interval: 100 })
        .toBe(renewed.serverFingerprint);
      expect((await get('/healthz')).status).toBe(200);
      // ...while the connection opened before the renewal carries on with the one it shook hands with.
      const after = await request();
      expect(after).toMatchObject({ status: 200, reused: true });
      expect(after.socket).toBe(before.socket);

      expect((await get('/readyz')).body.tls.server).toMatchObject({ expiringSoon: false });
      expect((await get('/readyz')).body.tls.server.daysLeft).toBeGreaterThanOrEqual(729);
      const metrics = (await get('/metrics')).text;
      expect(
        sample(metrics, 'fleetgate_tls_certificate_expiry_seconds', 'certificate="server"'),
      ).toBeGreaterThan(729 * 86400);
    } finally {
      agent.destroy();
    }
  });

  it('adds the --host names given to --renew to those already served', async () => {
    const renew = await fleetgate([
      'init',
      '--renew',
      '--data-dir',
      dataDir,
      '--host',
      'fleet2.example.com',
      '--json',
    ]);
    expect(renew.code, renew.stderr).toBe(0);
    expect(JSON.parse(renew.stdout).hosts).toEqual([
      'fleet.example.com',
      'localhost',
      '127.0.0.1',
      '::1',
      'fleet2.example.com',
    ]);
  });
});

describe('fleetgate init --renew refuses', () => {
  it('a certificate that is not from fleetgate: given with FLEETGATE_TLS_CERT, or not issued by the CA', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-renew-refused-'));
    try {
      const noCa = await fleetgate(['init', '--renew', '--data-dir', dataDir]);
      expect(noCa.code).toBe(1);
      expect(noCa.stderr).toContain(`no fleetgate CA in ${path.join(dataDir, 'tls')}`);

      const given = await fleetgate(['init', '--renew', '--data-dir', dataDir], {
        FLEETGATE_TLS_CERT: '/etc/ssl/fleet.pem',
      });
      expect(given.code).toBe(1);
      expect(given.stderr).toContain('FLEETGATE_TLS_CERT=/etc/ssl/fleet.pem, a certificate from elsewhere');

      // A server.crt put there by hand, from another CA: left alone.
      await initTls({ dataDir, hosts: ['fleet.example.com'] });
      const files = tlsFilesOf(dataDir);
      const other = await issueServerCertificate(
        await createCertificateAuthority(),
        subjectAltNamesFor(['fleet.example.com']),
      );
      fs.writeFileSync(files.serverCert, other.cert);
      fs.writeFileSync(files.serverKey, other.key);
      const foreign = await fleetgate(['init', '--renew', '--data-dir', dataDir]);
      expect(foreign.code).toBe(1);
      expect(foreign.stderr).toContain(`${files.serverCert} was not issued by the CA in ${files.caCert}`);
      expect(fs.readFileSync(files.serverCert, 'utf8')).toBe(other.cert);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
