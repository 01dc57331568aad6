import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { migrationNames } from './db/migrations/index.ts';
import { scheduledBackups } from './features/backup/schedule.ts';
import { planVpn } from './features/openvpn/index.ts';
import { servedTlsFiles } from './index.ts';
import { type Config, ConfigError, type ConfigInput, envNames, loadConfig } from './infra/config/index.ts';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from './infra/data-dir/index.ts';
import { postgresApplicationName } from './infra/db/index.ts';
import { LISTEN_BACKLOG } from './infra/net/index.ts';
import { expiryWarning, ServedCertificates } from './infra/tls/expiry.ts';

/** How one check came out: `problem` makes `fleetgate doctor` exit 1; `skipped` says why it could not run here. */
export type DoctorLevel = 'ok' | 'warning' | 'problem' | 'skipped';

export interface DoctorCheck {
  /** What was checked, for people: `configuration`, `data directory`, `database`, `HTTP port`, … */
  check: string;
  level: DoctorLevel;
  /** What was found and, unless it is ok, what to do. */
  message: string;
}

export interface DoctorReport {
  /** No check found a problem (warnings allowed). */
  ok: boolean;
  checks: DoctorCheck[];
}

export interface DoctorOptions {
  /** The settings `serve` takes (flags win over `env`). */
  flags?: ConfigInput;
  env?: NodeJS.ProcessEnv;
  /** The clock the certificates and backups are judged by, in ms; default now. */
  now?: number;
}

/** Each check that waits on something else (the database, a port) gives up after this long, in milliseconds. */
const CHECK_TIMEOUT_MS = 3000;
/** Each HTTP request to a server that may be running (`/healthz`, then `/readyz`), in milliseconds. */
const PROBE_TIMEOUT_MS = 1500;
/** Less free space than this on the data directory's file system: a warning (backups and the database grow). */
const LOW_DISK_BYTES = 1024 ** 3;
/** …or less than this share of the file system. */
const LOW_DISK_SHARE = 0.05;
/** Less than this: a problem, the database may soon fail to write. */
const FULL_DISK_BYTES = 100 * 1024 ** 2;
/** Clocks further apart than this, in ms: a warning (device tokens and sign-in codes are judged by time). */
const CLOCK_WARNING_MS = 5000;
/** Further apart than this: a problem (tokens are refused as expired or not yet valid). */
const CLOCK_PROBLEM_MS = 60_000;

/**
 * `fleetgate doctor`: checks the install on this machine with the settings `serve` would use, without changing
 * anything (the database is opened read-only, no migration runs): the configuration, the data directory's modes,
 * the database schema version, the ports (a running fleetgate, or whether each is free to bind), free disk
 * space, certificate expiry, the clock (against PostgreSQL's) and scheduled backups. Each check that waits on
 * something gives up after a few seconds; the checks run side by side.
 */
export async function runDoctor(options: DoctorOptions = {}): Promise<DoctorReport> {
  const now = options.now ?? Date.now();
  let config: Config;
  try {
    config = loadConfig(options.env ?? process.env, options.flags ?? {});
  } catch (error) {
    const problems = error instanceof ConfigError ? error.problems : [String(error)];
    return {
      ok: false,
      checks: [
        {
          check: 'configuration',
          level: 'problem',
          message: `${problems.join('; ')}: fix these settings (flags or environment), then run fleetgate doctor again`,
        },
      ],
    };
  }
  const checks: DoctorCheck[] = [
    {
      check: 'configuration',
      level: 'ok',
      message: `loaded: data directory ${config.dataDir}, ${config.databaseUrl ? `PostgreSQL schema "${config.dbSchema}"` : 'SQLite'}`,
    },
  ];
  const hasDataDir = fs.existsSync(config.dataDir);
  const [database, ports] = await Promise.all([
    withTimeout('database', checkDatabase(config, hasDataDir)),
    withTimeout('ports', checkPorts(config)),
  ]);
  checks.push(
    ...checkDataDir(config.dataDir),
    ...database,
    ...ports,
    ...(hasDataDir ? [checkDisk(config.dataDir)] : []),
    ...checkCertificates(config, now),
    checkBackups(config, now),
    checkVpn(config),
    listenQueueCheck(readSomaxconn()),
  );
  return { ok: checks.every((entry) => entry.level !== 'problem'), checks };
}

