import { createPrivateKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../logging/index.ts';
import {
  createCertificateAuthority,
  initTls,
  issueServerCertificate,
  loadTlsPair,
  subjectAltNamesFor,
  type TlsPair,
  watchTlsPair,
} from './index.ts';

const dirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-tls-unit-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('subjectAltNamesFor', () => {
  it('adds localhost and the loopback addresses, keeps IPs as IPs, drops duplicates', () => {
    expect(subjectAltNamesFor(['Fleet.Example.com', '10.0.0.5', 'localhost', '[fd00::1]'])).toEqual([
      { type: 'dns', value: 'fleet.example.com' },
      { type: 'ip', value: '10.0.0.5' },
      { type: 'dns', value: 'localhost' },
      { type: 'ip', value: 'fd00::1' },
      { type: 'ip', value: '127.0.0.1' },
      { type: 'ip', value: '::1' },
    ]);
  });

  it('refuses what is neither a host name nor an address', () => {
    for (const bad of ['two words', 'a_b.example', '-lead.example', 'x'.repeat(64)]) {
      expect(() => subjectAltNamesFor([bad]), bad).toThrow(/neither a host name nor an IP address/);
    }
  });
});

describe('certificates', () => {
  it('issues an ECDSA P-256 server certificate that its CA verifies, for server authentication only', async () => {
    const ca = await createCertificateAuthority();
    const server = await issueServerCertificate(ca, subjectAltNamesFor(['fleet.example.com']));
    const caCert = new X509Certificate(ca.cert);
    const serverCert = new X509Certificate(server.cert);
    expect(caCert.ca).toBe(true);
    expect(serverCert.ca).toBe(false);
    expect(serverCert.checkIssued(caCert)).toBe(true);
    expect(serverCert.verify(caCert.publicKey)).toBe(true);
    expect(serverCert.checkHost('fleet.example.com')).toBe('fleet.example.com');
    expect(serverCert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(serverCert.checkHost('other.example.com')).toBeUndefined();
    expect(serverCert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(createPrivateKey(server.key).asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const years = (cert: X509Certificate) =>
      (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / (365.25 * 24 * 3600 * 1000);
    expect(years(caCert)).toBeCloseTo(10, 1);
    expect(years(serverCert)).toBeCloseTo(2, 1);
  });
});

describe('loadTlsPair', () => {
  it('names the file that is wrong', async () => {
    const dir = tempDir();
    const { files } = await initTls({ dataDir: dir, hosts: ['localhost'] });
    expect(loadTlsPair(files.serverCert, files.serverKey).certificate.checkHost('localhost')).toBe(
      'localhost',
    );
    expect(() => loadTlsPair(files.serverCert, files.caKey)).toThrow(
      `the key in ${files.caKey} does not match the certificate in ${files.serverCert}`,
    );
    const garbage = path.join(dir, 'garbage.pem');
    fs.writeFileSync(garbage, 'not a certificate');
    expect(() => loadTlsPair(garbage, files.serverKey)).toThrow(`${garbage} does not hold a PEM certificate`);
    expect(() => loadTlsPair(files.serverCert, garbage)).toThrow(`${garbage} does not hold an unencrypted`);
    expect(() => loadTlsPair(path.join(dir, 'missing.crt'), files.serverKey)).toThrow(/cannot read/);
  });
});

describe('watchTlsPair', () => {
  it('reloads a good new pair and reports a bad one without reloading it', async () => {
    const dataDir = tempDir();
    const { files } = await initTls({ dataDir, hosts: ['localhost'] });
    const errors: string[] = [];
    const log = createLogger('silent');
    // Only the message matters here: it is what an operator reads in the log.
    log.error = ((_object: unknown, message?: string) => {
      errors.push(message ?? '');
    }) as unknown as typeof log.error;
    const reloaded: TlsPair[] = [];
    const stop = watchTlsPair({
      certFile: files.serverCert,
      keyFile: files.serverKey,
      log,
      onReload: (pair) => reloaded.push(pair),
      debounceMs: 50,
      pollMs: 200,
    });
    try {
      const renewed = await initTls({ dataDir, hosts: ['localhost'], force: true });
      await expect.poll(() => reloaded.length, { timeout: 3000 }).toBe(1);
      expect(reloaded[0]?.certificate.fingerprint256).toBe(renewed.serverFingerprint);

      fs.copyFileSync(files.caKey, files.serverKey);
      await expect.poll(() => errors.length, { timeout: 3000 }).toBe(1);
      expect(errors[0]).toMatch(/not reloaded, still serving the previous one: the key in .* does not match/);
      expect(reloaded).toHaveLength(1);
    } finally {
      stop();
    }
  });
});
