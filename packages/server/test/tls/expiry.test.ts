import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/infra/logging/index.ts';
import {
  createCertificateAuthority,
  initTls,
  issueServerCertificate,
  loadTlsPair,
  type PemPair,
  subjectAltNamesFor,
  TlsError,
  type TlsPair,
  watchTlsPair,
} from '../../src/infra/tls/index.ts';

/** Certificates that are out of date: refused on load, and never swapped in by the watcher. */
const dayMs = 24 * 3600 * 1000;
const dirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-tls-expiry-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A server certificate for localhost, signed by a CA that is still valid, whose 30 days ended a year ago. */
async function expiredPair(): Promise<PemPair> {
  const ca = await createCertificateAuthority();
  return issueServerCertificate(ca, subjectAltNamesFor(['localhost']), {
    now: new Date(Date.now() - 400 * dayMs),
    days: 30,
  });
}

function writePair(dir: string, pair: PemPair, name = 'server') {
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  fs.writeFileSync(keyFile, pair.key, { mode: 0o600 });
  fs.writeFileSync(certFile, pair.cert);
  return { certFile, keyFile };
}

describe('loadTlsPair with an expired certificate', () => {
  it('throws a TlsError that says the certificate expired and how to renew it', async () => {
    const { certFile, keyFile } = writePair(tempDir(), await expiredPair());
    let thrown: unknown;
    try {
      loadTlsPair(certFile, keyFile);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(TlsError);
    expect((thrown as Error).message).toMatch(/expired/);
    expect((thrown as Error).message).toContain(certFile);
    expect((thrown as Error).message).toContain('fleetgate init --renew');
  });

  it('throws for a certificate that is not valid yet, and loads a current one', async () => {
    const ca = await createCertificateAuthority();
    const future = await issueServerCertificate(ca, subjectAltNamesFor(['localhost']), {
      now: new Date(Date.now() + 30 * dayMs),
    });
    const dir = tempDir();
    const early = writePair(dir, future, 'future');
    expect(() => loadTlsPair(early.certFile, early.keyFile)).toThrow(TlsError);
    expect(() => loadTlsPair(early.certFile, early.keyFile)).toThrow(/not valid before/);
    const current = writePair(dir, await issueServerCertificate(ca, subjectAltNamesFor(['localhost'])));
    expect(loadTlsPair(current.certFile, current.keyFile).certificate.checkHost('localhost')).toBe(
      'localhost',
    );
  });
});

describe('watchTlsPair with an expired replacement', () => {
  it('keeps the previous certificate and says why; a valid renewal after it is taken', async () => {
    const dataDir = tempDir();
    const { files, serverFingerprint: original } = await initTls({ dataDir, hosts: ['localhost'] });
    const errors: string[] = [];
    const log = createLogger('silent');
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
      const expired = await expiredPair();
      // Key and certificate written together (temporary names, then renamed), as a renewal tool would.
      fs.writeFileSync(`${files.serverKey}.tmp`, expired.key, { mode: 0o600 });
      fs.writeFileSync(`${files.serverCert}.tmp`, expired.cert);
      fs.renameSync(`${files.serverKey}.tmp`, files.serverKey);
      fs.renameSync(`${files.serverCert}.tmp`, files.serverCert);

      await expect.poll(() => errors.some((e) => /expired/.test(e)), { timeout: 3000 }).toBe(true);
      expect(errors.find((e) => /expired/.test(e))).toMatch(/not reloaded, still serving the previous one/);
      // Give the watcher another poll or two: the expired pair is never handed over.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(reloaded).toHaveLength(0);

      const renewed = await initTls({ dataDir, hosts: ['localhost'], force: true });
      await expect.poll(() => reloaded.length, { timeout: 3000 }).toBe(1);
      expect(reloaded[0]?.certificate.fingerprint256).toBe(renewed.serverFingerprint);
      expect(renewed.serverFingerprint).not.toBe(original);
    } finally {
      stop();
    }
  });
});
