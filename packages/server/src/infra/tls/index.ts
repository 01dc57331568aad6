import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import type { Logger } from '../logging/index.ts';
import {
  createCertificateAuthority,
  issueServerCertificate,
  type PemPair,
  type SubjectAltName,
  subjectAltNamesFor,
} from './certificates.ts';

export {
  type CertificateExpiry,
  type CertificateRole,
  expiryWarning,
  expiryWarningDays,
  ServedCertificates,
} from './expiry.ts';
export {
  createCertificateAuthority,
  issueServerCertificate,
  type PemPair,
  type SubjectAltName,
  subjectAltNamesFor,
};

/** A TLS problem people can act on: files present, unreadable, or a key that does not match. */
export class TlsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TlsError';
  }
}

/** Where `fleetgate init` writes, and `fleetgate serve` looks for, the TLS files of a data directory. */
export function tlsFilesOf(dataDir: string) {
  const dir = path.join(dataDir, 'tls');
  return {
    dir,
    caCert: path.join(dir, 'ca.crt'),
    caKey: path.join(dir, 'ca.key'),
    serverCert: path.join(dir, 'server.crt'),
    serverKey: path.join(dir, 'server.key'),
  };
}

export type TlsFiles = ReturnType<typeof tlsFilesOf>;

export interface InitTlsOptions {
  dataDir: string;
  /** Names and addresses clients use to reach the server; `localhost`, `127.0.0.1` and `::1` are always added. */
  hosts: readonly string[];
  /** Replace existing files. The CA is kept when its files are there, unless `newCa`. Default false. */
  force?: boolean;
  /** With `force`, also replace the CA (every device and client must then trust the new `ca.crt`). */
  newCa?: boolean;
}

export interface InitTlsResult {
  files: TlsFiles;
  /** Files written, in order. */
  written: string[];
  /** `true` when an existing CA signed the new server certificate. */
  keptCa: boolean;
  altNames: SubjectAltName[];
  serverValidTo: Date;
  caValidTo: Date;
  /** SHA-256 fingerprint of the server certificate, `AB:CD:…`. */
  serverFingerprint: string;
  /** The CA's SHA-256 fingerprint: what `fleetgate login` shows before it trusts the CA on first use. */
  caFingerprint: string;
}

/**
 * `fleetgate init`: creates `<dataDir>/tls/` with a CA (`ca.crt`, `ca.key`) and a server certificate
 * (`server.crt`, `server.key`) for `hosts`. Keys are written 0600. Refuses to replace existing files unless
 * `force`; each file is written to a temporary name and renamed, so a running server never reads half a file.
 */
export async function initTls(options: InitTlsOptions): Promise<InitTlsResult> {
  const files = tlsFilesOf(options.dataDir);
  const altNames = subjectAltNamesFor(options.hosts);
  const existing = [files.caCert, files.caKey, files.serverCert, files.serverKey].filter((file) =>
    fs.existsSync(file),
  );
  if (existing.length > 0 && !options.force) {
    throw new TlsError(
      `refusing to overwrite ${existing.join(', ')}: ` +
        'run again with --force to replace the server certificate (the CA is kept; add --new-ca to replace it too)',
    );
  }
  fs.mkdirSync(files.dir, { recursive: true, mode: 0o700 });

  const written: string[] = [];
  let ca: PemPair;
  const keptCa = !options.newCa && fs.existsSync(files.caCert) && fs.existsSync(files.caKey);
  if (keptCa) {
    ca = { cert: fs.readFileSync(files.caCert, 'utf8'), key: fs.readFileSync(files.caKey, 'utf8') };
    checkPair(ca.cert, ca.key, files.caCert, files.caKey);
  } else {
    ca = await createCertificateAuthority();
    writeAtomically(files.caKey, ca.key, 0o600);
    writeAtomically(files.caCert, ca.cert, 0o644);
    written.push(files.caCert, files.caKey);
  }
  const server = await issueServerCertificate(ca, altNames);
  // Key first: a watcher that sees only the new key fails the pair check and keeps the old pair until
  // the certificate lands a moment later.
  writeAtomically(files.serverKey, server.key, 0o600);
  writeAtomically(files.serverCert, fullChain(server.cert, ca.cert), 0o644);
  written.push(files.serverCert, files.serverKey);

  const serverCert = new X509Certificate(server.cert);
  return {
    files,
    written,
    keptCa,
    altNames,
    serverValidTo: new Date(serverCert.validTo),
    caValidTo: new Date(new X509Certificate(ca.cert).validTo),
    serverFingerprint: serverCert.fingerprint256,
    caFingerprint: new X509Certificate(ca.cert).fingerprint256,
  };
}

