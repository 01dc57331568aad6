import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { initTls } from '../../infra/tls/index.ts';
import { ensureVpnCertificates } from './certificates.ts';

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-vpn-certs-'));

describe('ensureVpnCertificates', () => {
  it('makes a CA and a server certificate OpenVPN clients accept (serverAuth), once, keys private', async () => {
    const dataDir = tempDir();
    const first = await ensureVpnCertificates(dataDir);
    // `remote-cert-tls server` on the device: the certificate must chain to the served CA and be for TLS servers.
    const verified = execFileSync('openssl', [
      'verify',
      '-purpose',
      'sslserver',
      '-CAfile',
      first.caFile,
      first.certFile,
    ]);
    expect(verified.toString()).toContain(': OK');
    expect(fs.statSync(first.keyFile).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(first.dir, 'ca.key')).mode & 0o777).toBe(0o600);
    const again = await ensureVpnCertificates(dataDir);
    expect(again.caPem).toBe(first.caPem);
    expect(fs.readFileSync(again.certFile, 'utf8')).toBe(fs.readFileSync(first.certFile, 'utf8'));
  });

  it("signs with fleetgate init's CA when there is one, so devices and people trust one CA", async () => {
    const dataDir = tempDir();
    await initTls({ dataDir, hosts: ['fleet.example.test'] });
    const vpn = await ensureVpnCertificates(dataDir);
    expect(vpn.caPem).toBe(fs.readFileSync(path.join(dataDir, 'tls', 'ca.crt'), 'utf8'));
    expect(fs.existsSync(path.join(vpn.dir, 'ca.key'))).toBe(false);
  });

  it('refuses to start with a partial set of files rather than replace a CA devices trust', async () => {
    const dataDir = tempDir();
    const vpn = await ensureVpnCertificates(dataDir);
    fs.rmSync(vpn.keyFile);
    await expect(ensureVpnCertificates(dataDir)).rejects.toThrow(/holds ca.crt and server.crt but not all/);
  });
});
