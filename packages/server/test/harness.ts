import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildApp } from '../src/app.ts';
import { ensureFirstOwner } from '../src/features/setup/service.ts';
import { type Config, loadConfig } from '../src/infra/config/index.ts';
import { type DatabaseHandle, dropPostgresSchema, openDatabase } from '../src/infra/db/index.ts';
import type { TypedApp } from '../src/infra/http/index.ts';
import { createLogger } from '../src/infra/logging/index.ts';

export const ADMIN_EMAIL = 'admin@example.test';
export const ADMIN_PASSWORD = 'correct horse battery';

/** Which database this run uses: PostgreSQL when DATABASE_URL is set (CI's second pass), else SQLite. */
export const dialectUnderTest = process.env.DATABASE_URL ? 'postgres' : 'sqlite';

export interface TestServer {
  app: TypedApp;
  config: Config;
  database: DatabaseHandle;
  /** Calls the API in-process; `token` becomes `Authorization: Bearer`. */
  api(
    method: string,
    url: string,
    options?: {
      token?: string | undefined;
      body?: unknown;
      headers?: Record<string, string>;
      /** The answer may be a stream that stays open (server-sent events): read up to its first event. */
      firstEvent?: boolean;
    },
  ): Promise<ApiAnswer>;
  /** Signs in and answers the session token. */
  login(email: string, password: string): Promise<string>;
  adminToken: string;
  close(): Promise<void>;
}

export interface ApiAnswer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: tests read answers loosely and assert on them.
  body: any;
  headers: Record<string, unknown>;
}

/**
 * A fleetgate with its own fresh database: a SQLite file in a temporary directory, or (with DATABASE_URL) a
 * PostgreSQL schema of its own, dropped on close so runs never collide or depend on leftovers.
 */