function checkDataDir(dir: string): DoctorCheck[] {
  const check = 'data directory';
  let stats: fs.Stats;
  try {
    stats = fs.statSync(dir);
  } catch {
    return [
      {
        check,
        level: 'problem',
        message:
          `${dir} does not exist: pass the data directory the server runs with (--data-dir or ${envNames.dataDir}), ` +
          'or run `fleetgate serve` once to create it',
      },
    ];
  }
  if (!stats.isDirectory()) return [{ check, level: 'problem', message: `${dir} is not a directory` }];
  const found: DoctorCheck[] = [];
  const mode = stats.mode & 0o777;
  if ((mode & ~PRIVATE_DIR_MODE) !== 0) {
    found.push({
      check,
      level: 'warning',
      message:
        `${dir} has mode ${octal(mode)}: other accounts can reach the database and keys; run \`chmod 700 ${dir}\` ` +
        '(fleetgate serve also lowers it at start)',
    });
  }
  // The database and the private keys: files directly in the data directory, and those in its key folders
  // other than certificates and public keys.
  try {
    fs.readdirSync(dir);
  } catch (error) {
    // Another account than fleetgate's (a 0700 directory): nothing inside can be checked from here.
    return [
      ...found,
      {
        check,
        level: 'problem',
        message: `cannot read ${dir} (${(error as NodeJS.ErrnoException).code}): run fleetgate doctor as the account fleetgate runs as (sudo -u <user> …)`,
      },
    ];
  }
  const open: string[] = [];
  const visit = (folder: string, privateOnly: boolean) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(folder, { withFileTypes: true });
    } catch {
      // A key folder not made yet (tls/ before `fleetgate init`).
      return;
    }
    for (const entry of entries) {
      if (!entry.isFile()) continue;
      if (privateOnly && /\.(crt|pub)$/.test(entry.name)) continue;
      const file = path.join(folder, entry.name);
      const fileMode = fs.statSync(file).mode & 0o777;
      if ((fileMode & ~PRIVATE_FILE_MODE) !== 0) open.push(`${path.relative(dir, file)} ${octal(fileMode)}`);
    }
  };
  visit(dir, false);
  for (const sub of ['keys', 'ssh', 'tls']) visit(path.join(dir, sub), true);
  if (open.length > 0) {
    found.push({
      check: 'key files',
      level: 'warning',
      message: `readable by other accounts: ${open.join(', ')}; run \`chmod 600\` on each (in ${dir})`,
    });
  }
  if (found.length === 0) {
    found.push({ check, level: 'ok', message: `${dir} is private (${octal(mode)}), its key files 0600` });
  }
  return found;
}

