import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { migrationNames } from '../../db/migrations/index.ts';
import { trigramSchema } from '../../db/trigram.ts';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../../infra/data-dir/index.ts';
import { postgresApplicationName } from '../../infra/db/index.ts';
import { type ArchiveEntry, extractArchive, sha256File, writeArchive } from './archive.ts';

/** What `manifest.json` says of a backup. `format` and `formatVersion` mark a fleetgate backup. */
export interface BackupManifest {
  format: 'fleetgate-backup';
  formatVersion: 1;
  fleetgateVersion: string;
  /** The last migration applied to the database copied: its schema version. */
  schemaVersion: string;
  dialect: 'sqlite' | 'postgres';
  /** PostgreSQL only: the schema that was dumped (a restore goes back into the same schema). */
  postgresSchema?: string;
  createdAt: string;
  entries: { name: string; size: number; sha256: string; mode: number }[];
}

/** Where a backup reads from and a restore writes to. */
export interface BackupTarget {
  dataDir: string;
  databaseUrl?: string | undefined;
  /** PostgreSQL schema. Default `public`. */
  dbSchema?: string;
  /** Folder of backups (never copied into one). Default `<dataDir>/backups`. */
  backupDir?: string;
}

/** Progress of a long step: `done` of `total` units (pages, tables or bytes), for a progress line. */
export type BackupProgress = (step: string, done: number, total: number) => void;

/** A refusal a person can act on: the CLI prints its message as it is. */
export class BackupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BackupError';
  }
}

/** The SQLite database file, inside the data directory. */
export const SQLITE_FILE = 'fleetgate.db';
/** Where `fleetgate serve` writes its process id while it runs (see `markServerRunning`). */
export const PID_FILE = 'fleetgate.pid';
/** Default folder of backups, inside the data directory. */
export const BACKUPS_DIR = 'backups';
const require = createRequire(import.meta.url);
const DB_ENTRY = { sqlite: 'database/fleetgate.db', postgres: 'database/fleetgate.pgdump' } as const;
/** Data directory names never copied into a backup: the database (copied through its own API), backups, state of a run. */
const NOT_COPIED = new Set([
  SQLITE_FILE,
  `${SQLITE_FILE}-wal`,
  `${SQLITE_FILE}-shm`,
  `${SQLITE_FILE}-journal`,
  PID_FILE,
  BACKUPS_DIR,
]);

