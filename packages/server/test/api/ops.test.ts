import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseReady, dropPostgresSchema, openDatabase } from '../../src/infra/db/index.ts';
import { startTestServer, type TestServer } from '../harness.ts';
import { check } from './helpers.ts';

/** What operators and tools see: health, readiness, metrics, the API description and the error shape. */
let server: TestServer;
const bodyLimit = 4096;

beforeAll(async () => {
  server = await startTestServer({ bodyLimit });
});

afterAll(async () => {
  await server?.close();
});

/** The value of one Prometheus sample, or 0 when the series does not exist yet. */
function sample(metrics: string, name: string, labels: Record<string, string>): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.indexOf('}'));
    const present = labelText.split(',');
    if (wanted.every((w) => present.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

async function metrics(): Promise<string> {
  const answer = await server.api('GET', '/metrics');
  expect(answer.status).toBe(200);
  expect(String(answer.headers['content-type'])).toMatch(/^text\/plain/);
  return answer.body as string;
}

describe('health', () => {
  it('answers /healthz and /readyz without credentials', async () => {
    expect(check(await server.api('GET', '/healthz'), 200)).toEqual({ status: 'ok' });
    // With the id of the instance that answered (several may run on one database behind a load balancer).
    expect(check(await server.api('GET', '/readyz'), 200)).toEqual({
      status: 'ready',
      instance: expect.stringMatching(/^[0-9a-f-]{36}$/),
    });
  });
});

describe('database schemas', () => {
  // Two fleetgates may share one PostgreSQL database, each in its own FLEETGATE_DB_SCHEMA (CI runs test files
  // that way). This file's server already holds its migrated schema; another must migrate beside it.
  it.skipIf(!process.env.DATABASE_URL)(
    'lets a second instance migrate its own schema beside a live one',
    async () => {
      const databaseUrl = process.env.DATABASE_URL!;
      const schema = `fg_test_${randomBytes(6).toString('hex')}`;
      try {
        const second = await openDatabase({ databaseUrl, schema, sqliteFile: ':memory:' });
        try {
          expect(await databaseReady(second.db)).toBe(true);
          const tables = await second.db.introspection.getTables();
          expect(tables.filter((t) => t.schema === schema).map((t) => t.name)).toEqual(
            expect.arrayContaining(['organizations', 'users', 'devices', 'audit_events']),
          );
        } finally {
          await second.close();
        }
      } finally {
        await dropPostgresSchema(databaseUrl, schema);
      }
    },
  );
  // Another fleetgate dropping its schema while this one migrates must not fail this one's start (a CI run
  // failed that way: the migrator's table lookup read every schema and met one being dropped). A snapshot taken
  // before the drop makes the timing certain: the catalog rows still show the dropped schema.
  it.skipIf(!process.env.DATABASE_URL)(
    'looks up its tables while another instance drops its schema',
    async () => {
      const databaseUrl = process.env.DATABASE_URL!;
      const other = `fg_test_${randomBytes(6).toString('hex')}`;
      const otherHandle = await openDatabase({ databaseUrl, schema: other, sqliteFile: ':memory:' });
      await otherHandle.close();
      try {
        const tables = await server.database.db
          .transaction()
          .setIsolationLevel('repeatable read')
          .execute(async (trx) => {
            await sql`select 1`.execute(trx);
            await dropPostgresSchema(databaseUrl, other);
            return trx.introspection.getTables({ withInternalKyselyTables: true });
          });
        expect(tables.map((t) => t.name)).toEqual(
          expect.arrayContaining(['devices', 'kysely_migration', 'kysely_migration_lock']),
        );
        expect(new Set(tables.map((t) => t.schema))).toEqual(new Set([server.config.dbSchema]));
      } finally {
        await dropPostgresSchema(databaseUrl, other);
      }
    },
  );
});

describe('metrics', () => {
  it('counts HTTP requests by method, route and status', async () => {
    const before = sample(await metrics(), 'fleetgate_http_requests_total', {
      method: 'GET',
      route: '/healthz',
      status: '200',
    });
    await server.api('GET', '/healthz');
    await server.api('GET', '/healthz');
    const unauthorizedBefore = sample(await metrics(), 'fleetgate_http_requests_total', {
      method: 'GET',
      route: '/api/v1/me',
      status: '401',
    });
    await server.api('GET', '/api/v1/me');
    const text = await metrics();
    expect(text).toMatch(/^# TYPE fleetgate_http_requests_total counter$/m);
    expect(
      sample(text, 'fleetgate_http_requests_total', { method: 'GET', route: '/healthz', status: '200' }),
    ).toBe(before + 2);
    expect(
      sample(text, 'fleetgate_http_requests_total', { method: 'GET', route: '/api/v1/me', status: '401' }),
    ).toBe(unauthorizedBefore + 1);
  });

  it('reports database pool connections', async () => {
    const text = await metrics();
    expect(text).toMatch(/^# TYPE fleetgate_db_pool_connections gauge$/m);
    for (const state of ['total', 'idle', 'waiting']) {
      expect(text).toMatch(new RegExp(`^fleetgate_db_pool_connections\\{state="${state}"\\} \\d+$`, 'm'));
    }
    expect(sample(text, 'fleetgate_db_pool_connections', { state: 'total' })).toBeGreaterThanOrEqual(1);
  });

  it('never shows a credential', async () => {
    await server.api('GET', '/api/v1/me', { token: server.adminToken });
    expect(await metrics()).not.toContain(server.adminToken);
  });
});

describe('the API description', () => {
  it('is an OpenAPI 3 document listing the routes, public without credentials', async () => {
    const doc = check(await server.api('GET', '/api/v1/openapi.json'), 200);
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.info.title).toMatch(/fleetgate/);
    for (const path of [
      '/api/v1/auth/login',
      '/api/v1/me',
      '/api/v1/users',
      '/api/v1/orgs/{orgId}/members',
      '/api/v1/fleets',
      '/api/v1/fleets/{fleetId}/variables/{name}',
      '/api/v1/devices',
      '/api/v1/devices/{device}',
      '/api/v1/devices/{device}/tags/{key}',
      '/api/v1/api-keys',
      '/api/v1/audit',
    ]) {
      expect(doc.paths, path).toHaveProperty([path]);
    }
    expect(Object.keys(doc.paths['/api/v1/devices'])).toEqual(expect.arrayContaining(['get', 'post']));
    expect(doc.paths['/api/v1/auth/login'].post.security).toEqual([]);
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    // Internal endpoints stay out of the API description.
    expect(doc.paths).not.toHaveProperty(['/healthz']);
    expect(doc.paths).not.toHaveProperty(['/metrics']);
  });

  it('is browsable as HTML at /api/docs', async () => {
    const answer = await server.api('GET', '/api/docs');
    expect(answer.status).toBe(200);
    expect(String(answer.headers['content-type'])).toMatch(/text\/html/);
    expect(answer.body).toMatch(/swagger/i);
  });
});

describe('errors', () => {
  it('answers an unknown route with 404 in the error shape', async () => {
    for (const url of ['/api/v1/no-such-thing', '/nowhere']) {
      const answer = await server.api('GET', url, { token: server.adminToken });
      expect(answer.status, url).toBe(404);
      expect(answer.body).toEqual({ error: { code: 'not_found', message: expect.stringContaining(url) } });
    }
  });

  it('answers 401 in the error shape without credentials', async () => {
    const answer = await server.api('GET', '/api/v1/fleets');
    expect(answer.status).toBe(401);
    expect(answer.body).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
  });

  it('answers malformed JSON with 400, not 500', async () => {
    const answer = await server.api('POST', '/api/v1/orgs', { token: server.adminToken, body: '{"name": ' });
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('bad_request');
  });

  it('answers a body over the limit with 413', async () => {
    const answer = await server.api('POST', '/api/v1/orgs', {
      token: server.adminToken,
      body: { name: 'x'.repeat(bodyLimit * 2) },
    });
    expect(answer.status).toBe(413);
    expect(answer.body.error.code).toBe('payload_too_large');
  });

  it('answers an unsupported content type with 415', async () => {
    const answer = await server.api('POST', '/api/v1/orgs', {
      token: server.adminToken,
      headers: { 'content-type': 'text/csv' },
      body: 'name\nacme',
    });
    expect(answer.status).toBe(415);
    expect(answer.body.error.code).toBe('unsupported_media_type');
  });

  it('lists validation problems with where they are', async () => {
    const answer = await server.api('POST', '/api/v1/fleets', {
      token: server.adminToken,
      body: { orgId: '1', name: '' },
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('validation_failed');
    expect(answer.body.error.details).toEqual(
      expect.arrayContaining([expect.objectContaining({ where: 'body', path: 'orgId' })]),
    );
  });
});