async function checkDatabase(config: Config, hasDataDir: boolean): Promise<DoctorCheck[]> {
  if (!config.databaseUrl) {
    const file = path.join(config.dataDir, 'fleetgate.db');
    let owner: number;
    try {
      owner = fs.statSync(file).uid;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      return [
        {
          check: 'database',
          level: code === 'EACCES' ? 'skipped' : 'problem',
          message:
            code === 'EACCES'
              ? `cannot reach ${file} as this account: the data directory's check says what to do`
              : hasDataDir
                ? `no SQLite database at ${file}: run \`fleetgate serve\` once to create it, or pass the data directory the server runs with`
                : `no SQLite database (no data directory at ${config.dataDir})`,
        },
        clockNotChecked('SQLite'),
      ];
    }
    // Even read-only, SQLite makes the -wal and -shm files when they are missing (no server runs), and leaves
    // them: made by another account (root), they would stop the server from writing its own database.
    const walMissing = !fs.existsSync(`${file}-wal`) || !fs.existsSync(`${file}-shm`);
    if (walMissing && process.getuid && process.getuid() !== owner) {
      return [
        {
          check: 'database',
          level: 'skipped',
          message: `${file} belongs to uid ${owner}, not to the account doctor runs as: run it as that account (sudo -u <user> fleetgate doctor …) to check the schema`,
        },
        clockNotChecked('SQLite'),
      ];
    }
    let applied: string[];
    try {
      // Read-only: doctor never creates or migrates anything. A running server's WAL is read as it is.
      const database = new SqliteDatabase(file, { readonly: true, fileMustExist: true, timeout: 2000 });
      try {
        applied = (database.prepare('select name from kysely_migration').all() as { name: string }[]).map(
          (row) => row.name,
        );
      } finally {
        database.close();
      }
    } catch (error) {
      return [
        {
          check: 'database',
          level: 'problem',
          message: `cannot read ${file}: ${messageOf(error)}; restore it from a backup (fleetgate restore) if it is damaged`,
        },
        clockNotChecked('SQLite'),
      ];
    }
    return [schemaCheck(`SQLite ${file}`, applied), clockNotChecked('SQLite')];
  }

  const client = new pg.Client({
    connectionString: config.databaseUrl,
    connectionTimeoutMillis: CHECK_TIMEOUT_MS,
    statement_timeout: CHECK_TIMEOUT_MS,
    application_name: `${postgresApplicationName(config.dbSchema)} doctor`.slice(0, 63),
  });
  const where = `PostgreSQL ${withoutPassword(config.databaseUrl)} schema "${config.dbSchema}"`;
  try {
    await client.connect();
  } catch (error) {
    return [
      {
        check: 'database',
        level: 'problem',
        message: `cannot connect to ${withoutPassword(config.databaseUrl)}: ${messageOf(error)}; check ${envNames.databaseUrl} and that PostgreSQL runs`,
      },
      { check: 'clock', level: 'skipped', message: 'not checked: the database does not answer' },
    ];
  }
  try {
    const sentAt = Date.now();
    const { rows } = await client.query<{ now: Date }>('select now() as now');
    const receivedAt = Date.now();
    const clock = clockCheck(rows[0]!.now.getTime() - (sentAt + receivedAt) / 2);
    const exists = await client.query(
      `select 1 from information_schema.tables where table_schema = $1 and table_name = 'kysely_migration'`,
      [config.dbSchema],
    );
    if (exists.rowCount === 0) {
      return [
        {
          check: 'database',
          level: 'problem',
          message: `no fleetgate tables in ${where}: run \`fleetgate serve\` once to create them, or pass the schema the server runs with (--db-schema or ${envNames.dbSchema})`,
        },
        clock,
      ];
    }
    const applied = await client.query<{ name: string }>(
      `select name from "${config.dbSchema}".kysely_migration`,
    );
    const trigram = await client.query(
      `select 1 from pg_indexes where schemaname = $1 and indexname in ('devices_name_trgm', 'devices_uuid_trgm')`,
      [config.dbSchema],
    );
    const names = applied.rows.map((row) => row.name);
    return [
      schemaCheck(where, names),
      ...(names.includes('0017_device_text_index')
        ? [textSearchCheck(config.dbSchema, trigram.rowCount === 2)]
        : []),
      clock,
    ];
  } catch (error) {
    return [{ check: 'database', level: 'problem', message: `cannot read ${where}: ${messageOf(error)}` }];
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * PostgreSQL: whether the device search has its trigram indexes (migration 0017 makes them when the database lets
 * it make the pg_trgm extension). Without them a search for a rare text reads every device of the organization.
 */
export function textSearchCheck(schema: string, indexed: boolean): DoctorCheck {
  if (indexed) return { check: 'device search', level: 'ok', message: 'trigram indexes (pg_trgm) in place' };
  const devices = `"${schema.replaceAll('"', '""')}".devices`;
  return {
    check: 'device search',
    level: 'warning',
    message:
      'no trigram indexes: a search for a rare name or uuid part reads every device (100,000 devices: tens of ms a page). ' +
      "fleetgate's role could not make the pg_trgm extension; as a superuser, in this database, run: " +
      'CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public; ' +
      `CREATE INDEX devices_name_trgm ON ${devices} USING gin (lower(name) public.gin_trgm_ops); ` +
      `CREATE INDEX devices_uuid_trgm ON ${devices} USING gin ((uuid::text) public.gin_trgm_ops)`,
  };
}

/** The schema's migrations against this fleetgate's: pending ones run at the next start; unknown ones are newer. */
function schemaCheck(where: string, applied: string[]): DoctorCheck {
  const newer = applied.filter((name) => !migrationNames.includes(name));
  if (newer.length > 0) {
    return {
      check: 'database',
      level: 'problem',
      message: `${where} has a schema from a newer fleetgate (${newer.sort().at(-1)}); this one knows up to ${migrationNames.at(-1)}: upgrade fleetgate, or restore a backup made by this version`,
    };
  }
  const pending = migrationNames.filter((name) => !applied.includes(name));
  if (pending.length > 0) {
    return {
      check: 'database',
      level: 'warning',
      message: `${where} is at schema ${applied.sort().at(-1) ?? 'none'}; ${pending.length} migration(s) pending (up to ${pending.at(-1)}): they run at the next start of fleetgate serve (take a backup first)`,
    };
  }
  return { check: 'database', level: 'ok', message: `${where}, schema ${migrationNames.at(-1)} (current)` };
}

function clockCheck(offsetMs: number): DoctorCheck {
  const seconds = (Math.abs(offsetMs) / 1000).toFixed(1);
  const side = offsetMs > 0 ? 'behind' : 'ahead of';
  if (Math.abs(offsetMs) <= CLOCK_WARNING_MS) {
    return { check: 'clock', level: 'ok', message: `within ${seconds} s of the database server's` };
  }
  return {
    check: 'clock',
    level: Math.abs(offsetMs) > CLOCK_PROBLEM_MS ? 'problem' : 'warning',
    message: `this machine's clock is ${seconds} s ${side} the database server's: device tokens and sign-in codes are judged by time; run NTP on both (timedatectl set-ntp true)`,
  };
}

function clockNotChecked(database: string): DoctorCheck {
  return {
    check: 'clock',
    level: 'skipped',
    message: `${database} has no server clock to compare with; make sure NTP runs here (timedatectl)`,
  };
}

/** The three listeners, the setting that moves each, and what they are. */
const portSettings = [
  { key: 'httpPort', check: 'HTTP port', flag: '--port' },
  { key: 'sshPort', check: 'SSH port', flag: '--ssh-port' },
  { key: 'proxyPort', check: 'proxy port', flag: '--proxy-port' },
] as const;

/** The parts of a running server's `/readyz` answer that doctor reads. */
interface ReadyAnswer {
  status?: string;
  backups?: { lastSuccessAt?: string | null; lastFailureAt?: string | null; lastError?: string | null };
}

async function checkPorts(config: Config): Promise<DoctorCheck[]> {
  const host = config.listen === '0.0.0.0' ? '127.0.0.1' : config.listen === '::' ? '::1' : config.listen;
  let scheme: 'http' | 'https' = 'http';
  try {
    if (servedTlsFiles(config)) scheme = 'https';
  } catch {
    // A broken certificate setting is the certificate check's to report.
  }
  const base = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${config.httpPort}`;
  if (config.httpPort !== 0) {
    const health = await getJson(`${base}/healthz`);
    if (health.answered) {
      if ((health.body as { status?: unknown } | undefined)?.status !== 'ok') {
        // Something else holds the HTTP port; the other two may still be free.
        const others = portSettings.filter(({ key }) => key !== 'httpPort');
        return [
          {
            check: 'HTTP port',
            level: 'problem',
            message: `${base} answers, but not as fleetgate: stop what listens there, or choose another port with --port <port> or ${envNames.httpPort}`,
          },
          ...(await Promise.all(others.map((setting) => portCheck(config, setting)))),
        ];
      }
      const ready = await getJson(`${base}/readyz`);
      const readiness = ready.body as ReadyAnswer | undefined;
      const isReady = readiness?.status === 'ready';
      const server: DoctorCheck = {
        check: 'server',
        level: isReady ? 'ok' : 'problem',
        message: isReady
          ? `a fleetgate server is running at ${base} and is ready (its ports are in use by it)`
          : `a fleetgate server runs at ${base} but is not ready (${ready.status ?? 'no answer'}): its database does not answer; see its log`,
      };
      // The server knows what the backup folder cannot show: its last scheduled backup failed.
      const backups = readiness?.backups;
      if (
        backups?.lastFailureAt &&
        (!backups.lastSuccessAt || backups.lastFailureAt > backups.lastSuccessAt)
      ) {
        return [
          server,
          {
            check: 'backups',
            level: 'problem',
            message: `the server's last scheduled backup failed, at ${backups.lastFailureAt}: ${backups.lastError ?? 'see its log'}`,
          },
        ];
      }
      return [server];
    }
  }
  // No fleetgate answers: could `serve` bind each port?
  return Promise.all(portSettings.map((setting) => portCheck(config, setting)));
}