const version = (() => {
  try {
    // Found through the package's own entry, not this file's folder: the CLI's build (packages/cli/dist) runs
    // this code from another place than the sources.
    const file = path.resolve(path.dirname(require.resolve('@fleetgate/server')), '../package.json');
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();

function stamp(date = new Date()): string {
  return date.toISOString().replace(/[:.]/g, '-');
}

/** Default backup file name: `<dataDir>/backups/fleetgate-<UTC time>.tar.gz`. */
export function defaultBackupFile(dataDir: string, date = new Date()): string {
  return path.join(dataDir, BACKUPS_DIR, `fleetgate-${stamp(date)}.tar.gz`);
}

/**
 * Makes a backup of a running or stopped fleetgate: the database (SQLite's online backup API, which copies a
 * consistent snapshot page by page while the server keeps writing; on PostgreSQL `pg_dump --format=custom` of
 * the configured schema, itself one consistent snapshot) plus every file of the data directory except the
 * database files and `backups/` (TLS certificates and keys, SSH host keys, token signing keys). Written to a
 * temporary name in the destination folder, fsynced, then renamed: a backup file either is whole or does not
 * exist. Mode 0600: it holds private keys.
 */
export async function createBackup(
  target: BackupTarget,
  options: { file?: string; progress?: BackupProgress } = {},
): Promise<{ file: string; bytes: number; manifest: BackupManifest }> {
  const dataDir = path.resolve(target.dataDir);
  const file = path.resolve(
    options.file ??
      path.join(
        target.backupDir ?? path.join(dataDir, BACKUPS_DIR),
        path.basename(defaultBackupFile(dataDir)),
      ),
  );
  if (fs.existsSync(file) && fs.statSync(file).isDirectory())
    return createBackup(target, {
      ...options,
      file: path.join(file, path.basename(defaultBackupFile(dataDir))),
    });
  if (fs.existsSync(file)) throw new BackupError(`${file} already exists: choose another name or remove it`);
  const destDir = path.dirname(file);
  fs.mkdirSync(destDir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const work = fs.mkdtempSync(path.join(destDir, '.fleetgate-backup-'));
  try {
    const dialect = target.databaseUrl ? 'postgres' : 'sqlite';
    const dbCopy = path.join(work, 'database');
    let schemaVersion: string;
    if (dialect === 'sqlite')
      schemaVersion = await copySqlite(path.join(dataDir, SQLITE_FILE), dbCopy, options.progress);
    else
      schemaVersion = await dumpPostgres(
        target.databaseUrl!,
        target.dbSchema ?? 'public',
        dbCopy,
        options.progress,
      );

    const entries: ArchiveEntry[] = [
      { name: DB_ENTRY[dialect], source: { file: dbCopy }, mode: PRIVATE_FILE_MODE },
    ];
    const skip = [path.resolve(target.backupDir ?? path.join(dataDir, BACKUPS_DIR)), destDir];
    for (const relative of dataDirFiles(dataDir, skip)) {
      const source = path.join(dataDir, relative);
      entries.push({
        name: `data/${relative}`,
        source: { file: source },
        mode: fs.statSync(source).mode & 0o777,
      });
    }
    const listed: BackupManifest['entries'] = [];
    for (const entry of entries) {
      const source = (entry.source as { file: string }).file;
      listed.push({
        name: entry.name,
        size: fs.statSync(source).size,
        sha256: await sha256File(source),
        mode: entry.mode,
      });
    }
    const manifest: BackupManifest = {
      format: 'fleetgate-backup',
      formatVersion: 1,
      fleetgateVersion: version,
      schemaVersion,
      dialect,
      ...(dialect === 'postgres' ? { postgresSchema: target.dbSchema ?? 'public' } : {}),
      createdAt: new Date().toISOString(),
      entries: listed,
    };
    const partial = path.join(work, 'backup.tar.gz');
    const totalBytes = listed.reduce((sum, entry) => sum + entry.size, 0);
    options.progress?.('writing the archive', 0, totalBytes);
    await writeArchive(
      partial,
      [
        {
          name: 'manifest.json',
          source: { bytes: Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`) },
          mode: PRIVATE_FILE_MODE,
        },
        ...entries,
      ],
      PRIVATE_FILE_MODE,
      (bytes) => options.progress?.('writing the archive', bytes, totalBytes),
    );
    // Files copied while they changed (a key rotated meanwhile) would not match their hash: check before naming it.
    for (const entry of entries.slice(1)) {
      const source = (entry.source as { file: string }).file;
      const expected = listed.find((l) => l.name === entry.name)!;
      if (fs.statSync(source).size !== expected.size)
        throw new BackupError(`${source} changed while the backup was made: run the backup again`);
    }
    fsyncFile(partial);
    fs.renameSync(partial, file);
    fsyncFile(destDir);
    options.progress?.('writing the archive', totalBytes, totalBytes);
    return { file, bytes: fs.statSync(file).size, manifest };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function fsyncFile(file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Files under the data directory that a backup holds, relative, sorted; links and sockets are skipped. */
function dataDirFiles(dataDir: string, skipDirs: readonly string[]): string[] {
  const found: string[] = [];
  const walk = (dir: string, prefix: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const relative = prefix ? `${prefix}/${entry.name}` : entry.name;
      if (
        !prefix &&
        (NOT_COPIED.has(entry.name) ||
          entry.name.startsWith('.fleetgate-') ||
          entry.name.startsWith('before-restore-'))
      )
        continue;
      if (entry.isDirectory()) {
        if (!skipDirs.includes(path.join(dir, entry.name))) walk(path.join(dir, entry.name), relative);
      } else if (entry.isFile()) found.push(relative);
    }
  };
  if (fs.existsSync(dataDir)) walk(dataDir, '');
  return found.sort();
}

/**
 * SQLite's online backup from a read-only connection beside the server's, in a worker thread. It copies 100 pages,
 * then all the rest in one step: a step reads one snapshot while the server keeps writing (WAL: readers and the
 * writer do not wait for each other), whereas many small steps start over whenever the server writes between two
 * of them, which under steady writes never ends on a large database.
 */
const SQLITE_COPY_WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.source, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
db.backup(workerData.into, { progress: () => 1 << 30 }).then(
  () => { db.close(); parentPort.postMessage({ ok: true }); },
  (error) => { db.close(); parentPort.postMessage({ ok: false, message: String((error && error.message) || error) }); },
);
`;

async function copySqlite(dbFile: string, into: string, progress?: BackupProgress): Promise<string> {
  if (!fs.existsSync(dbFile))
    throw new BackupError(
      `no database at ${dbFile}: is --data-dir (FLEETGATE_DATA_DIR) the server's data directory?`,
    );
  const source = new SqliteDatabase(dbFile, { readonly: true, fileMustExist: true });
  let expectedBytes: number;
  try {
    expectedBytes =
      (source.pragma('page_count', { simple: true }) as number) *
      (source.pragma('page_size', { simple: true }) as number);
  } finally {
    source.close();
  }
  // The copy runs in a worker thread, so that neither the server (scheduled backups) nor the progress line waits
  // for it; progress is the copy's size against the database's.
  const worker = new Worker(SQLITE_COPY_WORKER, {
    eval: true,
    workerData: { module: require.resolve('better-sqlite3'), source: dbFile, into },
  });
  const timer = setInterval(() => {
    let size = 0;
    try {
      size = fs.statSync(into).size;
    } catch {
      // Not created yet.
    }
    progress?.('copying the database', Math.min(size, expectedBytes), expectedBytes);
  }, 250);
  try {
    const [answer] = (await once(worker, 'message')) as [{ ok: boolean; message?: string }];
    if (!answer.ok) throw new BackupError(`could not copy ${dbFile}: ${answer.message}`);
  } finally {
    clearInterval(timer);
    await worker.terminate();
  }
  const copy = new SqliteDatabase(into);
  try {
    const pages = copy.pragma('page_count', { simple: true }) as number;
    progress?.('copying the database', pages, pages);
    const check = copy.pragma('quick_check', { simple: true });
    if (check !== 'ok')
      throw new BackupError(`the database copy failed its integrity check: ${String(check)}`);
    // One self-contained file: no -wal beside it.
    copy.pragma('journal_mode = DELETE');
    return lastMigration(copy.prepare('select name from kysely_migration order by name desc limit 1').get());
  } finally {
    copy.close();
  }
}

function lastMigration(row: unknown): string {
  const name = (row as { name?: string } | undefined)?.name;
  if (!name)
    throw new BackupError('the database has no migrations applied: has fleetgate ever started on it?');
  return name;
}

/** `DATABASE_URL` without its password (given to pg tools through PGPASSWORD, never on their command line). */
function pgConnection(url: string): { url: string; env: NodeJS.ProcessEnv } {
  const parsed = new URL(url);
  const password = decodeURIComponent(parsed.password);
  parsed.password = '';
  return { url: parsed.toString(), env: { ...process.env, ...(password ? { PGPASSWORD: password } : {}) } };
}

function requireTool(tool: 'pg_dump' | 'pg_restore'): void {
  const probe = spawnSync(tool, ['--version'], { encoding: 'utf8' });
  if (probe.error)
    throw new BackupError(
      `${tool} is not installed: a PostgreSQL backup needs it (Debian/Ubuntu: apt-get install postgresql-client; ` +
        "its version must be at least the PostgreSQL server's)",
    );
}

function runTool(
  tool: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  onLine?: (line: string) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let errors = '';
    let partial = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => {
      partial += text;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        onLine?.(line);
        if (
          !/^\S+: (dumping|reading|last built-in|identifying|finding|flagging|saving|processing|creating|executing|restoring|connecting|implied|disabling|enabling|setting|launching|started|finished)/.test(
            line,
          )
        )
          errors += `${line}\n`;
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new BackupError(`${tool} failed (exit code ${code}): ${errors.trim().slice(-2000)}`));
    });
  });
}

async function withPg<T>(url: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

async function dumpPostgres(
  url: string,
  schema: string,
  into: string,
  progress?: BackupProgress,
): Promise<string> {
  requireTool('pg_dump');
  const { schemaVersion, tables } = await withPg(url, async (client) => {
    const exists = await client.query('select 1 from pg_namespace where nspname = $1', [schema]);
    if (exists.rowCount === 0)
      throw new BackupError(`PostgreSQL has no schema "${schema}": check FLEETGATE_DB_SCHEMA`);
    const version = await client
      .query(`select name from "${schema}".kysely_migration order by name desc limit 1`)
      .catch(() => ({ rows: [] }));
    const count = await client.query('select count(*)::int as n from pg_tables where schemaname = $1', [
      schema,
    ]);
    return { schemaVersion: lastMigration(version.rows[0]), tables: count.rows[0].n as number };
  });
  const { url: bare, env } = pgConnection(url);
  let dumped = 0;
  progress?.('dumping the database', 0, tables);
  // One transaction (pg_dump's snapshot): rows written meanwhile are either all in or all out.
  await runTool(
    'pg_dump',
    [
      '--format=custom',
      '--no-owner',
      '--no-privileges',
      '--verbose',
      `--schema=${schema}`,
      `--file=${into}`,
      `--dbname=${bare}`,
    ],
    env,
    (line) => {
      if (/dumping contents of table/.test(line))
        progress?.('dumping the database', Math.min(++dumped, tables), tables);
    },
  );
  progress?.('dumping the database', tables, tables);
  return schemaVersion;
}

/**
 * Why a server seems to run on this data directory, or undefined. Two signs, either enough: the process id that
 * `fleetgate serve` writes to `<dataDir>/fleetgate.pid` names a live process; or (SQLite) the database is open
 * elsewhere — a connection in WAL mode holds a shared lock on the file for as long as it is open, so an
 * exclusive lock cannot be had (a lock the operating system drops when a process dies: no stale answers).
 */
export function serverRunningOn(target: BackupTarget): string | undefined {
  const dataDir = path.resolve(target.dataDir);
  const pidFile = path.join(dataDir, PID_FILE);
  if (fs.existsSync(pidFile)) {
    const pid = Number.parseInt(fs.readFileSync(pidFile, 'utf8'), 10);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid))
      return (
        `fleetgate serve is running on ${dataDir} (process ${pid}, from ${pidFile}; ` +
        'if that process is not fleetgate, remove the file)'
      );
  }
  const dbFile = path.join(dataDir, SQLITE_FILE);
  if (!target.databaseUrl && fs.existsSync(dbFile)) {
    const probe = new SqliteDatabase(dbFile, { fileMustExist: true, timeout: 0 });
    try {
      probe.pragma('locking_mode = EXCLUSIVE');
      probe.exec('BEGIN EXCLUSIVE; COMMIT');
    } catch (err) {
      if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY'))
        return `${dbFile} is open in another process (a running fleetgate serve?)`;
      // Anything else (a damaged file): no server can be using it; the restore moves it aside.
    } finally {
      probe.close();
    }
  }
  return undefined;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Writes `<dataDir>/fleetgate.pid` for `restore` to see; answers a function that removes it. */
export function markServerRunning(dataDir: string): () => void {
  const file = path.join(dataDir, PID_FILE);
  fs.writeFileSync(file, `${process.pid}\n`, { mode: PRIVATE_FILE_MODE });
  return () => {
    try {
      if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file);
    } catch {
      // Already gone.
    }
  };
}

/** What `restoreBackup` did, for people and `--json`. */
export interface RestoreResult {
  manifest: BackupManifest;
  /** Where the data that was there before went (renamed, never deleted), if there was any. */
  keptAside: { files?: string; postgresSchema?: string };
  restoredFiles: string[];
}

/**
 * Reads a backup and checks it before touching anything: a fleetgate backup, every entry present with its
 * SHA-256, the dialect and (PostgreSQL) schema of this configuration, a schema version this build knows (an
 * older one is migrated at the next start). Then moves the current data directory's contents (but `backups/`)
 * into `before-restore-<time>/` (on PostgreSQL renames the schema to `<schema>_before_restore_<time>`) and puts
 * the backup in their place. Refuses while a server runs on the data directory (`serverRunningOn`).
 */
export async function restoreBackup(
  target: BackupTarget,
  file: string,
  options: { progress?: BackupProgress } = {},
): Promise<RestoreResult> {
  const dataDir = path.resolve(target.dataDir);
  const running = serverRunningOn(target);
  if (running) throw new BackupError(`${running}: stop it first, then restore`);
  let size: number;
  try {
    size = fs.statSync(file).size;
  } catch {
    throw new BackupError(`cannot read ${file}: no such file`);
  }
  fs.mkdirSync(dataDir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const staging = fs.mkdtempSync(path.join(dataDir, '.fleetgate-restore-'));
  try {
    let extracted: Awaited<ReturnType<typeof extractArchive>>;
    try {
      extracted = await extractArchive(file, staging, (read) =>
        options.progress?.('reading the backup', read, size),
      );
    } catch (err) {
      if (err instanceof BackupError) throw err;
      throw new BackupError(`${file} is not a fleetgate backup: ${(err as Error).message}`, { cause: err });
    }
    const manifest = checkManifest(file, extracted.manifest, extracted.entries);
    const dialect = target.databaseUrl ? 'postgres' : 'sqlite';
    if (manifest.dialect !== dialect)
      throw new BackupError(
        `${file} is a backup of a ${manifest.dialect === 'sqlite' ? 'SQLite' : 'PostgreSQL'} database, and this ` +
          `configuration uses ${dialect === 'sqlite' ? 'SQLite' : 'PostgreSQL (DATABASE_URL)'}: restore it with the same database kind`,
      );
    const schema = target.dbSchema ?? 'public';
    if (dialect === 'postgres' && manifest.postgresSchema !== schema)
      throw new BackupError(
        `${file} holds the PostgreSQL schema "${manifest.postgresSchema}", and this configuration uses "${schema}": ` +
          `set FLEETGATE_DB_SCHEMA=${manifest.postgresSchema} (or --db-schema) to restore it`,
      );
    if (dialect === 'postgres') {
      requireTool('pg_restore');
      const inUse = await postgresInUse(target.databaseUrl!, schema);
      if (inUse) throw new BackupError(`${inUse}: stop it first, then restore`);
    }

    const when = stamp();
    const keptAside: RestoreResult['keptAside'] = {};
    const dbCopy = path.join(staging, DB_ENTRY[dialect]);
    // PostgreSQL first: when pg_restore fails, the schema is put back and the files were not touched yet.
    if (dialect === 'postgres') {
      const kept = await restorePostgres(target.databaseUrl!, schema, dbCopy, when, options.progress);
      if (kept) keptAside.postgresSchema = kept;
    }
    const aside = path.join(dataDir, `before-restore-${when}`);
    const current = fs
      .readdirSync(dataDir)
      .filter(
        (name) =>
          name !== BACKUPS_DIR && !name.startsWith('.fleetgate-') && !name.startsWith('before-restore-'),
      );
    if (current.length) {
      fs.mkdirSync(aside, { mode: PRIVATE_DIR_MODE });
      for (const name of current) fs.renameSync(path.join(dataDir, name), path.join(aside, name));
      keptAside.files = aside;
    }
    const restoredFiles: string[] = [];
    for (const entry of extracted.entries) {
      if (!entry.name.startsWith('data/')) continue;
      const relative = entry.name.slice('data/'.length);
      const destination = path.join(dataDir, relative);
      fs.mkdirSync(path.dirname(destination), { recursive: true, mode: PRIVATE_DIR_MODE });
      fs.renameSync(entry.file!, destination);
      const mode = manifest.entries.find((e) => e.name === entry.name)?.mode ?? PRIVATE_FILE_MODE;
      fs.chmodSync(destination, mode & PRIVATE_FILE_MODE);
      restoredFiles.push(relative);
    }
    if (dialect === 'sqlite') {
      fs.renameSync(dbCopy, path.join(dataDir, SQLITE_FILE));
      fsyncFile(path.join(dataDir, SQLITE_FILE));
      restoredFiles.push(SQLITE_FILE);
    }
    fsyncFile(dataDir);
    return { manifest, keptAside, restoredFiles };
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

function checkManifest(
  file: string,
  bytes: Buffer,
  entries: Awaited<ReturnType<typeof extractArchive>>['entries'],
): BackupManifest {
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(bytes.toString('utf8')) as BackupManifest;
  } catch {
    throw new BackupError(`${file} is not a fleetgate backup: its manifest.json is not JSON`);
  }
  if (manifest?.format !== 'fleetgate-backup' || !Array.isArray(manifest.entries))
    throw new BackupError(`${file} is not a fleetgate backup: its manifest.json does not say so`);
  if (manifest.formatVersion !== 1)
    throw new BackupError(
      `${file} is a fleetgate backup of format ${manifest.formatVersion}, which this fleetgate (${version}) cannot read: use a newer fleetgate`,
    );
  for (const listed of manifest.entries) {
    const found = entries.find((e) => e.name === listed.name);
    if (!found) throw new BackupError(`${file} is damaged: ${listed.name} is missing from it`);
    if (found.size !== listed.size || found.sha256 !== listed.sha256)
      throw new BackupError(`${file} is damaged: ${listed.name} does not match its SHA-256 in the manifest`);
  }
  for (const entry of entries.slice(1))
    if (!manifest.entries.some((e) => e.name === entry.name))
      throw new BackupError(`${file} is damaged: it holds ${entry.name}, which its manifest does not list`);
  if (!manifest.entries.some((e) => e.name === DB_ENTRY[manifest.dialect]))
    throw new BackupError(`${file} is damaged: it holds no database`);
  if (!migrationNames.includes(manifest.schemaVersion))
    throw new BackupError(
      `${file} was made by a newer fleetgate (${manifest.fleetgateVersion}, schema ${manifest.schemaVersion}); ` +
        `this one (${version}) knows schemas up to ${migrationNames.at(-1)}: upgrade fleetgate, then restore`,
    );
  return manifest;
}

/**
 * Why a server seems to use this PostgreSQL schema: connections named by its pool (`application_name`) that are
 * open now. A server idle long enough to have closed every pooled connection is not seen: stop every server
 * first (the pid file covers the one on this data directory).
 */
async function postgresInUse(url: string, schema: string): Promise<string | undefined> {
  const { rows } = await withPg(url, (client) =>
    client.query(
      `select count(*)::int as n, string_agg(distinct coalesce(host(client_addr), 'local'), ', ') as hosts
         from pg_stat_activity where application_name = $1 and pid <> pg_backend_pid()`,
      [postgresApplicationName(schema)],
    ),
  );
  const { n, hosts } = rows[0] as { n: number; hosts: string | null };
  return n > 0
    ? `a fleetgate server is using the PostgreSQL schema "${schema}" (${n} connections from ${hosts})`
    : undefined;
}

async function restorePostgres(
  url: string,
  schema: string,
  dump: string,
  when: string,
  progress?: BackupProgress,
): Promise<string | undefined> {
  const asideName = `${schema}_before_restore_${when.replace(/\D/g, '').slice(0, 14)}`.slice(0, 63);
  const kept = await withPg(url, async (client) => {
    const exists = await client.query('select 1 from pg_namespace where nspname = $1', [schema]);
    if (exists.rowCount === 0) return undefined;
    await client.query(`ALTER SCHEMA "${schema}" RENAME TO "${asideName}"`);
    return asideName;
  });
  const { url: bare, env } = pgConnection(url);
  // A dump of `public` holds no CREATE SCHEMA (every database has one): make it, empty.
  const listing = spawnSync('pg_restore', ['--list', dump], { encoding: 'utf8' });
  if (!new RegExp(`SCHEMA - ${schema} `).test(listing.stdout ?? ''))
    await withPg(url, (client) => client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`));
  // The device search's trigram indexes (migration 0017) need pg_trgm, which a dump of one schema leaves out.
  if (/ INDEX .*_trgm /.test(listing.stdout ?? '')) {
    const trigram = await withPg(url, (client) =>
      trigramSchema((statement) => client.query(statement), false),
    );
    if (!trigram)
      throw new BackupError(
        "this backup's device search indexes need PostgreSQL's pg_trgm extension, which this database cannot make: " +
          "install PostgreSQL's contrib modules, or run CREATE EXTENSION pg_trgm as a superuser, then restore again",
      );
  }
  let restored = 0;
  const total = (listing.stdout ?? '').split('\n').filter((l) => / TABLE DATA /.test(l)).length;
  try {
    await runTool(
      'pg_restore',
      [
        '--no-owner',
        '--no-privileges',
        '--exit-on-error',
        '--single-transaction',
        '--verbose',
        `--dbname=${bare}`,
        dump,
      ],
      env,
      (line) => {
        if (/processing data for table/.test(line))
          progress?.('restoring the database', Math.min(++restored, total), total);
      },
    );
  } catch (err) {
    // Put things back as they were: the restored schema is half made.
    await withPg(url, async (client) => {
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      if (kept) await client.query(`ALTER SCHEMA "${kept}" RENAME TO "${schema}"`);
    }).catch(() => {});
    throw err;
  }
  progress?.('restoring the database', total, total);
  return kept;
}
