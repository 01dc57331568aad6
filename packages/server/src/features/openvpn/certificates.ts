import fs from 'node:fs';
import path from 'node:path';
import {
  createCertificateAuthority,
  issueServerCertificate,
  subjectAltNamesFor,
  tlsFilesOf,
} from '../../infra/tls/index.ts';

/**
 * The OpenVPN server's certificate and the CA devices check it with (their `ca.crt`, served in `/os/v1/config`).
 * They live in `<data dir>/vpn/`: `ca.crt`, `server.crt`, `server.key` (0600), and `ca.key` when fleetgate made
 * the CA. Made on the first start with the VPN on, and never replaced after: a device keeps its `ca.crt` until
 * os-config fetches a new one (at boot, and daily), so a new CA would strand devices for up to a day.
 *
 * The CA is the one `fleetgate init` made for HTTPS (`<data dir>/tls/ca.key`) when there is one, so devices
 * and people trust one CA; else a CA of the VPN's own. An operator moving a fleet from openBalena puts that
 * VPN's `ca.crt`, `server.crt` and `server.key` here before the first start, and devices never notice the move.
 */
export interface VpnCertificates {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** The CA certificate(s), PEM, as devices receive it. */
  caPem: string;
}

export function vpnFilesOf(dataDir: string) {
  const dir = path.join(dataDir, 'vpn');
  return {
    dir,
    caFile: path.join(dir, 'ca.crt'),
    caKeyFile: path.join(dir, 'ca.key'),
    certFile: path.join(dir, 'server.crt'),
    keyFile: path.join(dir, 'server.key'),
  };
}

/** The VPN's certificate files, made first when missing (see above). */
export async function ensureVpnCertificates(dataDir: string): Promise<VpnCertificates> {
  const files = vpnFilesOf(dataDir);
  fs.mkdirSync(files.dir, { recursive: true, mode: 0o700 });
  const present = [files.caFile, files.certFile, files.keyFile].filter((f) => fs.existsSync(f));
  if (present.length > 0 && present.length < 3) {
    throw new Error(
      `${files.dir} holds ${present.map((f) => path.basename(f)).join(' and ')} but not all of ca.crt, server.crt and ` +
        'server.key: put back the missing file (from a backup, or from the VPN you moved from), or remove the folder ' +
        'to have new ones made (devices then need their new ca.crt from /os/v1/config)',
    );
  }
  if (present.length === 0) {
    const tls = tlsFilesOf(dataDir);
    const shared = fs.existsSync(tls.caCert) && fs.existsSync(tls.caKey);
    const ca = shared
      ? { cert: fs.readFileSync(tls.caCert, 'utf8'), key: fs.readFileSync(tls.caKey, 'utf8') }
      : await createCertificateAuthority({ commonName: 'fleetgate VPN CA' });
    if (!shared) write(files.caKeyFile, ca.key, 0o600);
    const server = await issueServerCertificate(ca, subjectAltNamesFor(['fleetgate-vpn']), { days: 3650 });
    write(files.keyFile, server.key, 0o600);
    write(files.certFile, server.cert, 0o644);
    write(files.caFile, ca.cert, 0o644);
  }
  return {
    dir: files.dir,
    caFile: files.caFile,
    certFile: files.certFile,
    keyFile: files.keyFile,
    caPem: fs.readFileSync(files.caFile, 'utf8'),
  };
}

function write(file: string, content: string, mode: number): void {
  const temporary = `${file}.tmp`;
  fs.writeFileSync(temporary, content, { mode });
  fs.chmodSync(temporary, mode);
  fs.renameSync(temporary, file);
}