/** Whether `serve` could bind one port now, and if not what moves it. */
async function portCheck(
  config: Config,
  { key, check, flag }: (typeof portSettings)[number],
): Promise<DoctorCheck> {
  const port = config[key];
  if (port === 0) return { check, level: 'ok', message: '0: the server picks a free port at start' };
  const moveIt = `choose another with ${flag} <port> or ${envNames[key]}`;
  const code = await bindCode(config.listen, port);
  switch (code) {
    case undefined:
      return {
        check,
        level: 'ok',
        message: `${config.listen}:${port} is free (no fleetgate server is running)`,
      };
    case 'EADDRINUSE':
      return {
        check,
        level: 'problem',
        message: `${config.listen}:${port} is in use by another process: stop it, or ${moveIt}`,
      };
    case 'EACCES':
      return {
        check,
        level: 'problem',
        message: `${config.listen}:${port} needs privileges (ports under 1024): give fleetgate CAP_NET_BIND_SERVICE, or ${moveIt}`,
      };
    default:
      return {
        check,
        level: 'problem',
        message: `cannot listen on ${config.listen}:${port} (${code}): check ${envNames.listen}, or ${moveIt}`,
      };
  }
}

/** Binds and releases `host:port`: undefined when it could listen, else the system error code. */
function bindCode(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(undefined)));
  });
}