export async function startTestServer(
  overrides: Partial<Record<keyof Config, string | number>> = {},
  /** `tls`: a certificate (chain) and key to serve HTTPS with once the test listens. */
  options: { tls?: { cert: string | Buffer; key: string | Buffer } } = {},
): Promise<TestServer> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-test-'));
  const schema = `fg_test_${randomBytes(6).toString('hex')}`;
  const config = loadConfig(process.env, {
    dataDir,
    adminEmail: ADMIN_EMAIL,
    adminPassword: ADMIN_PASSWORD,
    logLevel: process.env.FLEETGATE_TEST_LOG_LEVEL ?? 'silent',
    httpPort: 0,
    // The other listeners too, when a test listens: parallel test files must never compete for a port.
    sshPort: 0,
    proxyPort: 0,
    dbSchema: process.env.DATABASE_URL ? schema : 'public',
    ...overrides,
  });
  const log = createLogger(config.logLevel);
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    schema: config.dbSchema,
    sqliteFile: path.join(dataDir, 'fleetgate.db'),
  });
  const app = await buildApp({ config, database, log, ...(options.tls ? { tls: options.tls } : {}) });
  await ensureFirstOwner(app.deps);
  await app.ready();

  const api: TestServer['api'] = async (method, url, options = {}) => {
    if (options.firstEvent) return firstEventOf(app, url, options.token);
    const response = await app.inject({
      method: method as 'GET',
      url,
      headers: {
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...options.headers,
      },
      ...(options.body !== undefined
        ? { payload: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) }
        : {}),
    });
    const text = response.body;
    let body: unknown = text;
    if ((response.headers['content-type'] ?? '').toString().includes('json') && text) body = JSON.parse(text);
    return { status: response.statusCode, body, headers: response.headers };
  };
  const login = async (email: string, password: string) => {
    const answer = await api('POST', '/api/v1/auth/login', { body: { email, password } });
    if (answer.status !== 200)
      throw new Error(`login ${email} failed: ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer.body.token as string;
  };
  const adminToken = await login(ADMIN_EMAIL, ADMIN_PASSWORD);

  return {
    app,
    config,
    database,
    api,
    login,
    adminToken,
    async close() {
      await app.close();
      await database.close();
      if (config.databaseUrl) await dropPostgresSchema(config.databaseUrl, config.dbSchema);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Two organizations with people in every role, a fleet and a device each: the cast of access-control tests.
 * `alpha` is the default organization (admin is its owner); `beta` is owned by betaOwner.
 */
export async function seedTwoOrgs(server: TestServer) {
  const { api, adminToken } = server;
  const must = (answer: ApiAnswer, status: number) => {
    if (answer.status !== status)
      throw new Error(`seed step failed: ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer.body;
  };
  const alpha = { orgId: 1 };
  const people: Record<string, { email: string; token: string; userId: number }> = {};
  const addPerson = async (
    orgToken: string,
    orgId: number,
    key: string,
    role: string,
    fleetIds?: number[],
  ) => {
    const email = `${key.toLowerCase()}@example.test`;
    const created = must(
      await api('POST', `/api/v1/orgs/${orgId}/members`, {
        token: orgToken,
        body: { email, role, ...(fleetIds ? { fleetIds } : {}) },
      }),
      201,
    );
    people[key] = { email, token: await server.login(email, created.password), userId: created.userId };
  };
  const alphaFleet = must(
    await api('POST', '/api/v1/fleets', {
      token: adminToken,
      body: { orgId: alpha.orgId, name: 'alpha-fleet', defaultDeviceType: 'raspberrypi4-64' },
    }),
    201,
  );
  const alphaFleet2 = must(
    await api('POST', '/api/v1/fleets', {
      token: adminToken,
      body: { orgId: alpha.orgId, name: 'alpha-fleet-2', defaultDeviceType: 'raspberrypi4-64' },
    }),
    201,
  );
  const alphaDevice = must(
    await api('POST', '/api/v1/devices', {
      token: adminToken,
      body: { fleetId: alphaFleet.id, name: 'alpha-device' },
    }),
    201,
  );
  const alphaDevice2 = must(
    await api('POST', '/api/v1/devices', {
      token: adminToken,
      body: { fleetId: alphaFleet2.id, name: 'alpha-device-2' },
    }),
    201,
  );
  await addPerson(adminToken, alpha.orgId, 'alphaAdmin', 'admin');
  await addPerson(adminToken, alpha.orgId, 'alphaOperator', 'operator');
  await addPerson(adminToken, alpha.orgId, 'alphaViewer', 'viewer');
  await addPerson(adminToken, alpha.orgId, 'alphaFleetOperator', 'operator', [alphaFleet.id]);

  // betaOwner starts as a plain user: created by the server admin, then creates their own organization.
  const betaUser = must(
    await api('POST', '/api/v1/users', {
      token: adminToken,
      body: { email: 'betaowner@example.test', password: 'beta owner password' },
    }),
    201,
  );
  const betaToken = await server.login('betaowner@example.test', 'beta owner password');
  people.betaOwner = { email: 'betaowner@example.test', token: betaToken, userId: betaUser.id };
  const beta = must(
    await api('POST', '/api/v1/orgs', { token: betaToken, body: { name: 'Beta Corp' } }),
    201,
  );
  const betaFleet = must(
    await api('POST', '/api/v1/fleets', {
      token: betaToken,
      body: { orgId: beta.id, name: 'beta-fleet', defaultDeviceType: 'generic-amd64' },
    }),
    201,
  );
  const betaDevice = must(
    await api('POST', '/api/v1/devices', {
      token: betaToken,
      body: { fleetId: betaFleet.id, name: 'beta-device' },
    }),
    201,
  );
  await addPerson(betaToken, beta.id, 'betaViewer', 'viewer');

  return {
    people: people as Record<
      'alphaAdmin' | 'alphaOperator' | 'alphaViewer' | 'alphaFleetOperator' | 'betaOwner' | 'betaViewer',
      { email: string; token: string; userId: number }
    >,
    alpha: {
      orgId: alpha.orgId,
      fleet: alphaFleet,
      fleet2: alphaFleet2,
      device: alphaDevice,
      device2: alphaDevice2,
    },
    beta: { orgId: beta.id as number, fleet: betaFleet, device: betaDevice },
  };
}

/** A GET whose 2xx answer is an event stream that stays open: the status, headers and text up to its first event. */
async function firstEventOf(app: TypedApp, url: string, token: string | undefined): Promise<ApiAnswer> {
  const abort = new AbortController();
  const response = await app.inject({
    method: 'GET',
    url,
    headers: token ? { authorization: `Bearer ${token}` } : {},
    payloadAsStream: true,
    signal: abort.signal,
  });
  let text = '';
  for await (const chunk of response.stream()) {
    text += chunk.toString();
    if (text.includes('\n\n')) break;
  }
  abort.abort();
  let body: unknown = text;
  if ((response.headers['content-type'] ?? '').toString().includes('json') && text) body = JSON.parse(text);
  return { status: response.statusCode, body, headers: response.headers };
}
