import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initTls, startServer } from '../../src/index.ts';
import { dialectUnderTest } from '../harness.ts';
import { type ListeningServer, requestJson, startListeningServer } from '../listening.ts';

const run = promisify(execFile);
const cliBin = fileURLToPath(new URL('../../../cli/bin/fleetgate.js', import.meta.url));

/** Runs the real `fleetgate` command; answers its exit code and output instead of throwing. */
async function fleetgate(...args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, [cliBin, ...args], {
      env: { ...process.env, FLEETGATE_DATA_DIR: '' },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

async function curl(...args: string[]) {
  try {
    const { stdout } = await run('curl', ['-sS', '--max-time', '5', ...args]);
    return { code: 0, stdout, stderr: '' };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** SHA-256 fingerprint of the certificate a NEW TLS connection to `url` is served. */
function servedFingerprint(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    // Only the certificate is read here, not trusted: verification is what the curl tests check.
    const socket = tls.connect(
      { host: hostname, port: Number(port), servername: 'localhost', rejectUnauthorized: false },
      () => {
        resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? '');
        socket.end();
      },
    );
    socket.on('error', reject);
  });
}

const modeOf = (file: string) => fs.statSync(file).mode & 0o777;

describe(`fleetgate init (${dialectUnderTest})`, () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-init-'));
  const tlsDir = path.join(dataDir, 'tls');
  afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('writes a CA and a server certificate with 0600 keys and a SAN for every host', async () => {
    const result = await fleetgate(
      'init',
      '--host',
      'fleet.example.com',
      '--host',
      '10.1.2.3',
      '--data-dir',
      dataDir,
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(path.join(tlsDir, 'ca.crt'));
    expect(result.stdout).toMatch(/Next:\n.*fleetgate serve --data-dir/);

    expect(modeOf(path.join(tlsDir, 'ca.key'))).toBe(0o600);
    expect(modeOf(path.join(tlsDir, 'server.key'))).toBe(0o600);
    const ca = new X509Certificate(fs.readFileSync(path.join(tlsDir, 'ca.crt')));
    const server = new X509Certificate(fs.readFileSync(path.join(tlsDir, 'server.crt')));
    expect(ca.ca).toBe(true);
    expect(server.checkIssued(ca) && server.verify(ca.publicKey)).toBe(true);
    expect(server.subjectAltName?.split(', ')).toEqual([
      'DNS:fleet.example.com',
      'IP Address:10.1.2.3',
      'DNS:localhost',
      'IP Address:127.0.0.1',
      'IP Address:0:0:0:0:0:0:0:1',
    ]);
    const key = createPrivateKey(fs.readFileSync(path.join(tlsDir, 'server.key')));
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(server.checkPrivateKey(key)).toBe(true);
    const yearsValid = (cert: X509Certificate) =>
      (Date.parse(cert.validTo) - Date.now()) / (365.25 * 24 * 3600e3);
    expect(yearsValid(ca)).toBeCloseTo(10, 0);
    expect(yearsValid(server)).toBeCloseTo(2, 0);
  });

  it('refuses to overwrite without --force, and with --force keeps the CA', async () => {
    const before = fs.readFileSync(path.join(tlsDir, 'server.crt'), 'utf8');
    const caBefore = fs.readFileSync(path.join(tlsDir, 'ca.crt'), 'utf8');
    const refused = await fleetgate('init', '--host', 'other.example.com', '--data-dir', dataDir);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/refusing to overwrite .*server\.crt.*--force/);
    expect(fs.readFileSync(path.join(tlsDir, 'server.crt'), 'utf8')).toBe(before);

    const forced = await fleetgate(
      '--json',
      'init',
      '--host',
      'other.example.com',
      '--data-dir',
      dataDir,
      '--force',
    );
    expect(forced.code).toBe(0);
    const answer = JSON.parse(forced.stdout);
    expect(answer.keptCa).toBe(true);
    expect(answer.hosts).toContain('other.example.com');
    expect(fs.readFileSync(path.join(tlsDir, 'server.crt'), 'utf8')).not.toBe(before);
    expect(fs.readFileSync(path.join(tlsDir, 'ca.crt'), 'utf8')).toBe(caBefore);
    expect(modeOf(path.join(tlsDir, 'server.key'))).toBe(0o600);
  });
});