/** GET `url` (any certificate accepted: this only asks who listens). `answered` is false when nothing did. */
function getJson(url: string): Promise<{ answered: boolean; status?: number; body?: unknown }> {
  return new Promise((resolve) => {
    const get = url.startsWith('https:') ? https.get : http.get;
    const request = get(url, { timeout: PROBE_TIMEOUT_MS, rejectUnauthorized: false }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        if (text.length < 64 * 1024) text += chunk;
      });
      response.on('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ answered: true, status: response.statusCode ?? 0, body });
      });
      response.on('error', () => resolve({ answered: true, status: response.statusCode ?? 0 }));
    });
    request.on('timeout', () => request.destroy(new Error('timeout')));
    // Refused: nothing listens. Reset or garbage (another protocol): something does, but not as asked.
    request.on('error', (error: NodeJS.ErrnoException) =>
      resolve({ answered: error.code !== 'ECONNREFUSED' && error.code !== 'EADDRNOTAVAIL' }),
    );
  });
}

function checkDisk(dir: string): DoctorCheck {
  const { bavail, bsize, blocks } = fs.statfsSync(dir);
  const free = bavail * bsize;
  const share = blocks > 0 ? bavail / blocks : 1;
  const text = `${gib(free)} free (${(share * 100).toFixed(0)} %) on the file system of ${dir}`;
  if (free < FULL_DISK_BYTES) {
    return {
      check: 'disk',
      level: 'problem',
      message: `${text}: the database will soon fail to write; free space or move the data directory`,
    };
  }
  if (free < LOW_DISK_BYTES || share < LOW_DISK_SHARE) {
    return {
      check: 'disk',
      level: 'warning',
      message: `${text}: free some space (old backups in ${envNames.backupDir}, logs) or grow the file system`,
    };
  }
  return { check: 'disk', level: 'ok', message: text };
}

