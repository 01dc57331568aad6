import fs from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { migrationProvider } from '../../db/migrations/index.ts';
import type { Database } from '../../db/schema.ts';

export type { Database };
export type Db = Kysely<Database>;
export type DialectName = 'sqlite' | 'postgres';

export interface DatabaseHandle {
  db: Db;
  dialect: DialectName;
  /** Where the data lives, for people: a file path or the PostgreSQL URL without its password. */
  location: string;
  /** Connections in use and idle, for /metrics. */
  poolStats(): { total: number; idle: number; waiting: number };
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** PostgreSQL URL; unset = SQLite at `sqliteFile`. */
  databaseUrl?: string | undefined;
  /** PostgreSQL schema to use, created when missing. Default `public`. */
  schema?: string;
  /** SQLite file; `:memory:` for a throwaway database. */
  sqliteFile: string;
}

/**
 * Opens the database (SQLite through better-sqlite3 in WAL mode, or PostgreSQL through `pg`) and brings its
 * schema up to date. 64-bit integers come back as numbers on both dialects (epoch milliseconds and counts fit).
 */
export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  const handle = options.databaseUrl
    ? await openPostgres(options.databaseUrl, options.schema ?? 'public')
    : openSqlite(options.sqliteFile);
  try {
    await migrate(handle, options.schema ?? 'public');
  } catch (err) {
    await handle.close();
    throw err;
  }
  return handle;
}

function openSqlite(file: string): DatabaseHandle {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
  const native = new SqliteDatabase(file);
  native.pragma('journal_mode = WAL');
  native.pragma('synchronous = NORMAL');
  native.pragma('foreign_keys = ON');
  native.pragma('busy_timeout = 5000');
  native.function('fold', { deterministic: true }, (value: unknown) =>
    typeof value === 'string' ? value.toLowerCase() : value,
  );
  // Planner statistics, which SQLite never gathers by itself: without them it looks devices up through
  // (org_id, id) once per organization for each tag match instead of once by rowid (a filtered device list
  // costs twice as much). `optimize` analyzes only the tables whose statistics are missing or stale.
  native.pragma('analysis_limit = 1000');
  const optimize = () => native.pragma('optimize = 0x10002');
  optimize();
  const optimizeTimer = setInterval(optimize, 60 * 60 * 1000).unref();

  // Kysely prepares every query anew, and parsing and planning a short query costs SQLite more than running
  // it: keep the statements by their SQL text. Texts differ with the length of IN lists, hence the bound.
  const statements = new Map<string, SqliteDatabase.Statement>();
  const database = {
    prepare(sql: string) {
      let statement = statements.get(sql);
      if (!statement) {
        if (statements.size >= 1_000) statements.clear();
        statement = native.prepare(sql);
        statements.set(sql, statement);
      }
      return statement;
    },
    close: () => native.close(),
  };
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
  return {
    db,
    dialect: 'sqlite',
    location: file,
    poolStats: () => ({ total: 1, idle: 1, waiting: 0 }),
    close: () => {
      clearInterval(optimizeTimer);
      return db.destroy();
    },
  };
}

async function openPostgres(url: string, schema: string): Promise<DatabaseHandle> {
  const int8 = 20;
  const numeric = 1700;
  const types = {
    getTypeParser: (oid: number, format?: 'text' | 'binary') =>
      oid === int8 || oid === numeric ? Number : pg.types.getTypeParser(oid, format),
  };
  if (schema !== 'public') {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    } finally {
      await client.end();
    }
  }
  const pool = new pg.Pool({
    connectionString: url,
    types,
    max: 10,
    options: schema === 'public' ? undefined : `-c search_path="${schema}"`,
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const redacted = new URL(url);
  if (redacted.password) redacted.password = '***';
  return {
    db,
    dialect: 'postgres',
    location: redacted.toString(),
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    close: () => db.destroy(),
  };
}

async function migrate(handle: DatabaseHandle, schema: string): Promise<void> {
  const ctx =
    handle.dialect === 'sqlite'
      ? { dialect: handle.dialect, id: 'integer' as const, bigint: 'integer' as const }
      : { dialect: handle.dialect, id: 'bigserial' as const, bigint: 'bigint' as const };
  // On PostgreSQL the bookkeeping tables live in our own schema: several fleetgates may share a database.
  const migrator = new Migrator({
    db: handle.db,
    provider: migrationProvider(ctx),
    ...(handle.dialect === 'postgres' ? { migrationTableSchema: schema } : {}),
  });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error) {
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${String(error)}`, {
      cause: error,
    });
  }
}

/** Drops a PostgreSQL schema and everything in it (tests use one schema per suite). */
export async function dropPostgresSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

/** `true` when the database answers a trivial query. */
export async function databaseReady(db: Db): Promise<boolean> {
  try {
    await sql`select 1`.execute(db);
    return true;
  } catch {
    return false;
  }
}

/** JSON stored as text on both dialects. */
export const json = {
  encode(value: unknown): string {
    return JSON.stringify(value);
  },
  decode<T>(text: string | null): T | null {
    return text === null ? null : (JSON.parse(text) as T);
  },
};

/** Escapes `%`, `_` and `\` for a LIKE pattern used with `escape '\'`. */
export function likeContains(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * Case-insensitive "column contains text", the same on both dialects (LIKE with `\` as escape). ASCII text
 * needs only the fast built-in `lower`; other text compares through `fold`, which lowers every script.
 */
export function containsText(column: string, text: string) {
  const lower = /^[\x20-\x7e]*$/.test(text) ? sql.raw('lower') : sql.raw('fold');
  return sql<boolean>`${lower}(${sql.ref(column)}) like ${likeContains(text.toLowerCase())} escape '\\'`;
}