describe(`fleetgate serve over HTTPS (${dialectUnderTest})`, () => {
  let server: ListeningServer;
  let tlsDir: string;
  beforeAll(async () => {
    server = await startListeningServer({ tls: true });
    tlsDir = path.join(server.dataDir, 'tls');
  });
  afterAll(async () => {
    await server?.close();
  });
  const port = () => new URL(server.url).port;
  const waitForFingerprint = (fingerprint: string) =>
    expect.poll(() => servedFingerprint(server.url), { timeout: 8000, interval: 100 }).toBe(fingerprint);

  it('answers curl that trusts ca.crt, and fails verification without it', async () => {
    expect(server.url).toMatch(/^https:\/\//);
    expect(server.caFile).toBe(path.join(tlsDir, 'ca.crt'));
    const trusted = await curl(
      '--cacert',
      server.caFile as string,
      '-w',
      '%{http_code}',
      '-o',
      '/dev/null',
      `https://localhost:${port()}/healthz`,
    );
    expect(trusted).toMatchObject({ code: 0, stdout: '200' });
    const untrusted = await curl('-o', '/dev/null', `https://localhost:${port()}/healthz`);
    expect(untrusted.code).toBe(60); // CURLE_PEER_FAILED_VERIFICATION
    const plain = await curl('-o', '/dev/null', `http://localhost:${port()}/healthz`);
    expect(plain.code).not.toBe(0);
  });

  it('serves a renewed certificate to new connections while an open keep-alive connection carries on', async () => {
    const ca = fs.readFileSync(server.caFile as string);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
    const get = () =>
      new Promise<{ status: number; reused: boolean; socket: tls.TLSSocket }>((resolve, reject) => {
        const request = https.get(`${server.url}/healthz`, { agent }, (response) => {
          // Kept now: at 'end' the socket goes back to the agent and the response lets go of it.
          const socket = response.socket as tls.TLSSocket;
          response.resume();
          response.on('end', () =>
            resolve({ status: response.statusCode ?? 0, reused: request.reusedSocket, socket }),
          );
        });
        request.on('error', reject);
      });
    try {
      const first = await get();
      const original = await servedFingerprint(server.url);
      expect(first.status).toBe(200);
      expect(first.socket.getPeerX509Certificate()?.fingerprint256).toBe(original);

      const renewed = await initTls({ dataDir: server.dataDir, hosts: ['localhost'], force: true });
      expect(renewed.serverFingerprint).not.toBe(original);
      await waitForFingerprint(renewed.serverFingerprint);

      // The connection opened before the renewal still works, with the certificate it shook hands with.
      const second = await get();
      expect(second).toMatchObject({ status: 200, reused: true });
      expect(second.socket).toBe(first.socket);
      const trusted = await curl(
        '--cacert',
        server.caFile as string,
        '-w',
        '%{http_code}',
        '-o',
        '/dev/null',
        `https://localhost:${port()}/healthz`,
      );
      expect(trusted.stdout).toBe('200');
    } finally {
      agent.destroy();
    }
  });

  it('switches to a certificate from a new CA, which clients trusting the new ca.crt accept', async () => {
    const oldCa = fs.readFileSync(server.caFile as string);
    const replaced = await initTls({
      dataDir: server.dataDir,
      hosts: ['localhost'],
      force: true,
      newCa: true,
    });
    expect(replaced.keptCa).toBe(false);
    await waitForFingerprint(replaced.serverFingerprint);
    const answer = await requestJson(`${server.url}/api/v1/fleets`, {
      token: server.adminToken,
      ca: fs.readFileSync(server.caFile as string),
    });
    expect(answer.status).toBe(200);
    await expect(requestJson(`${server.url}/healthz`, { ca: oldCa })).rejects.toThrow(/certificate/);
  });

  it('keeps serving the old certificate when the replacement is broken', async () => {
    const serving = await servedFingerprint(server.url);
    const serverKey = path.join(tlsDir, 'server.key');
    const serverCert = path.join(tlsDir, 'server.crt');
    // A key that does not match the certificate.
    fs.copyFileSync(path.join(tlsDir, 'ca.key'), serverKey);
    // And then a certificate that does not parse.
    await new Promise((resolve) => setTimeout(resolve, 400));
    fs.writeFileSync(serverCert, '-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n');
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(await servedFingerprint(server.url)).toBe(serving);
    const trusted = await curl(
      '--cacert',
      server.caFile as string,
      '-w',
      '%{http_code}',
      '-o',
      '/dev/null',
      `https://localhost:${port()}/healthz`,
    );
    expect(trusted.stdout).toBe('200');

    // A good pair afterwards is picked up again.
    const fixed = await initTls({ dataDir: server.dataDir, hosts: ['localhost'], force: true });
    await waitForFingerprint(fixed.serverFingerprint);
  });
});

describe(`fleetgate serve with --tls-cert/--tls-key (${dialectUnderTest})`, () => {
  it('serves the named files, and refuses a certificate without its key', async () => {
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-certs-'));
    try {
      const { files, serverFingerprint } = await initTls({ dataDir: elsewhere, hosts: ['localhost'] });
      const server = await startListeningServer({
        caFile: files.caCert,
        flags: { tlsCert: files.serverCert, tlsKey: files.serverKey },
      });
      try {
        expect(server.url).toMatch(/^https:\/\//);
        expect(server.caFile).toBe(files.caCert);
        expect(await servedFingerprint(server.url)).toBe(serverFingerprint);
        const answer = await requestJson(`${server.url}/healthz`, { ca: fs.readFileSync(files.caCert) });
        expect(answer.status).toBe(200);
      } finally {
        await server.close();
      }
      await expect(
        startServer({
          print: () => {},
          env: {},
          flags: { dataDir: elsewhere, tlsCert: files.serverCert, httpPort: 0, logLevel: 'silent' },
        }),
      ).rejects.toThrow(/FLEETGATE_TLS_KEY: required with FLEETGATE_TLS_CERT/);
      await expect(
        startServer({
          print: () => {},
          env: {},
          flags: {
            dataDir: elsewhere,
            tlsCert: files.serverCert,
            tlsKey: files.caKey,
            httpPort: 0,
            logLevel: 'silent',
          },
        }),
      ).rejects.toThrow(/does not match/);
    } finally {
      fs.rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});
