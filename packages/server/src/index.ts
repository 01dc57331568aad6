import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type tls from 'node:tls';
import { buildApp } from './app.ts';
import { sharesHttpPort } from './features/openvpn/index.ts';
import { ensureFirstOwner } from './features/setup/service.ts';
import { type PasswordReset, resetPasswordOnMachine } from './features/users/service.ts';
import { type Config, ConfigError, type ConfigInput, envNames, loadConfig } from './infra/config/index.ts';
import { secureDataDir } from './infra/data-dir/index.ts';
import { type DatabaseHandle, openDatabase } from './infra/db/index.ts';
import { AppError } from './infra/errors/index.ts';
import { EventBus } from './infra/events/index.ts';
import { createLogger, type DestinationStream } from './infra/logging/index.ts';
import { LISTEN_BACKLOG } from './infra/net/index.ts';
import {
  type CertificateExpiry,
  expiryWarning,
  loadTlsPair,
  ServedCertificates,
  TlsError,
  type TlsPair,
  tlsFilesOf,
  watchTlsPair,
} from './infra/tls/index.ts';

export { buildApp } from './app.ts';
export {
  type DoctorCheck,
  type DoctorLevel,
  type DoctorOptions,
  type DoctorReport,
  runDoctor,
} from './doctor.ts';
/** How devices' identities and keys are read and hashed, for clients that sign auth requests as devices do (bench/auth). */
export { canonicalIdentity, identityHash, parsePublicKey } from './features/auth-sets/keys.ts';
export { planVpn, type VpnInstancePlan, VpnPlanError } from './features/openvpn/index.ts';
export { type Config, ConfigError, envNames, loadConfig } from './infra/config/index.ts';
export { dropPostgresSchema, openDatabase } from './infra/db/index.ts';
export { createLogger } from './infra/logging/index.ts';
export { SecretKeyError } from './infra/secrets/index.ts';
export {
  createCertificateAuthority,
  type InitTlsOptions,
  type InitTlsResult,
  initTls,
  issueServerCertificate,
  loadTlsPair,
  type PemPair,
  type RenewTlsOptions,
  renewServerCertificate,
  subjectAltNamesFor,
  TlsError,
  type TlsPair,
  tlsFilesOf,
  watchTlsPair,
} from './infra/tls/index.ts';
export { type RotatedSecrets, rotateSecretKeys } from './rotate-secrets.ts';
export { ensureFirstOwner };

export interface RunningServer {
  /** `https://…` when serving TLS, else `http://…`; always a loopback address when listening on all of them. */
  url: string;
  config: Config;
  database: DatabaseHandle;
  /** The files HTTPS is served from (reloaded when they change); unset = plain HTTP. */
  tls?: ServedTlsFiles;
  /** The port the HTTP CONNECT proxy to devices listens on (on the same address as the API). */
  proxyPort: number;
  /** The port the SSH gateway listens on (on the same address as the API). */
  sshPort: number;
  close(): Promise<void>;
}

export interface ServedTlsFiles {
  certFile: string;
  keyFile: string;
  /** The CA that clients should trust, when the certificate came from `fleetgate init`. */
  caFile?: string;
}

export interface StartOptions {
  flags?: ConfigInput;
  env?: NodeJS.ProcessEnv;
  /** Where the banner goes; default standard output. */
  print?: (text: string) => void;
  /** Where log lines (JSON) go; default standard output. */
  logDestination?: DestinationStream;
}

/**
 * Which certificate and key `serve` uses: the `tlsCert`/`tlsKey` settings when given (both), else
 * `<dataDir>/tls/server.crt` and `server.key` when both exist (made by `fleetgate init`), else none.
 */
export function servedTlsFiles(config: Config): ServedTlsFiles | undefined {
  if (config.tlsCert || config.tlsKey) {
    if (!config.tlsCert || !config.tlsKey) {
      const missing = config.tlsCert ? envNames.tlsKey : envNames.tlsCert;
      throw new ConfigError([
        `${missing}: required with ${config.tlsCert ? envNames.tlsCert : envNames.tlsKey}`,
      ]);
    }
    return { certFile: path.resolve(config.tlsCert), keyFile: path.resolve(config.tlsKey) };
  }
  const files = tlsFilesOf(config.dataDir);
  const hasCert = fs.existsSync(files.serverCert);
  const hasKey = fs.existsSync(files.serverKey);
  if (!hasCert && !hasKey) return undefined;
  if (!hasCert || !hasKey) {
    throw new TlsError(
      `${hasCert ? files.serverCert : files.serverKey} exists without ${hasCert ? files.serverKey : files.serverCert}; ` +
        'restore it, or run `fleetgate init --force --host <name>` to issue a new pair',
    );
  }
  return {
    certFile: files.serverCert,
    keyFile: files.serverKey,
    ...(fs.existsSync(files.caCert) ? { caFile: files.caCert } : {}),
  };
}

