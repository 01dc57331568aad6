/**
 * `fleetgate backup` and `fleetgate restore` as an operator runs them: real `fleetgate serve` processes on real
 * data directories (SQLite, or PostgreSQL with DATABASE_URL and pg_dump), the CLI as its own process.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callApi, cliBin, eventually, freePort, Processes, type Running } from './processes.ts';

const ADMIN = { email: 'admin@backup.test', password: 'backup-test-password' };
const hasPgDump = spawnSync('pg_dump', ['--version']).status === 0;
const postgres = process.env.DATABASE_URL !== undefined;
const canRoundTrip = !postgres || hasPgDump;
if (!canRoundTrip)
  console.warn('SKIPPED: PostgreSQL backup round trip needs pg_dump (Debian package: postgresql-client)');

describe.runIf(!canRoundTrip && process.env.CI)('backup prerequisites', () => {
  it('are present on CI', () => {
    expect.fail('the PostgreSQL backup round trip cannot run: pg_dump is missing (postgresql-client)');
  });
});

let processes: Processes;
/** PostgreSQL schemas a restore kept aside, dropped at the end. */
const asideSchemas: string[] = [];

beforeAll(() => {
  processes = new Processes();
});

afterAll(async () => {
  if (processes?.databaseUrl && asideSchemas.length) {
    const client = new pg.Client({ connectionString: processes.databaseUrl });
    await client.connect();
    for (const schema of asideSchemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  }
  await processes?.cleanUp();
});

/** `fleetgate serve` on `dataDir` (and this file's PostgreSQL schema), answering once /readyz says ready. */
async function serve(dataDir: string, env: NodeJS.ProcessEnv = {}, logLevel = 'warn') {
  const port = await freePort();
  const running = processes.start(
    cliBin,
    [
      'serve',
      '--data-dir',
      dataDir,
      '--port',
      String(port),
      '--proxy-port',
      '0',
      '--ssh-port',
      '0',
      '--admin-email',
      ADMIN.email,
      '--admin-password',
      ADMIN.password,
      '--log-level',
      logLevel,
      ...(processes.databaseUrl
        ? ['--database-url', processes.databaseUrl, '--db-schema', processes.schema]
        : []),
    ],
    { FLEETGATE_WEB_ROOT: processes.dir, ...env },
  );
  const base = `http://127.0.0.1:${port}`;
  await eventually(
    `the server on ${dataDir} to answer (${running.output()})`,
    async () => (await fetch(`${base}/readyz`)).ok || undefined,
  );
  const { token } = await callApi(base, undefined, 'POST', '/api/v1/auth/login', ADMIN);
  return {
    base,
    running,
    api: (method: string, url: string, body?: unknown) => callApi(base, token, method, url, body),
  };
}

async function stop(running: Running): Promise<void> {
  if (running.child.exitCode !== null) return;
  running.child.kill('SIGTERM');
  await once(running.child, 'exit');
}

/** Runs the CLI to its end: exit code and output. */
async function fleetgate(args: string[], env: NodeJS.ProcessEnv = {}) {
  const run = processes.start(cliBin, args, {
    ...(processes.databaseUrl
      ? { DATABASE_URL: processes.databaseUrl, FLEETGATE_DB_SCHEMA: processes.schema }
      : {}),
    ...env,
  });
  const [code] = (await once(run.child, 'exit')) as [number];
  return { code, output: run.output() };
}

/** Every row of every table, as sorted JSON lines per table: SQLite file or PostgreSQL schema. */
async function everyTable(where: { sqliteFile?: string; schema?: string }): Promise<Map<string, string[]>> {
  const tables = new Map<string, string[]>();
  if (where.sqliteFile) {
    const db = new SqliteDatabase(where.sqliteFile, { readonly: true, fileMustExist: true });
    const names = db
      .prepare("select name from sqlite_master where type = 'table' and name not like 'sqlite_%'")
      .pluck()
      .all() as string[];
    for (const name of names)
      tables.set(
        name,
        (db.prepare(`select * from "${name}"`).all() as unknown[]).map((r) => JSON.stringify(r)).sort(),
      );
    db.close();
    return tables;
  }
  const client = new pg.Client({ connectionString: processes.databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query('select tablename from pg_tables where schemaname = $1', [
      where.schema,
    ]);
    for (const { tablename } of rows) {
      const result = await client.query(`select * from "${where.schema}"."${tablename}"`);
      tables.set(tablename, result.rows.map((r) => JSON.stringify(r)).sort());
    }
  } finally {
    await client.end();
  }
  return tables;
}

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

describe.runIf(canRoundTrip)('fleetgate backup while the server writes, then restore', () => {
  it('restores a consistent copy with every write acknowledged before the backup, every table row for row', async () => {
    const sourceDir = path.join(processes.dir, 'source');
    const source = await serve(sourceDir);
    const org = (await source.api('GET', '/api/v1/orgs')).items[0];

    // Three writers create fleets (each with its audit event) without pause, before, during and after the backup.
    const acked: { name: string; at: number }[] = [];
    const failures: string[] = [];
    let writing = true;
    let next = 0;
    const writer = async () => {
      while (writing) {
        const name = `load-${next++}`;
        try {
          await source.api('POST', '/api/v1/fleets', {
            orgId: org.id,
            name,
            defaultDeviceType: 'generic-amd64',
          });
          acked.push({ name, at: Date.now() });
        } catch (error) {
          failures.push(String(error));
        }
      }
    };
    const writers = [writer(), writer(), writer()];
    await eventually('some writes', () => acked.length >= 30 || undefined);

    const file = path.join(processes.dir, 'fleetgate.backup.tar.gz');
    const backupStartedAt = Date.now();
    const ackedBefore = acked.length;
    const backup = await fleetgate(['backup', '--data-dir', sourceDir, '--to', file, '--json']);
    const backupEndedAt = Date.now();
    expect(backup.code, backup.output).toBe(0);
    // The server kept serving: writes went on being acknowledged while the backup ran, and none failed.
    expect(acked.filter((w) => w.at > backupStartedAt && w.at < backupEndedAt).length).toBeGreaterThan(0);
    await eventually('writes after the backup', () => acked.length > ackedBefore + 10 || undefined);
    writing = false;
    await Promise.all(writers);
    expect(failures).toEqual([]);
    await stop(source.running);

    const manifest = JSON.parse(backup.output.slice(backup.output.indexOf('{'))).manifest;
    expect(manifest).toMatchObject({
      format: 'fleetgate-backup',
      dialect: postgres ? 'postgres' : 'sqlite',
      schemaVersion: expect.stringMatching(/^\d{4}_/),
    });
    // It holds private keys: nobody else may read it.
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(manifest.entries.map((e: { name: string }) => e.name)).toEqual(
      expect.arrayContaining(['data/ssh/ssh_host_ed25519_key', 'data/keys/device-tokens.json']),
    );

    // Restore into a fresh data directory (PostgreSQL: the same schema; the source is kept aside, renamed).
    const restoredDir = path.join(processes.dir, 'restored');
    const restore = await fleetgate(['restore', file, '--data-dir', restoredDir, '--json']);
    expect(restore.code, restore.output).toBe(0);
    const restored = JSON.parse(restore.output.slice(restore.output.indexOf('{')));
    if (postgres) {
      expect(restored.keptAside.postgresSchema).toMatch(new RegExp(`^${processes.schema}_before_restore_`));
      asideSchemas.push(restored.keptAside.postgresSchema);
    }
    // The keys and host keys come back byte for byte: devices and SSH clients see the same server.
    for (const key of ['ssh/ssh_host_ed25519_key', 'ssh/ssh_host_rsa_key', 'keys/device-tokens.json'])
      expect(sha256(path.join(restoredDir, key)), key).toBe(sha256(path.join(sourceDir, key)));

    const sourceTables = await everyTable(
      postgres
        ? { schema: restored.keptAside.postgresSchema }
        : { sqliteFile: path.join(sourceDir, 'fleetgate.db') },
    );
    const restoredTables = await everyTable(
      postgres ? { schema: processes.schema } : { sqliteFile: path.join(restoredDir, 'fleetgate.db') },
    );
    expect([...restoredTables.keys()].sort()).toEqual([...sourceTables.keys()].sort());
    // Only fleets were written during the load: every row of the backup is in the source as it is, and what the
    // source has beyond it is only the fleets (and their audit events) acknowledged after the backup started.
    const restoredFleets = restoredTables.get('fleets')!.map((r) => JSON.parse(r).name as string);
    for (const [table, rows] of restoredTables) {
      // The running instances and their heartbeats (every 2 s): the source's own row went when it stopped, and a
      // server started on the restored data replaces the one in the backup.
      if (table === 'instances') continue;
      const sourceRows = new Set(sourceTables.get(table));
      const changed = rows.filter((row) => !sourceRows.has(row));
      expect(changed, `rows of ${table} differ from the source`).toEqual([]);
      const extra = sourceTables.get(table)!.length - rows.length;
      if (table === 'fleets' || table === 'audit_events') expect(extra).toBeGreaterThanOrEqual(0);
      else expect(extra, `rows of ${table} missing from the backup`).toBe(0);
    }
    for (const write of acked.filter((w) => w.at < backupStartedAt))
      expect(restoredFleets, `fleet ${write.name} acknowledged before the backup`).toContain(write.name);
    expect(restoredFleets.length).toBeLessThan(sourceTables.get('fleets')!.length);
    // A consistent snapshot: each fleet in it has its audit event (both were written in one transaction).
    const auditedFleets = new Set(
      restoredTables
        .get('audit_events')!
        .map((r) => JSON.parse(r))
        .filter((e) => e.action === 'fleet.create')
        .map((e) => String(e.resource_id)),
    );
    for (const row of restoredTables.get('fleets')!) {
      const fleet = JSON.parse(row);
      if (fleet.name.startsWith('load-')) expect(auditedFleets, fleet.name).toContain(String(fleet.id));
    }

    // The restored fleetgate starts and serves what it holds.
    const again = await serve(restoredDir);
    const fleets = await again.api('GET', `/api/v1/fleets?limit=500`);
    expect(fleets.total).toBe(restoredFleets.length);
    await stop(again.running);
  }, 120_000);
});

describe('fleetgate restore refuses', () => {
  let backupFile: string;
  let dataDir: string;
  let server: Awaited<ReturnType<typeof serve>>;

  beforeAll(async () => {
    dataDir = path.join(processes.dir, 'refusals');
    server = await serve(dataDir);
    backupFile = path.join(processes.dir, 'refusals.tar.gz');
    if (canRoundTrip) {
      const made = await fleetgate(['backup', '--data-dir', dataDir, '--to', backupFile]);
      expect(made.code, made.output).toBe(0);
    }
  }, 60_000);

  afterAll(async () => {
    if (server) await stop(server.running);
  });

  it.runIf(canRoundTrip)('while a server runs on the data directory, which keeps serving', async () => {
    const before = fs.readdirSync(dataDir).sort();
    const refused = await fleetgate(['restore', backupFile, '--data-dir', dataDir]);
    expect(refused.code).toBe(1);
    expect(refused.output).toMatch(/fleetgate serve is running on .*: stop it first, then restore/);
    expect(fs.readdirSync(dataDir).sort()).toEqual(before);
    expect((await server.api('GET', '/api/v1/orgs')).items.length).toBe(1);
  });

  it.runIf(canRoundTrip && postgres)(
    'while a server on another data directory uses the PostgreSQL schema',
    async () => {
      const otherDir = path.join(processes.dir, 'other-machine');
      await server.api('GET', '/api/v1/orgs'); // its pool holds a connection now
      const refused = await fleetgate(['restore', backupFile, '--data-dir', otherDir]);
      expect(refused.code).toBe(1);
      expect(refused.output).toMatch(
        /a fleetgate server is using the PostgreSQL schema "fg_processes_\w+" \(\d+ connections from .*\): stop it first/,
      );
      expect((await server.api('GET', '/api/v1/orgs')).items.length).toBe(1);
    },
  );

  it.runIf(canRoundTrip && !postgres)(
    'while the SQLite database is open elsewhere, even without the process id file',
    async () => {
      const pidFile = path.join(dataDir, 'fleetgate.pid');
      const pid = fs.readFileSync(pidFile);
      fs.rmSync(pidFile);
      try {
        const refused = await fleetgate(['restore', backupFile, '--data-dir', dataDir]);
        expect(refused.code).toBe(1);
        expect(refused.output).toMatch(/fleetgate\.db is open in another process .*stop it first/);
      } finally {
        fs.writeFileSync(pidFile, pid);
      }
    },
  );

  it.runIf(canRoundTrip)(
    'a damaged backup, a foreign file and one from a newer schema, touching nothing',
    async () => {
      const emptyDir = path.join(processes.dir, 'untouched');
      fs.mkdirSync(emptyDir);
      fs.writeFileSync(path.join(emptyDir, 'marker'), 'still here');

      const damaged = path.join(processes.dir, 'damaged.tar.gz');
      const bytes = fs.readFileSync(backupFile);
      bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
      fs.writeFileSync(damaged, bytes);
      const first = await fleetgate(['restore', damaged, '--data-dir', emptyDir]);
      expect(first.code).toBe(1);
      expect(first.output).toMatch(/damaged\.tar\.gz is (not a fleetgate backup|damaged)/);

      const foreignDir = path.join(processes.dir, 'foreign');
      fs.mkdirSync(foreignDir);
      fs.writeFileSync(path.join(foreignDir, 'notes.txt'), 'hello');
      const foreign = path.join(processes.dir, 'foreign.tar.gz');
      spawnSync('tar', ['-czf', foreign, '-C', foreignDir, 'notes.txt']);
      const second = await fleetgate(['restore', foreign, '--data-dir', emptyDir]);
      expect(second.code).toBe(1);
      expect(second.output).toMatch(
        /foreign\.tar\.gz is not a fleetgate backup: its first entry is not manifest\.json/,
      );

      // A well-formed backup from a fleetgate whose schema this one does not know yet.
      const newerDir = path.join(processes.dir, 'newer');
      fs.mkdirSync(path.join(newerDir, 'database'), { recursive: true });
      const dbName = postgres ? 'database/fleetgate.pgdump' : 'database/fleetgate.db';
      fs.writeFileSync(path.join(newerDir, dbName), 'database bytes');
      const manifest = {
        format: 'fleetgate-backup',
        formatVersion: 1,
        fleetgateVersion: '9.0.0',
        schemaVersion: '9999_from_the_future',
        dialect: postgres ? 'postgres' : 'sqlite',
        postgresSchema: processes.schema,
        createdAt: new Date().toISOString(),
        entries: [{ name: dbName, size: 14, sha256: sha256(path.join(newerDir, dbName)), mode: 0o600 }],
      };
      fs.writeFileSync(path.join(newerDir, 'manifest.json'), JSON.stringify(manifest));
      const newer = path.join(processes.dir, 'newer.tar.gz');
      spawnSync('tar', ['--format=ustar', '-czf', newer, '-C', newerDir, 'manifest.json', dbName]);
      const third = await fleetgate(['restore', newer, '--data-dir', emptyDir]);
      expect(third.code).toBe(1);
      expect(third.output).toMatch(
        /was made by a newer fleetgate \(9\.0\.0, schema 9999_from_the_future\); .* upgrade fleetgate, then restore/,
      );

      // Nothing was moved or written.
      expect(fs.readdirSync(emptyDir)).toEqual(['marker']);
    },
  );

  it.runIf(postgres)('a PostgreSQL backup without pg_dump, saying what to install', async () => {
    const noTools = path.join(processes.dir, 'no-tools');
    fs.mkdirSync(noTools, { recursive: true });
    const refused = await fleetgate(
      ['backup', '--data-dir', dataDir, '--to', path.join(processes.dir, 'x.tar.gz')],
      {
        PATH: noTools,
      },
    );
    expect(refused.code).toBe(1);
    expect(refused.output).toMatch(/pg_dump is not installed: .*apt-get install postgresql-client/);
  });
});

describe.runIf(canRoundTrip)('scheduled backups', () => {
  it('are made by the server every interval and pruned to the newest N; a failing one shows in /readyz', async () => {
    const dataDir = path.join(processes.dir, 'scheduled');
    const backupDir = path.join(processes.dir, 'scheduled-backups');
    const server = await serve(dataDir, {
      FLEETGATE_BACKUP_INTERVAL: '1s',
      FLEETGATE_BACKUP_KEEP: '2',
      FLEETGATE_BACKUP_DIR: backupDir,
    });
    const seen = new Set<string>();
    let status: unknown;
    await eventually(
      'four scheduled backups',
      async () => {
        const ready = await (await fetch(`${server.base}/readyz`)).json();
        status = ready.backups;
        if (ready.backups?.lastFile) seen.add(ready.backups.lastFile);
        return seen.size >= 4 || undefined;
      },
      90_000,
    ).catch((err: Error) => {
      // Once seen under CI load: what the server said of its backups tells a slow machine from a failing backup.
      throw new Error(`${err.message}: saw ${seen.size}; the server's backups: ${JSON.stringify(status)}`);
    });
    const kept = fs.readdirSync(backupDir).filter((n) => n.endsWith('.tar.gz'));
    expect(kept.length).toBe(2);
    const latest = [...seen].sort().at(-1)!;
    expect(kept.map((n) => path.join(backupDir, n))).toContain(latest);
    await stop(server.running);
    // What the schedule made is a backup `restore` takes.
    const restored = await fleetgate([
      'restore',
      latest,
      '--data-dir',
      path.join(processes.dir, 'from-schedule'),
      '--json',
    ]);
    expect(restored.code, restored.output).toBe(0);
    const answer = JSON.parse(restored.output.slice(restored.output.indexOf('{')));
    if (postgres) asideSchemas.push(answer.keptAside.postgresSchema);

    // A folder that cannot be made (a file is in the way): the failure is in /readyz, the server still ready.
    const blocked = path.join(processes.dir, 'blocked');
    fs.writeFileSync(blocked, 'a file, not a folder');
    const failing = await serve(path.join(processes.dir, 'scheduled-failing'), {
      FLEETGATE_BACKUP_INTERVAL: '1s',
      FLEETGATE_BACKUP_DIR: path.join(blocked, 'backups'),
    });
    const ready = await eventually('the failure in /readyz', async () => {
      const answer = await (await fetch(`${failing.base}/readyz`)).json();
      return answer.backups?.lastError ? answer : undefined;
    });
    expect(ready.status).toBe('ready');
    expect(ready.backups.lastError).toMatch(/ENOTDIR|not a directory/);
    const metrics = await (await fetch(`${failing.base}/metrics`)).text();
    expect(metrics).toMatch(/^fleetgate_backup_failures_total [1-9]/m);
    await stop(failing.running);
  }, 120_000);
});
