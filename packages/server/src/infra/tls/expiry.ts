import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../logging/index.ts';

/** Fewer days than this left on the server certificate or the CA: a warning in the log and the banner. */
export const expiryWarningDays = 30;

const dayMs = 24 * 3600 * 1000;

/** Which certificate: the one HTTPS serves, or the CA that issued it (when it is fleetgate's own). */
export type CertificateRole = 'server' | 'ca';

export interface CertificateExpiry {
  certificate: CertificateRole;
  file: string;
  /** The certificate's notAfter. */
  validTo: Date;
  /** Whole days left, rounded down; negative once expired. */
  daysLeft: number;
  /** Fewer than `expiryWarningDays` left. */
  expiringSoon: boolean;
}

/**
 * The served certificates' expiry, kept current: the server certificate is replaced on each live reload, and the
 * CA file is read again then (a `fleetgate init --force --new-ca` changes it too). Read by the metrics, `/readyz`,
 * the banner and the daily log check.
 */
export class ServedCertificates {
  private server: { file: string; certificate: X509Certificate };
  private ca: { file: string; certificate: X509Certificate } | undefined;

  constructor(
    server: { file: string; certificate: X509Certificate },
    private readonly caFile: string | undefined,
  ) {
    this.server = server;
    this.ca = readCa(caFile);
  }

  /** A new server certificate is in service (live reload). */
  replaced(certificate: X509Certificate): void {
    this.server = { file: this.server.file, certificate };
    this.ca = readCa(this.caFile) ?? this.ca;
  }

  /** The server certificate, then the CA when there is one, as of `now` (ms). */
  expiry(now = Date.now()): CertificateExpiry[] {
    const served = [{ role: 'server' as const, ...this.server }];
    const all = this.ca ? [...served, { role: 'ca' as const, ...this.ca }] : served;
    return all.map(({ role, file, certificate }) => {
      const validTo = new Date(certificate.validTo);
      const daysLeft = Math.floor((validTo.getTime() - now) / dayMs);
      return { certificate: role, file, validTo, daysLeft, expiringSoon: daysLeft < expiryWarningDays };
    });
  }

  /** Logs a warning for each certificate with fewer than `expiryWarningDays` left, saying how to renew it. */
  warnIfExpiring(log: Logger, now = Date.now()): CertificateExpiry[] {
    const soon = this.expiry(now).filter((entry) => entry.expiringSoon);
    for (const entry of soon) {
      log.warn(
        {
          certificate: entry.certificate,
          file: entry.file,
          validTo: entry.validTo.toISOString(),
          daysLeft: entry.daysLeft,
        },
        expiryWarning(entry, this.caFile),
      );
    }
    return soon;
  }
}

/**
 * What to say about a certificate that expires soon, with what renews it: `fleetgate init --renew` for a server
 * certificate fleetgate issued (from the CA `caFile`, `<data dir>/tls/ca.crt`), the certificate's own source for one
 * given with --tls-cert, a new CA (which every device must then trust) for the CA.
 */
export function expiryWarning(entry: CertificateExpiry, caFile: string | undefined): string {
  const when = `${entry.daysLeft < 0 ? 'expired' : `expires in ${entry.daysLeft} day(s)`}, on ${entry.validTo.toISOString().slice(0, 10)}`;
  if (entry.certificate === 'ca') {
    return (
      `the CA ${entry.file} ${when}: make a new one with \`fleetgate init --force --new-ca --host <name>\` ` +
      'and give the new ca.crt to every device and client before then'
    );
  }
  return caFile
    ? `the server certificate ${entry.file} ${when}: renew it with ` +
        `\`fleetgate init --renew --data-dir ${path.dirname(path.dirname(caFile))}\` (the running server picks it up)`
    : `the server certificate ${entry.file} ${when}: replace the file with a renewed one (the running server picks it up)`;
}

function readCa(file: string | undefined): { file: string; certificate: X509Certificate } | undefined {
  if (!file) return undefined;
  try {
    return { file, certificate: new X509Certificate(fs.readFileSync(file)) };
  } catch {
    // Missing or unreadable: its expiry is unknown, which is no reason to stop serving.
    return undefined;
  }
}
