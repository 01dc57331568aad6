import SqliteDatabase from 'better-sqlite3';
import {
  type CompiledQuery,
  type DatabaseIntrospector,
  type DatabaseMetadataOptions,
  Kysely,
  Migrator,
  PostgresDialect,
  type SchemaMetadata,
  SqliteDialect,
  sql,
  type TableMetadata,
} from 'kysely';
import pg from 'pg';
import { migrationProvider } from '../../db/migrations/index.ts';
import type { Database } from '../../db/schema.ts';
import { createPrivateFile, restrictFile } from '../data-dir/index.ts';

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
  // Created 0600 before SQLite opens it: SQLite would make it 0644 under the usual umask. SQLite gives the -wal
  // and -shm files the database file's mode; an install made before that has them 0644, hence the chmod.
  if (file !== ':memory:') createPrivateFile(file);
  const native = new SqliteDatabase(file);
  native.pragma('journal_mode = WAL');
  if (file !== ':memory:') for (const suffix of ['-wal', '-shm']) restrictFile(`${file}${suffix}`);
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
  const reader = file === ':memory:' ? undefined : new SqliteReader(file);
  if (reader) readers.set(db, reader);
  return {
    db,
    dialect: 'sqlite',
    location: file,
    poolStats: () => ({ total: 1, idle: 1, waiting: 0 }),
    close: () => {
      clearInterval(optimizeTimer);
      reader?.close();
      return db.destroy();
    },
  };
}

/**
 * A second, read-only SQLite connection for the hottest reads (a device asking about itself, thousands of times
 * a second). Through Kysely every query waits its turn for the one connection behind a promise mutex and costs
 * ~30 µs more than the statement itself; here a prepared statement runs at once. In WAL mode it reads the last
 * committed state without blocking or being blocked by writes — never a transaction's uncommitted rows, so it is
 * only for reads that stand alone, not for reads inside a `write`.
 */
class SqliteReader {
  private native: SqliteDatabase.Database | undefined;
  private readonly statements = new Map<
    string,
    { statement: SqliteDatabase.Statement; row: RowMaker | undefined }
  >();

  constructor(private readonly file: string) {}

  all<R>(query: CompiledQuery<R>, parameters: readonly unknown[]): R[] {
    // Opened on first use: after the migrations, which may have created the file.
    if (!this.native) {
      this.native = new SqliteDatabase(this.file, { readonly: true, fileMustExist: true });
      this.native.pragma('busy_timeout = 5000');
    }
    let prepared = this.statements.get(query.sql);
    if (!prepared) {
      if (this.statements.size >= 100) this.statements.clear();
      const statement = this.native.prepare(query.sql);
      const columns = statement.reader ? statement.columns().map((c) => c.name) : [];
      // A column named `__proto__` would set an object literal's prototype: such a statement keeps its objects.
      prepared =
        statement.reader && !columns.includes('__proto__')
          ? { statement: statement.raw(true), row: rowMakerOf(columns) }
          : { statement, row: undefined };
      this.statements.set(query.sql, prepared);
    }
    const rows = prepared.statement.all(parameters);
    return (prepared.row ? (rows as unknown[][]).map(prepared.row) : rows) as R[];
  }

  close(): void {
    this.native?.close();
  }
}

type RowMaker = (values: unknown[]) => Record<string, unknown>;

/**
 * Turns a statement's rows, read as arrays (better-sqlite3's `raw` mode), into the objects it would have made: the
 * same keys in the same order, a later column of the same name winning. better-sqlite3 sets an object's properties
 * one by one from C++, ~6 µs per row of 25 columns (a page of 50 devices: 360 µs); arrays and an object literal
 * made for the statement's columns cost 150 µs for the same page.
 */
function rowMakerOf(columns: string[]): RowMaker {
  const last = new Map(columns.map((name, i) => [name, i]));
  const fields = [...last].map(([name, i]) => `${JSON.stringify(name)}: values[${i}]`);
  // Built from the statement's own column names, each quoted as a JSON string: no text from elsewhere.
  return new Function('values', `return { ${fields.join(', ')} };`) as RowMaker;
}

/**
 * PostgreSQL's side of `readNow`: the hottest reads as named prepared statements, straight on `pg`'s pool. Through
 * Kysely, `pg` sends every query unnamed, and PostgreSQL parses and plans it anew each time (on the same cores as
 * the server: bench/auth's device-key checks); a named statement is parsed and planned once per connection, and
 * later runs only bind and execute it. `pg` remembers which of its connections have prepared which name.
 */