/** The kernel's cap on a listener's queue of connections not yet accepted; undefined where it cannot be read. */
function readSomaxconn(file = '/proc/sys/net/core/somaxconn'): number | undefined {
  try {
    const value = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the kernel lets fleetgate's HTTP and VPN ports queue `LISTEN_BACKLOG` connections: below it, thousands of
 * devices reconnecting at once (a restart, another instance lost) have their handshakes dropped and wait far longer.
 */
export function listenQueueCheck(somaxconn: number | undefined): DoctorCheck {
  const check = 'listen queue';
  if (somaxconn === undefined)
    return { check, level: 'skipped', message: 'net.core.somaxconn could not be read (not Linux?)' };
  if (somaxconn < LISTEN_BACKLOG)
    return {
      check,
      level: 'warning',
      message:
        `net.core.somaxconn is ${somaxconn}: the HTTP and VPN ports queue at most that many connections, and devices ` +
        `reconnecting together after a restart are dropped and retry; run \`sysctl -w net.core.somaxconn=${LISTEN_BACKLOG}\` ` +
        '(and set it in /etc/sysctl.d/ to keep it)',
    };
  return {
    check,
    level: 'ok',
    message: `the HTTP and VPN ports queue up to ${LISTEN_BACKLOG} connections (net.core.somaxconn ${somaxconn})`,
  };
}

function checkCertificates(config: Config, now: number): DoctorCheck[] {
  let files: ReturnType<typeof servedTlsFiles>;
  try {
    files = servedTlsFiles(config);
  } catch (error) {
    return [{ check: 'certificate', level: 'problem', message: messageOf(error) }];
  }
  if (!files) {
    const loopback = config.listen === 'localhost' || config.listen === '::1' || /^127\./.test(config.listen);
    return [
      loopback
        ? {
            check: 'certificate',
            level: 'ok',
            message: `none: plain HTTP on ${config.listen} (fine behind a reverse proxy that serves HTTPS; \`fleetgate init --host <name>\` for fleetgate's own)`,
          }
        : {
            check: 'certificate',
            level: 'warning',
            message: `none: plain HTTP on ${config.listen}, passwords and tokens cross the network in clear text; run \`fleetgate init --host <name>\``,
          },
    ];
  }
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(fs.readFileSync(files.certFile));
  } catch (error) {
    return [
      {
        check: 'certificate',
        level: 'problem',
        message: `cannot read ${files.certFile}: ${messageOf(error)}; run \`fleetgate init --renew\` or fix ${envNames.tlsCert}`,
      },
    ];
  }
  return new ServedCertificates({ file: files.certFile, certificate }, files.caFile)
    .expiry(now)
    .map((entry) => {
      const check = entry.certificate === 'ca' ? 'CA certificate' : 'certificate';
      if (!entry.expiringSoon) {
        return {
          check,
          level: 'ok',
          message: `${entry.file} valid until ${entry.validTo.toISOString().slice(0, 10)} (${entry.daysLeft} days)`,
        };
      }
      return {
        check,
        level: entry.daysLeft < 0 ? 'problem' : 'warning',
        message: expiryWarning(entry, files.caFile),
      };
    });
}

function checkBackups(config: Config, now: number): DoctorCheck {
  const dir = config.backupDir ?? path.join(config.dataDir, 'backups');
  if (config.backupInterval === undefined) {
    return {
      check: 'backups',
      level: 'warning',
      message: `no scheduled backups: set ${envNames.backupInterval} (e.g. 24h) and copy ${dir} off this machine, or run \`fleetgate backup\` from cron`,
    };
  }
  const newest = scheduledBackups(dir).at(-1);
  if (!newest) {
    return {
      check: 'backups',
      level: 'warning',
      message: `none yet in ${dir}: the server makes the first one as it starts; if it runs already, see "backups" in its /readyz`,
    };
  }
  const ageMs = now - fs.statSync(path.join(dir, newest)).mtimeMs;
  const age = ageMs < 3_600_000 ? `${Math.round(ageMs / 60_000)} min` : `${(ageMs / 3_600_000).toFixed(1)} h`;
  if (ageMs > 2 * config.backupInterval) {
    return {
      check: 'backups',
      level: 'problem',
      message: `the newest backup, ${newest}, is ${age} old (more than two intervals of ${envNames.backupInterval}): is the server running? see "backups" in its /readyz and its log`,
    };
  }
  return { check: 'backups', level: 'ok', message: `newest ${path.join(dir, newest)}, ${age} old` };
}

/** Runs a check that waits on something, turning a hang into a problem after `CHECK_TIMEOUT_MS` and a bit. */
async function withTimeout(check: string, work: Promise<DoctorCheck[]>): Promise<DoctorCheck[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<DoctorCheck[]>((resolve) => {
    timer = setTimeout(
      () =>
        resolve([
          {
            check,
            level: 'problem',
            message: `no answer within ${(CHECK_TIMEOUT_MS + 1000) / 1000} s: check that it is reachable from this machine`,
          },
        ]),
      CHECK_TIMEOUT_MS + 1000,
    );
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'the configured URL';
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

function gib(bytes: number): string {
  return bytes >= 1024 ** 3
    ? `${(bytes / 1024 ** 3).toFixed(1)} GiB`
    : `${(bytes / 1024 ** 2).toFixed(0)} MiB`;
}

/**
 * The OpenVPN backend, when it is on: the `openvpn` program, /dev/net/tun, the right to make tun devices
 * (root or CAP_NET_ADMIN), and an instance plan that fits its subnet.
 */
function checkVpn(config: Config): DoctorCheck {
  const check = 'OpenVPN';
  if (!config.vpn) return { check, level: 'skipped', message: 'the OpenVPN backend is off (FLEETGATE_VPN)' };
  const version = spawnSync(config.vpnOpenvpn, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (version.error) {
    return {
      check,
      level: 'problem',
      message: `${config.vpnOpenvpn} cannot run (${(version.error as NodeJS.ErrnoException).code}): install OpenVPN 2.6 (apt-get install openvpn) or set FLEETGATE_VPN_OPENVPN`,
    };
  }
  if (!fs.existsSync('/dev/net/tun')) {
    return {
      check,
      level: 'problem',
      message: 'no /dev/net/tun: load the tun module (modprobe tun), or give the container the device',
    };
  }
  let instances: number;
  try {
    instances = planVpn({
      baseSubnet: config.vpnBaseSubnet,
      instanceBitmask: config.vpnInstanceSubnetBitmask,
      instances: config.vpnInstances ?? os.availableParallelism(),
      gateway: config.vpnGateway,
      basePort: config.vpnBasePort,
    }).length;
  } catch (error) {
    return { check, level: 'problem', message: (error as Error).message };
  }
  // CAP_NET_ADMIN is bit 12 of the effective capabilities.
  const capabilities = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1];
  const netAdmin = capabilities !== undefined && (BigInt(`0x${capabilities}`) & (1n << 12n)) !== 0n;
  if (!netAdmin) {
    return {
      check,
      level: 'warning',
      message:
        'this account cannot make tun devices (no CAP_NET_ADMIN): run fleetgate as root or give its unit AmbientCapabilities=CAP_NET_ADMIN',
    };
  }
  const program = version.stdout.split('\n')[0]?.split(' ').slice(0, 2).join(' ') ?? config.vpnOpenvpn;
  return {
    check,
    level: 'ok',
    message: `${program}, ${instances} instance(s) planned in ${config.vpnBaseSubnet}, port ${config.vpnPort} for devices`,
  };
}
