import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Migrator, sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrationNames, migrationProvider } from '../../db/migrations/index.ts';
import { openDatabase } from '../../infra/db/index.ts';
import { extractArchive } from './archive.ts';
import { createBackup, restoreBackup } from './service.ts';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-backup-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

async function lastMigration(sqliteFile: string): Promise<string> {
  const handle = await openDatabase({ sqliteFile });
  try {
    const { rows } = await sql<{
      name: string;
    }>`select name from kysely_migration order by name desc limit 1`.execute(handle.db);
    return rows[0]!.name;
  } finally {
    await handle.close();
  }
}

describe('a backup of an older schema', () => {
  it('is restored by this fleetgate and brought up to date at the next start', async () => {
    const source = path.join(dir, 'source');
    const handle = await openDatabase({ sqliteFile: path.join(source, 'fleetgate.db') });
    // The database as the previous release left it: its last migration undone.
    const migrator = new Migrator({
      db: handle.db,
      provider: migrationProvider({ dialect: 'sqlite', id: 'integer', bigint: 'integer' }),
    });
    expect((await migrator.migrateDown()).error).toBeUndefined();
    await handle.close();

    const backup = await createBackup({ dataDir: source });
    expect(backup.manifest.schemaVersion).toBe(migrationNames.at(-2));

    const restoredDir = path.join(dir, 'restored');
    const restored = await restoreBackup({ dataDir: restoredDir }, backup.file);
    expect(restored.restoredFiles).toContain('fleetgate.db');
    expect(await lastMigration(path.join(restoredDir, 'fleetgate.db'))).toBe(migrationNames.at(-1));
  });

  it('of SQLite is refused for a PostgreSQL configuration, before anything is touched', async () => {
    const source = path.join(dir, 'source');
    await (await openDatabase({ sqliteFile: path.join(source, 'fleetgate.db') })).close();
    const backup = await createBackup({ dataDir: source }, { file: path.join(dir, 'b.tar.gz') });
    const target = path.join(dir, 'target');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'marker'), '');
    await expect(
      restoreBackup({ dataDir: target, databaseUrl: 'postgres://nobody@127.0.0.1:1/none' }, backup.file),
    ).rejects.toThrow(/is a backup of a SQLite database, and this configuration uses PostgreSQL/);
    expect(fs.readdirSync(target)).toEqual(['marker']);
  });
});

describe('a SQLite backup', () => {
  it('completes while another connection writes without pause, and holds one snapshot', async () => {
    const dataDir = path.join(dir, 'busy');
    await (await openDatabase({ sqliteFile: path.join(dataDir, 'fleetgate.db') })).close();
    const writer = new SqliteDatabase(path.join(dataDir, 'fleetgate.db'));
    writer.pragma('journal_mode = WAL');
    writer.exec('create table load (id integer primary key, body blob not null)');
    const insert = writer.prepare('insert into load (body) values (?)');
    // 40 MB: thousands of pages, so that a copy in small steps would start over at every write.
    writer.transaction(() => {
      for (let i = 0; i < 10_000; i++) insert.run(Buffer.alloc(4000, i));
    })();

    let copying = false;
    let writesWhileCopying = 0;
    let writing = true;
    const loop = () => {
      if (!writing) return;
      insert.run(Buffer.alloc(100));
      if (copying) writesWhileCopying++;
      setImmediate(loop);
    };
    loop();
    const rowsBefore = (writer.prepare('select count(*) as n from load').get() as { n: number }).n;
    const backup = await createBackup(
      { dataDir },
      {
        file: path.join(dir, 'busy.tar.gz'),
        progress: (step) => {
          copying = step === 'copying the database';
        },
      },
    );
    writing = false;
    const rowsAfter = (writer.prepare('select count(*) as n from load').get() as { n: number }).n;
    writer.close();
    expect(writesWhileCopying).toBeGreaterThan(0);

    const into = path.join(dir, 'extracted');
    fs.mkdirSync(into);
    await extractArchive(backup.file, into);
    const copy = new SqliteDatabase(path.join(into, 'database/fleetgate.db'), { readonly: true });
    expect(copy.pragma('integrity_check', { simple: true })).toBe('ok');
    const rowsInCopy = (copy.prepare('select count(*) as n from load').get() as { n: number }).n;
    copy.close();
    expect(rowsInCopy).toBeGreaterThanOrEqual(rowsBefore);
    expect(rowsInCopy).toBeLessThanOrEqual(rowsAfter);
  }, 60_000);
});