class PostgresReader {
  /** Statement names by SQL text: a text keeps its name, and a name is never given to another text. */
  private readonly names = new Map<string, string>();

  constructor(private readonly pool: pg.Pool) {}

  async all<R>(query: CompiledQuery<R>, parameters: readonly unknown[]): Promise<R[]> {
    let name = this.names.get(query.sql);
    if (name === undefined && this.names.size < POSTGRES_NAMED_STATEMENTS_MAX) {
      name = `fleetgate_read_${this.names.size + 1}`;
      this.names.set(query.sql, name);
    }
    const result = await this.pool.query<R & pg.QueryResultRow>({
      ...(name === undefined ? {} : { name }),
      text: query.sql,
      values: parameters as unknown[],
    });
    return result.rows;
  }
}

/**
 * Named statements kept per connection at most: `readNow` takes queries compiled once, so a few; past this many
 * texts (a caller compiling per request by mistake), statements go unnamed instead of piling up on the server.
 */
const POSTGRES_NAMED_STATEMENTS_MAX = 100;

const readers = new WeakMap<Db, SqliteReader | PostgresReader>();

/**
 * Runs a compiled read-only query outside any transaction: on SQLite's read connection (see `SqliteReader`), as a
 * named prepared statement on PostgreSQL (see `PostgresReader`), or through Kysely on in-memory SQLite. Compile
 * the query once; `parameters` replace its own.
 */
export async function readNow<R>(
  db: Db,
  query: CompiledQuery<R>,
  parameters: readonly unknown[],
): Promise<R[]> {
  if (parameters.length !== query.parameters.length)
    throw new Error(
      `the query takes ${query.parameters.length} parameters, not ${parameters.length}: ${query.sql}`,
    );
  const reader = readers.get(db);
  if (reader) return reader.all(query, parameters);
  return (await db.executeQuery({ ...query, parameters })).rows as R[];
}

/**
 * Single-row reads by key that arrive within one turn of the event loop, answered together by one `readNow` of
 * `query`, which takes every key at once as its one parameter (`key = any($1)` on PostgreSQL). There, each query is
 * a round trip whose socket write and read cost more CPU than the query itself: one third of the server's CPU in a
 * device's `device/self` under bench/auth's 50 connections (writev to PostgreSQL's socket). A burst of
 * reads is split into queries of `maxKeys` keys at most.
 */
export class BatchedReads<K, R> {
  private waiting = new Map<K, { resolve(row: R | undefined): void; reject(err: unknown): void }[]>();
  private scheduled = false;

  constructor(
    private readonly db: Db,
    private readonly query: CompiledQuery<R>,
    private readonly keyOf: (row: R) => K,
    private readonly maxKeys = 500,
  ) {}

  /** The row of `key`, or undefined when there is none. */
  load(key: K): Promise<R | undefined> {
    return new Promise((resolve, reject) => {
      const waiters = this.waiting.get(key);
      if (waiters) waiters.push({ resolve, reject });
      else this.waiting.set(key, [{ resolve, reject }]);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.run());
      }
    });
  }

  private run(): void {
    this.scheduled = false;
    const all = [...this.waiting];
    this.waiting = new Map();
    for (let i = 0; i < all.length; i += this.maxKeys) {
      const batch = all.slice(i, i + this.maxKeys);
      readNow(this.db, this.query, [batch.map(([key]) => key)]).then(
        (rows) => {
          const byKey = new Map(rows.map((row) => [this.keyOf(row), row]));
          for (const [key, waiters] of batch) for (const w of waiters) w.resolve(byKey.get(key));
        },
        (err: unknown) => {
          for (const [, waiters] of batch) for (const w of waiters) w.reject(err);
        },
      );
    }
  }
}

/** The list lengths `padIds` rounds up to: a page of the API's lists holds 1-500 rows (50 by default). */
const ID_LIST_SIZES = [1, 10, 50, 100, 500];

/**
 * `ids` (at least one) padded with its last id up to the next of a few lengths, for reads of "the rows whose id is
 * in this list" through `readNow`: one compiled statement per length serves lists of any length up to it, and
 * stays prepared, where a statement per length (1 to 500) would not. A repeated id matches its row once.
 */