/** Which listener each port setting opens, and the `fleetgate serve` flag that moves it. */
const listeners = {
  httpPort: { name: 'the HTTP API and web UI', flag: '--port' },
  proxyPort: { name: 'the HTTP CONNECT proxy', flag: '--proxy-port' },
  sshPort: { name: 'the SSH gateway', flag: '--ssh-port' },
  vpnPort: { name: "the OpenVPN devices' port", flag: '--vpn-port' },
} as const;

/**
 * A listener could not bind its port (in use, or not allowed): says which listener, which address and port, and
 * which flag or variable moves it. `code` is the system error (`EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL`).
 */
export class ListenError extends Error {
  readonly code: string | undefined;
  readonly port: number;
  readonly setting: keyof typeof listeners;

  constructor(setting: keyof typeof listeners, address: string, port: number, cause: NodeJS.ErrnoException) {
    const { name, flag } = listeners[setting];
    const where = `${address.includes(':') ? `[${address}]` : address}:${port}`;
    const why =
      cause.code === 'EADDRINUSE'
        ? 'the port is already in use by another process'
        : cause.code === 'EACCES'
          ? 'not allowed (ports under 1024 need privileges)'
          : cause.message;
    super(
      `${name} cannot listen on ${where}: ${why}. Stop the other process, or choose another port with ` +
        `${flag} <port> or ${envNames[setting]} (0 picks a free one). The first owner is ` +
        'created, and its password shown, only once every port listens.',
      { cause },
    );
    this.name = 'ListenError';
    this.code = cause.code;
    this.port = port;
    this.setting = setting;
  }
}

/** Runs one listener's `listen`, turning a port it cannot bind into a `ListenError`. */
async function listening<T>(
  setting: keyof typeof listeners,
  config: Config,
  listen: () => Promise<T>,
): Promise<T> {
  try {
    return await listen();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      // The OpenVPN port opens as the app gets ready, inside the HTTP listener's `listen`: its error says so.
      const which = (error as { listener?: keyof typeof listeners }).listener ?? setting;
      throw new ListenError(which, config.listen, config[which], error as NodeJS.ErrnoException);
    }
    throw error;
  }
}

function isLoopback(address: string): boolean {
  return address === 'localhost' || address === '::1' || /^127\./.test(address);
}

/**
 * `fleetgate serve`: reads the configuration, makes the data directory private (`secureDataDir`), opens (and
 * migrates) the database, listens on every port (HTTPS when it has a certificate, see `servedTlsFiles`), then
 * creates the first owner on the very first start, and prints where to open fleetgate and how to sign in (with the
 * owner's password, and any certificate that expires within 30 days). A port it cannot bind throws `ListenError`
 * before any owner exists. The certificate is reloaded whenever its files change.
 */