export interface RenewTlsOptions {
  dataDir: string;
  /** Names and addresses to add to those of the certificate in service. */
  hosts?: readonly string[];
}

/**
 * `fleetgate init --renew`: a new server key and certificate, signed by the data directory's existing CA, for the
 * names of the certificate in service plus `hosts`. Nothing else is touched (the CA, the database, the other
 * keys); each file is written under a temporary name and renamed, so a running server reloads the new pair by
 * itself. Throws `TlsError` when the data directory has no fleetgate CA, or its server certificate is not one
 * the CA issued (a certificate from elsewhere is renewed where it came from).
 */
export async function renewServerCertificate(options: RenewTlsOptions): Promise<InitTlsResult> {
  const files = tlsFilesOf(options.dataDir);
  if (!fs.existsSync(files.caCert) || !fs.existsSync(files.caKey)) {
    throw new TlsError(
      `no fleetgate CA in ${files.dir} (ca.crt and ca.key): --renew renews a certificate fleetgate issued. ` +
        'Run `fleetgate init --host <name>` to make them, or renew a certificate given with --tls-cert where it came from',
    );
  }
  const ca = { cert: fs.readFileSync(files.caCert, 'utf8'), key: fs.readFileSync(files.caKey, 'utf8') };
  const caCert = checkPair(ca.cert, ca.key, files.caCert, files.caKey);
  let names: string[] = [];
  if (fs.existsSync(files.serverCert)) {
    let current: X509Certificate;
    try {
      current = new X509Certificate(fs.readFileSync(files.serverCert));
    } catch (error) {
      throw new TlsError(
        `${files.serverCert} does not hold a PEM certificate: run \`fleetgate init --force --host <name>\``,
        {
          cause: error,
        },
      );
    }
    if (!current.checkIssued(caCert) || !current.verify(caCert.publicKey)) {
      throw new TlsError(
        `${files.serverCert} was not issued by the CA in ${files.caCert}: renew it where it came from, or replace ` +
          'it with one from this CA (`fleetgate init --force --host <name>`)',
      );
    }
    names = namesOf(current);
  }
  const altNames = subjectAltNamesFor([...names, ...(options.hosts ?? [])]);
  const server = await issueServerCertificate(ca, altNames);
  // Key first: a watcher that sees only the new key fails the pair check and keeps the old pair until
  // the certificate lands a moment later.
  writeAtomically(files.serverKey, server.key, 0o600);
  writeAtomically(files.serverCert, fullChain(server.cert, ca.cert), 0o644);
  const serverCert = new X509Certificate(server.cert);
  return {
    files,
    written: [files.serverCert, files.serverKey],
    keptCa: true,
    altNames,
    serverValidTo: new Date(serverCert.validTo),
    caValidTo: new Date(caCert.validTo),
    serverFingerprint: serverCert.fingerprint256,
    caFingerprint: caCert.fingerprint256,
  };
}

/** The DNS names and IP addresses of a certificate's subjectAltName, IPv6 in its short form. */
function namesOf(certificate: X509Certificate): string[] {
  const names: string[] = [];
  for (const entry of (certificate.subjectAltName ?? '').split(', ')) {
    if (entry.startsWith('DNS:')) names.push(entry.slice(4));
    else if (entry.startsWith('IP Address:')) {
      const address = entry.slice(11);
      // Node writes IPv6 in full (0:0:0:0:0:0:0:1); the URL parser gives the short form subjectAltNamesFor compares.
      names.push(address.includes(':') ? new URL(`http://[${address}]/`).hostname.slice(1, -1) : address);
    }
  }
  return names;
}

/**
 * What `server.crt` holds: the server's certificate, then the CA's. Served whole, the chain lets a client that
 * does not know the CA yet show its fingerprint and trust it on first use (`fleetgate login`); clients that know
 * it verify as before.
 */
function fullChain(serverCert: string, caCert: string): string {
  return `${serverCert.trimEnd()}\n${caCert.trimEnd()}\n`;
}

function writeAtomically(file: string, content: string, mode: number): void {
  const temporary = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(temporary, content, { mode, flag: 'wx' });
  // `mode` is filtered by the umask on creation; set it exactly.
  fs.chmodSync(temporary, mode);
  fs.renameSync(temporary, file);
}

/** A certificate (chain) and its key, checked to belong together, as the HTTPS listener takes them. */
export interface TlsPair {
  cert: Buffer;
  key: Buffer;
  /** The leaf certificate, for fingerprints, names and expiry. */
  certificate: X509Certificate;
}