export function padIds(ids: readonly number[]): number[] {
  const size = ID_LIST_SIZES.find((n) => n >= ids.length) ?? ids.length;
  const padded = ids.slice();
  while (padded.length < size) padded.push(ids[ids.length - 1]!);
  return padded;
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
      // Made only when missing: a role given a schema of its own need not be allowed to make schemas (PostgreSQL
      // checks that right before it looks whether the schema exists).
      const exists = await client.query('select 1 from pg_namespace where nspname = $1', [schema]);
      if (!exists.rowCount) await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    } finally {
      await client.end();
    }
  }
  const pool = new pg.Pool({
    connectionString: url,
    types,
    max: 10,
    // Names the connections in pg_stat_activity, where `fleetgate restore` looks for servers still using the schema.
    application_name: postgresApplicationName(schema),
    options: schema === 'public' ? undefined : `-c search_path="${schema}"`,
  });
  const db = new Kysely<Database>({ dialect: new OwnSchemaPostgresDialect({ pool }, schema) });
  readers.set(db, new PostgresReader(pool));
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

/** The `application_name` of a server's PostgreSQL connections to `schema`. */
export function postgresApplicationName(schema: string): string {
  return `fleetgate:${schema}`;
}

/**
 * Kysely's PostgreSQL introspector reads the tables of every schema and resolves each schema by name as it goes
 * (`has_schema_privilege`, `pg_get_serial_sequence`), so it fails with "schema … does not exist" when another
 * fleetgate sharing the database drops its schema meanwhile (CI runs test files that way). The migrator asks it
 * whether its bookkeeping tables exist: this one reads only our own schema.
 */
class OwnSchemaPostgresDialect extends PostgresDialect {
  readonly #schema: string;
  constructor(config: ConstructorParameters<typeof PostgresDialect>[0], schema: string) {
    super(config);
    this.#schema = schema;
  }
  override createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new OwnSchemaIntrospector(db, this.#schema);
  }
}

class OwnSchemaIntrospector implements DatabaseIntrospector {
  readonly #db: Kysely<unknown>;
  readonly #schema: string;
  constructor(db: Kysely<unknown>, schema: string) {
    this.#db = db;
    this.#schema = schema;
  }

  async getSchemas(): Promise<SchemaMetadata[]> {
    const { rows } = await sql<{ name: string }>`select nspname as name from pg_catalog.pg_namespace`.execute(
      this.#db,
    );
    return rows;
  }

  async getTables(
    options: DatabaseMetadataOptions = { withInternalKyselyTables: false },
  ): Promise<TableMetadata[]> {
    // The WHERE clause keeps only our schema's rows before the select list's functions run.
    const { rows } = await sql<{
      table: string;
      kind: string;
      column: string;
      not_null: boolean;
      has_default: boolean;
      type: string;
      type_schema: string;
      comment: string | null;
      serial: string | null;
    }>`
      select c.relname as table, c.relkind as kind, a.attname as column, a.attnotnull as not_null,
        a.atthasdef as has_default, t.typname as type, tns.nspname as type_schema,
        col_description(a.attrelid, a.attnum) as comment,
        pg_get_serial_sequence(quote_ident(ns.nspname) || '.' || quote_ident(c.relname), a.attname) as serial
      from pg_catalog.pg_attribute a
        join pg_catalog.pg_class c on a.attrelid = c.oid
        join pg_catalog.pg_namespace ns on c.relnamespace = ns.oid
        join pg_catalog.pg_type t on a.atttypid = t.oid
        join pg_catalog.pg_namespace tns on t.typnamespace = tns.oid
      where ns.nspname = ${this.#schema} and c.relkind in ('r', 'v', 'p') and a.attnum >= 0 and not a.attisdropped
      order by c.relname, a.attnum`.execute(this.#db);
    const tables = new Map<string, TableMetadata & { columns: TableMetadata['columns'][number][] }>();
    for (const row of rows) {
      if (!options.withInternalKyselyTables && row.table.startsWith('kysely_migration')) continue;
      let table = tables.get(row.table);
      if (!table) {
        table = { name: row.table, schema: this.#schema, isView: row.kind === 'v', columns: [] };
        tables.set(row.table, table);
      }
      table.columns.push({
        name: row.column,
        dataType: row.type,
        dataTypeSchema: row.type_schema,
        isNullable: !row.not_null,
        isAutoIncrementing: row.serial !== null,
        hasDefaultValue: row.has_default,
        ...(row.comment === null ? {} : { comment: row.comment }),
      });
    }
    return [...tables.values()];
  }

  async getMetadata(options?: DatabaseMetadataOptions) {
    return { tables: await this.getTables(options) };
  }
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

/**
 * `text` with A–Z lower-cased and every other character kept: how the names people type (devices, fleets,
 * organizations) compare ignoring case. SQL's `lower()` folds differently on each database (SQLite A–Z alone,
 * PostgreSQL by its locale), so queries only narrow the rows with it and this decides.
 */
export function lowerAscii(text: string): string {
  return text.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
}