export async function startServer(options: StartOptions = {}): Promise<RunningServer> {
  const config = loadConfig(options.env ?? process.env, options.flags ?? {});
  const print = options.print ?? ((text: string) => process.stdout.write(text));
  const log = createLogger(config.logLevel, options.logDestination);
  // Before the database: a wrong certificate stops the start without touching any data.
  const tlsFiles = servedTlsFiles(config);
  const tlsPair: TlsPair | undefined = tlsFiles && loadTlsPair(tlsFiles.certFile, tlsFiles.keyFile);
  const certificates =
    tlsFiles && tlsPair
      ? new ServedCertificates({ file: tlsFiles.certFile, certificate: tlsPair.certificate }, tlsFiles.caFile)
      : undefined;
  // Before anything is written to it; on PostgreSQL too, for the keys kept there.
  secureDataDir(config.dataDir, log);
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    schema: config.dbSchema,
    sqliteFile: path.join(config.dataDir, 'fleetgate.db'),
  });
  let stopWatching = () => {};
  let expiryCheck: NodeJS.Timeout | undefined;
  let app: Awaited<ReturnType<typeof buildApp>> | undefined;
  try {
    app = await buildApp({
      config,
      database,
      log,
      tls: tlsPair && { cert: tlsPair.cert, key: tlsPair.key },
      certificates,
      starting: true,
    });
    // Every listener first: a start that fails on a port (in use, not allowed) must fail before the first owner
    // and its one-time password exist, or that password is lost with the failed start and nobody can sign in.
    const target = app;
    // Devices' OpenVPN on the HTTP port (openBalena's 443 for both): the port is the VPN's front door, which hands
    // TLS and HTTP on to the HTTP listener, here on 127.0.0.1 only.
    const shared = sharesHttpPort(config);
    await listening('httpPort', config, () =>
      target.listen({
        ...(shared ? { host: '127.0.0.1', port: 0 } : { host: config.listen, port: config.httpPort }),
        backlog: LISTEN_BACKLOG,
      }),
    );
    if (shared && app.vpn) {
      const vpn = app.vpn;
      const internal = (app.server.address() as AddressInfo).port;
      await listening('httpPort', config, () =>
        vpn.shareHttpPort(app!.server, internal, tlsFiles !== undefined),
      );
    }
    const proxyPort = await listening('proxyPort', config, () => target.connectProxy.listen());
    const sshPort = await listening('sshPort', config, () =>
      target.sshGateway.listen(config.listen, config.sshPort),
    );
    if (tlsFiles) {
      // Fastify types its server as http.Server; with `https` it is a tls.Server underneath.
      const server = app.server as unknown as tls.Server;
      stopWatching = watchTlsPair({
        certFile: tlsFiles.certFile,
        keyFile: tlsFiles.keyFile,
        log,
        // Open connections keep the context they shook hands with; new ones get this one.
        onReload: (pair) => {
          server.setSecureContext({ cert: pair.cert, key: pair.key });
          certificates?.replaced(pair.certificate);
          certificates?.warnIfExpiring(log);
        },
      });
    }
    // In the log at start and once a day: a server that runs for months crosses the 30 days left while running.
    const expiring = certificates?.warnIfExpiring(log) ?? [];
    if (certificates) {
      expiryCheck = setInterval(() => certificates.warnIfExpiring(log), 24 * 3600 * 1000);
      expiryCheck.unref();
    }
    const address = app.server.address();
    const port = shared
      ? config.httpPort
      : typeof address === 'object' && address
        ? address.port
        : config.httpPort;
    const host = config.listen.includes(':') ? `[${config.listen}]` : config.listen;
    const scheme = tlsFiles ? 'https' : 'http';
    const url = `${scheme}://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}`;
    // Last before the banner: nothing that could still fail stands between the owner's creation and its password.
    const firstRun = await ensureFirstOwner(app.deps);
    app.markStarted();
    const vpn = app.vpn && { port: app.vpn.port, instances: app.vpn.status().length };
    print(banner({ url, proxyPort, sshPort, vpn, config, database, firstRun, tlsFiles, tlsPair, expiring }));

    let closing: Promise<void> | undefined;
    const running: RunningServer = {
      url,
      config,
      database,
      proxyPort,
      sshPort,
      close: () => {
        closing ??= (async () => {
          stopWatching();
          clearInterval(expiryCheck);
          await app?.close();
          await database.close();
        })();
        return closing;
      },
    };
    if (tlsFiles) running.tls = tlsFiles;
    return running;
  } catch (error) {
    stopWatching();
    clearInterval(expiryCheck);
    await app?.close().catch(() => {});
    await database.close().catch(() => {});
    throw error;
  }
}

export interface ResetPasswordOptions {
  /** Where the database is: `dataDir`, `databaseUrl`, `dbSchema`, as `serve` takes them. */
  flags?: ConfigInput;
  env?: NodeJS.ProcessEnv;
  email: string;
  /** The new password; unset = a random one, answered once as `generatedPassword`. */
  password?: string | undefined;
  /** Who ran the command on the machine (their operating system user), for the audit log. */
  osUser: string;
}

/**
 * `fleetgate users reset-password`: sets a user's password straight in the configured database (the data
 * directory's SQLite file, or DATABASE_URL), with no server running and nobody signed in, and ends the user's
 * sessions (see `resetPasswordOnMachine`). For whoever runs fleetgate on its machine, when no way in remains.
 */
export async function resetPassword(
  options: ResetPasswordOptions,
): Promise<PasswordReset & { database: string }> {
  const config = loadConfig(options.env ?? process.env, options.flags ?? {});
  const sqliteFile = path.join(config.dataDir, 'fleetgate.db');
  // Opening would create an empty database: a wrong --data-dir would answer "no such user" and leave a file behind.
  if (!config.databaseUrl && !fs.existsSync(sqliteFile)) {
    throw new AppError(
      'not_found',
      `no fleetgate database at ${sqliteFile}: pass the data directory the server runs with (--data-dir or ` +
        `${envNames.dataDir}), or its PostgreSQL URL (--database-url or ${envNames.databaseUrl})`,
    );
  }
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    schema: config.dbSchema,
    sqliteFile,
  });
  try {
    const log = createLogger('silent');
    const events = new EventBus((err, name) => log.error({ err, event: name }, 'an event listener failed'));
    const reset = await resetPasswordOnMachine({ db: database.db, events, log }, options.osUser, options);
    return {
      ...reset,
      database: `${database.dialect === 'sqlite' ? 'SQLite' : 'PostgreSQL'} ${database.location}`,
    };
  } finally {
    await database.close();
  }
}