function checkPair(
  cert: string | Buffer,
  key: string | Buffer,
  certFile: string,
  keyFile: string,
): X509Certificate {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (error) {
    throw new TlsError(`${certFile} does not hold a PEM certificate`, { cause: error });
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new TlsError(`${keyFile} does not hold an unencrypted PEM private key`, { cause: error });
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new TlsError(`the key in ${keyFile} does not match the certificate in ${certFile}`);
  }
  // Serving a certificate every client refuses is worse than keeping the one in service.
  const now = Date.now();
  if (Date.parse(certificate.validTo) <= now) {
    throw new TlsError(
      `the certificate in ${certFile} expired on ${certificate.validTo}: renew it (fleetgate init --renew when fleetgate issued it, else where it came from)`,
    );
  }
  if (Date.parse(certificate.validFrom) > now) {
    throw new TlsError(`the certificate in ${certFile} is not valid before ${certificate.validFrom}`);
  }
  return certificate;
}

/** Reads and checks a certificate and key file. Throws `TlsError` saying which file is wrong and how. */
export function loadTlsPair(certFile: string, keyFile: string): TlsPair {
  let cert: Buffer;
  let key: Buffer;
  try {
    cert = fs.readFileSync(certFile);
    key = fs.readFileSync(keyFile);
  } catch (error) {
    throw new TlsError(`cannot read the TLS files: ${(error as Error).message}`, { cause: error });
  }
  const certificate = checkPair(cert, key, certFile, keyFile);
  try {
    // What the listener will do with them; catches what the checks above do not (a broken chain).
    tls.createSecureContext({ cert, key });
  } catch (error) {
    throw new TlsError(`${certFile} and ${keyFile} cannot serve TLS: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return { cert, key, certificate };
}

export interface WatchTlsOptions {
  certFile: string;
  keyFile: string;
  /** Called with each new pair that loads and checks. */
  onReload(pair: TlsPair): void;
  log: Logger;
  /** Quiet time after the last change before reloading, in ms. Default 200. */
  debounceMs?: number;
  /** Interval of the stat fallback, for file systems where fs.watch misses changes, in ms. Default 5000. */
  pollMs?: number;
}

/**
 * Watches a certificate and key for changes (fs.watch on their directories, plus a periodic stat) and
 * hands each new, valid pair to `onReload`. A pair that fails to load is logged and skipped, so the caller
 * keeps serving the previous one. Answers a function that stops watching.
 */
export function watchTlsPair(options: WatchTlsOptions): () => void {
  const debounceMs = options.debounceMs ?? 200;
  const signature = () =>
    [options.certFile, options.keyFile]
      .map((file) => {
        try {
          const stat = fs.statSync(file);
          return `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
        } catch {
          return 'missing';
        }
      })
      .join('|');
  // The signature of the files last tried, good or bad: a bad pair is reported once, not every poll.
  let tried = signature();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const check = () => {
    timer = undefined;
    if (stopped) return;
    const now = signature();
    if (now === tried) return;
    tried = now;
    try {
      const pair = loadTlsPair(options.certFile, options.keyFile);
      options.onReload(pair);
      options.log.info(
        {
          certFile: options.certFile,
          subject: pair.certificate.subject,
          validTo: pair.certificate.validTo,
          fingerprint: pair.certificate.fingerprint256,
        },
        'TLS certificate reloaded',
      );
    } catch (error) {
      options.log.error(
        { err: error, certFile: options.certFile, keyFile: options.keyFile },
        `TLS certificate not reloaded, still serving the previous one: ${(error as Error).message}`,
      );
    }
  };
  const schedule = () => {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(check, debounceMs);
  };

  const names = new Set([path.basename(options.certFile), path.basename(options.keyFile)]);
  const watchers: fs.FSWatcher[] = [];
  for (const dir of new Set([path.dirname(options.certFile), path.dirname(options.keyFile)])) {
    try {
      const watcher = fs.watch(dir, { persistent: false }, (_event, name) => {
        if (name === null || names.has(name.toString())) schedule();
      });
      // A removed or unmounted directory: the poll below still notices when the files come back.
      watcher.on('error', () => watcher.close());
      watchers.push(watcher);
    } catch {
      // Some file systems cannot be watched; the poll covers them.
    }
  }
  const poll = setInterval(schedule, options.pollMs ?? 5000);
  poll.unref();

  return () => {
    stopped = true;
    clearInterval(poll);
    if (timer) clearTimeout(timer);
    for (const watcher of watchers) watcher.close();
  };
}
