import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDoctor } from '../../src/doctor.ts';
import { check } from '../api/helpers.ts';
import { dialectUnderTest, startTestServer, type TestServer } from '../harness.ts';

/**
 * The device search's trigram indexes on PostgreSQL (migration 0017) need the pg_trgm extension. A database where
 * fleetgate may not create it (its role does not own the database) still migrates and searches, by reading the
 * list's own index as before.
 */
if (dialectUnderTest !== 'postgres')
  console.warn('SKIPPED: the pg_trgm fallback is PostgreSQL only (DATABASE_URL); SQLite always has FTS5');

describe.runIf(dialectUnderTest === 'postgres')('a PostgreSQL database without pg_trgm', () => {
  const suffix = randomBytes(5).toString('hex');
  const database = `fg_noext_${suffix}`;
  const role = `fg_noext_${suffix}`;
  const schema = `fg_noext_${suffix}`;
  const adminUrl = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test');
  let server: TestServer | undefined;

  async function asAdmin(db: string, statements: string[]): Promise<void> {
    const url = new URL(adminUrl);
    url.pathname = `/${db}`;
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    try {
      for (const statement of statements) await client.query(statement);
    } finally {
      await client.end();
    }
  }

  beforeAll(async () => {
    await asAdmin(adminUrl.pathname.slice(1), [`create role ${role} login`, `create database ${database}`]);
    // The role owns its schema, not the database: it may not create extensions there.
    await asAdmin(database, [`create schema ${schema} authorization ${role}`]);
    const url = new URL(adminUrl);
    url.username = role;
    url.pathname = `/${database}`;
    server = await startTestServer({ databaseUrl: url.toString(), dbSchema: schema });
  });

  afterAll(async () => {
    await server?.close();
    await asAdmin(adminUrl.pathname.slice(1), [
      `drop database if exists ${database} with (force)`,
      `drop role if exists ${role}`,
    ]);
  });

  it('migrates without the trigram indexes, and still finds devices by any part of their name or uuid', async () => {
    const db = server!.database.db;
    const extension = await sql`select extname from pg_extension where extname = 'pg_trgm'`.execute(db);
    expect(extension.rows).toEqual([]);
    const indexes = await sql<{ indexname: string }>`select indexname from pg_indexes
      where schemaname = current_schema() and tablename = 'devices'`.execute(db);
    const names = indexes.rows.map((r) => r.indexname);
    expect(names).toContain('devices_org_name');
    expect(names.filter((n) => n.endsWith('_trgm'))).toEqual([]);
    const admin = server!.adminToken;
    const fleet = check(
      await server!.api('POST', '/api/v1/fleets', {
        token: admin,
        body: { orgId: 1, name: 'no-trigrams', defaultDeviceType: 'raspberrypi4-64' },
      }),
      201,
    );
    const devices = [];
    for (const name of ['lobby-east', 'lobby-west', 'dock-north'])
      devices.push(
        check(
          await server!.api('POST', '/api/v1/devices', { token: admin, body: { fleetId: fleet.id, name } }),
          201,
        ),
      );
    const search = async (q: string) =>
      check(await server!.api('GET', `/api/v1/devices?q=${q}&fields=name`, { token: admin }), 200).items.map(
        (d: { name: string }) => d.name,
      );
    expect(await search('LOBBY')).toEqual(['lobby-east', 'lobby-west']);
    expect(await search('k-no')).toEqual(['dock-north']);
    expect(await search(devices[2].uuid.slice(5, 17))).toEqual(['dock-north']);
  });

  it('is told by fleetgate doctor, whose commands then make the indexes', async () => {
    const url = new URL(adminUrl);
    url.username = role;
    url.pathname = `/${database}`;
    const doctor = async () =>
      (
        await runDoctor({
          env: {},
          flags: { databaseUrl: url.toString(), dbSchema: schema, dataDir: server!.config.dataDir },
        })
      ).checks.find((c) => c.check === 'device search');
    const before = await doctor();
    expect(before?.level).toBe('warning');
    // What it tells an administrator to run, run as a superuser in that database.
    const statements = before!.message.slice(before!.message.indexOf('CREATE EXTENSION')).split('; ');
    expect(statements).toHaveLength(3);
    await asAdmin(database, statements);
    expect(await doctor()).toEqual({
      check: 'device search',
      level: 'ok',
      message: 'trigram indexes (pg_trgm) in place',
    });
  });
});

describe.runIf(dialectUnderTest === 'postgres')('a PostgreSQL database with pg_trgm', () => {
  it('has trigram indexes on lower(name) and the uuid, which a rare search reads', async () => {
    const server = await startTestServer();
    try {
      const db = server.database.db;
      const indexes = await sql<{ indexdef: string }>`select indexdef from pg_indexes
        where schemaname = current_schema() and indexname like '%_trgm'`.execute(db);
      expect(indexes.rows.map((r) => r.indexdef.replace(/ ON \S+/, ' ON devices')).sort()).toEqual([
        expect.stringMatching(
          /^CREATE INDEX devices_name_trgm ON devices USING gin \(lower\(\(name\)::text\) \S*gin_trgm_ops\)$/,
        ),
        expect.stringMatching(
          /^CREATE INDEX devices_uuid_trgm ON devices USING gin \(\(\(uuid\)::text\) \S*gin_trgm_ops\)$/,
        ),
      ]);
      // The search the device list makes, as it makes it (textCandidates), can be answered from the indexes: the
      // table is empty here, so the planner is told not to scan it.
      const plan = await db.transaction().execute(async (trx) => {
        await sql`set local enable_seqscan = off`.execute(trx);
        return sql<{ 'QUERY PLAN': string }>`explain select id from devices
          where lower(name) like '%kiosk-0042%' escape '\\' or uuid::text like '%kiosk-0042%' escape '\\' limit 1001`.execute(
          trx,
        );
      });
      const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
      expect(text).toMatch(/Bitmap Index Scan on devices_name_trgm/);
      expect(text).toMatch(/Bitmap Index Scan on devices_uuid_trgm/);
    } finally {
      await server.close();
    }
  });
});