function banner(what: {
  url: string;
  proxyPort: number;
  sshPort: number;
  /** The OpenVPN backend's public port and instances, when it runs. */
  vpn: { port: number; instances: number } | undefined;
  config: Config;
  database: DatabaseHandle;
  firstRun: Awaited<ReturnType<typeof ensureFirstOwner>>;
  tlsFiles: ServedTlsFiles | undefined;
  tlsPair: TlsPair | undefined;
  /** Certificates with fewer than 30 days left. */
  expiring: CertificateExpiry[];
}): string {
  const { url, proxyPort, sshPort, vpn, config, database, firstRun, tlsFiles, tlsPair, expiring } = what;
  const proxy = `http://${new URL(url).hostname}:${proxyPort}`;
  const lines = [
    '',
    `fleetgate is running at ${url}`,
    `  web UI       ${url}/${config.webRoot ? '' : '  (not served: FLEETGATE_WEB_ROOT is unset)'}`,
    `  API          ${url}/api/v1`,
    `  API docs     ${url}/api/docs`,
    `  health       ${url}/healthz   metrics ${url}/metrics`,
    `  database     ${database.dialect === 'sqlite' ? 'SQLite' : 'PostgreSQL'} ${database.location}`,
    `  proxy        ${proxy}  (curl -x ${proxy.slice(7)} -U <e-mail>:<API key> http://<uuid>.${config.deviceSuffix}/)`,
    `  SSH          ssh -J <login>@${new URL(url).hostname}:${sshPort} root@<device>   or   ssh -p ${sshPort} <login>+<device>@${new URL(url).hostname}`,
  ];
  if (vpn) {
    lines.push(
      `  OpenVPN      port ${vpn.port} for balenaOS devices, ${vpn.instances} instance(s)  (devices fetch their configuration at ${url}/os/v1/config)`,
    );
  }
  if (tlsFiles && tlsPair) {
    const names = tlsPair.certificate.subjectAltName?.replaceAll('DNS:', '').replaceAll('IP Address:', '');
    lines.push(
      `  TLS          ${tlsFiles.certFile} (for ${names ?? tlsPair.certificate.subject}; valid until ` +
        `${new Date(tlsPair.certificate.validTo).toISOString().slice(0, 10)}; reloaded when it changes)`,
    );
    if (tlsFiles.caFile) {
      lines.push(
        `  CA           ${tlsFiles.caFile}  (give it to devices and clients, e.g. curl --cacert ${tlsFiles.caFile},`,
        `               or NODE_EXTRA_CA_CERTS=${tlsFiles.caFile} for the fleetgate CLI)`,
      );
    }
    for (const entry of expiring) lines.push('', `WARNING: ${expiryWarning(entry, tlsFiles.caFile)}`);
  } else if (!isLoopback(config.listen)) {
    lines.push(
      '',
      `WARNING: listening on ${config.listen} without TLS: passwords, tokens and device keys cross the network`,
      '  in clear text. Run `fleetgate init --host <name>` (or pass --tls-cert/--tls-key) and restart.',
    );
  }
  if (firstRun) {
    lines.push(
      '',
      `First start: created the organization "${firstRun.orgName}" and its owner ${firstRun.email}.`,
      ...(firstRun.generatedPassword
        ? [
            `  password     ${firstRun.generatedPassword}`,
            `  (shown only this once; change it: npx fleetgate login --server ${url} && npx fleetgate passwd;`,
            '   or set FLEETGATE_ADMIN_PASSWORD before the first start;',
            `   lost it? on this machine: npx fleetgate users reset-password ${firstRun.email} --data-dir ${config.dataDir})`,
          ]
        : ['  password     the one in FLEETGATE_ADMIN_PASSWORD']),
    );
  }
  lines.push(
    '',
    `Open ${url}/ in a browser and sign in as ${firstRun?.email ?? config.adminEmail}, or from the CLI: npx fleetgate login --server ${url}`,
    '',
  );
  return lines.join('\n');
}

export {
  BACKUPS_DIR,
  BackupError,
  type BackupManifest,
  type BackupProgress,
  createBackup,
  defaultBackupFile,
  markServerRunning,
  type RestoreResult,
  restoreBackup,
  serverRunningOn,
} from './features/backup/service.ts';
