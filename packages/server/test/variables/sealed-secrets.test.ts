/**
 * Secret variables sealed at rest (issue 18): what the database holds, what devices are delivered, and the
 * starts that must refuse. Each test runs a server on a data directory (and, with DATABASE_URL, a PostgreSQL
 * schema) that outlives it, stops it and starts it again, as an operator would.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Migrator } from 'kysely';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.ts';
import { migrationProvider } from '../../src/db/migrations/index.ts';
import { ensureFirstOwner } from '../../src/features/setup/service.ts';
import { effectiveVariablesOf } from '../../src/features/variables/index.ts';
import { loadConfig } from '../../src/infra/config/index.ts';
import { dropPostgresSchema, openDatabase } from '../../src/infra/db/index.ts';
import type { TypedApp } from '../../src/infra/http/index.ts';
import { createLogger } from '../../src/infra/logging/index.ts';
import { SecretKeyError, secretsKeyFile } from '../../src/infra/secrets/index.ts';
import { rotateSecretKeys } from '../../src/rotate-secrets.ts';
import { createProvisioningKey, registerNewDevice } from '../enrollment/helpers.ts';
import { ADMIN_EMAIL, ADMIN_PASSWORD } from '../harness.ts';
import { basicAuth, isVariables, startTunnelServer, TestAgent } from '../tunnel/helpers.ts';

const KEY_A = Buffer.alloc(32, 0xa1).toString('base64');
const KEY_B = Buffer.alloc(32, 0xb2).toString('base64');
const SECRET = `sk-live-${randomBytes(8).toString('hex')}`;

/** One installation: a data directory and its database, started and stopped as often as a test likes. */
class Install {
  readonly dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-sealed-'));
  readonly schema = `fg_test_${randomBytes(6).toString('hex')}`;
  readonly databaseUrl = process.env.DATABASE_URL;

  flags(extra: Record<string, string> = {}) {
    return {
      dataDir: this.dataDir,
      adminEmail: ADMIN_EMAIL,
      adminPassword: ADMIN_PASSWORD,
      logLevel: 'silent',
      dbSchema: this.databaseUrl ? this.schema : 'public',
      ...extra,
    };
  }

  env(secretsKey?: string): NodeJS.ProcessEnv {
    return {
      ...(this.databaseUrl ? { DATABASE_URL: this.databaseUrl } : {}),
      ...(secretsKey ? { FLEETGATE_SECRETS_KEY: secretsKey } : {}),
    };
  }

  /** Starts fleetgate on this installation (throws what the start throws). */
  async start(secretsKey?: string): Promise<Running> {
    const config = loadConfig(this.env(secretsKey), this.flags());
    const database = await openDatabase({
      databaseUrl: config.databaseUrl,
      schema: config.dbSchema,
      sqliteFile: path.join(this.dataDir, 'fleetgate.db'),
    });
    let app: TypedApp;
    try {
      app = await buildApp({ config, database, log: createLogger('silent') });
    } catch (error) {
      await database.close();
      throw error;
    }
    await ensureFirstOwner(app.deps);
    const login = await app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      payload: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
    });
    const token = login.json().token as string;
    const api = async (method: string, url: string, body?: unknown) => {
      const answer = await app.inject({
        method: method as 'GET',
        url,
        headers: { authorization: `Bearer ${token}` },
        ...(body === undefined ? {} : { payload: body as object }),
      });
      if (answer.statusCode >= 300) throw new Error(`${method} ${url}: ${answer.statusCode} ${answer.body}`);
      return answer.body ? answer.json() : undefined;
    };
    return {
      app,
      api,
      delivered: async (deviceId: number) =>
        (await effectiveVariablesOf(database.db, app.deps.secrets, [deviceId])).get(deviceId)!.variables,
      stop: async () => {
        await app.close();
        await database.close();
      },
    };
  }

  /** Rows as they are stored, read with the database's own client (not through fleetgate). */
  async rawRows(): Promise<{ table: string; name: string; value: string; key_id: string | null }[]> {
    const query = `select 'fleet_variables' as "table", name, value, key_id from fleet_variables
      union all select 'device_variables' as "table", name, value, key_id from device_variables`;
    if (!this.databaseUrl) {
      const db = new Database(path.join(this.dataDir, 'fleetgate.db'), { readonly: true });
      try {
        return db.prepare(query).all() as never;
      } finally {
        db.close();
      }
    }
    const client = new pg.Client({ connectionString: this.databaseUrl });
    await client.connect();
    try {
      await client.query(`set search_path to ${this.schema}`);
      return (await client.query(query)).rows;
    } finally {
      await client.end();
    }
  }

  /** Runs one SQL statement with the database's own client, as someone with access to the database could. */
  async rawExec(sql: string, params: unknown[]): Promise<void> {
    if (!this.databaseUrl) {
      const db = new Database(path.join(this.dataDir, 'fleetgate.db'));
      try {
        db.prepare(sql.replace(/\$\d+/g, '?')).run(...params);
      } finally {
        db.close();
      }
      return;
    }
    const client = new pg.Client({ connectionString: this.databaseUrl });
    await client.connect();
    try {
      await client.query(`set search_path to ${this.schema}`);
      await client.query(sql, params);
    } finally {
      await client.end();
    }
  }

  /** Every byte of the SQLite database (file and write-ahead log); empty on PostgreSQL. */
  sqliteBytes(): Buffer {
    if (this.databaseUrl) return Buffer.alloc(0);
    const files = ['fleetgate.db', 'fleetgate.db-wal'].map((f) => path.join(this.dataDir, f));
    return Buffer.concat(files.filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f)));
  }

  async remove(): Promise<void> {
    if (this.databaseUrl) await dropPostgresSchema(this.databaseUrl, this.schema).catch(() => {});
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}

interface Running {
  app: TypedApp;
  // biome-ignore lint/suspicious/noExplicitAny: tests read answers loosely and assert on them.
  api(method: string, url: string, body?: unknown): Promise<any>;
  delivered(deviceId: number): Promise<Record<string, string>>;
  stop(): Promise<void>;
}

const installs: Install[] = [];
const newInstall = () => {
  const install = new Install();
  installs.push(install);
  return install;
};
afterAll(async () => {
  for (const install of installs) await install.remove();
});

/** A fleet and two devices in it, with a secret fleet variable and a secret device variable on the first. */
async function seed(server: Running) {
  const fleet = await server.api('POST', '/api/v1/fleets', {
    orgId: 1,
    name: `sealed-${randomBytes(3).toString('hex')}`,
    defaultDeviceType: 'generic-amd64',
  });
  const device = await server.api('POST', '/api/v1/devices', { fleetId: fleet.id, name: 'sealed-1' });
  const device2 = await server.api('POST', '/api/v1/devices', { fleetId: fleet.id, name: 'sealed-2' });
  await server.api('PUT', `/api/v1/fleets/${fleet.id}/variables/FLEET_TOKEN`, {
    value: `fleet ${SECRET}`,
    secret: true,
  });
  await server.api('PUT', `/api/v1/devices/${device.uuid}/variables/DEVICE_TOKEN`, {
    value: `device ${SECRET}`,
    secret: true,
  });
  await server.api('PUT', `/api/v1/fleets/${fleet.id}/variables/PLAIN`, { value: 'not secret' });
  return { fleet, device, device2 };
}

describe('secret variables at rest', () => {
  it('are stored sealed (no plain secret in the database), shown as null, yet delivered to the device', async () => {
    const install = newInstall();
    const server = await install.start();
    try {
      const { device } = await seed(server);
      const rows = await install.rawRows();
      const secrets = rows.filter((r) => r.name !== 'PLAIN');
      expect(secrets).toHaveLength(2);
      for (const row of secrets) {
        expect(row.value).toMatch(/^v1:[0-9a-f]{16}:/);
        expect(row.value).not.toContain(SECRET);
        expect(row.key_id).toBe(server.app.deps.secrets.currentKeyId);
      }
      expect(rows.find((r) => r.name === 'PLAIN')).toMatchObject({ value: 'not secret', key_id: null });
      expect(install.sqliteBytes().includes(SECRET)).toBe(false);
      expect(fs.statSync(secretsKeyFile(install.dataDir)).mode & 0o777).toBe(0o600);

      const listed = (await server.api('GET', `/api/v1/devices/${device.uuid}/variables`)).items;
      expect(
        listed.filter((v: { secret: boolean }) => v.secret).map((v: { value: unknown }) => v.value),
      ).toEqual([null, null]);
      expect(await server.delivered(device.id)).toEqual({
        FLEET_TOKEN: `fleet ${SECRET}`,
        DEVICE_TOKEN: `device ${SECRET}`,
        PLAIN: 'not secret',
      });
    } finally {
      await server.stop();
    }
  });

  it("copied into another variable's row are refused, never delivered as garbage", async () => {
    const install = newInstall();
    const server = await install.start();
    try {
      const { device, device2 } = await seed(server);
      await server.api('PUT', `/api/v1/devices/${device2.uuid}/variables/DEVICE_TOKEN`, {
        value: 'mine',
        secret: true,
      });
      expect((await server.delivered(device2.id)).DEVICE_TOKEN).toBe('mine');
      // Someone with write access to the database moves device 1's sealed token onto device 2's variable.
      const sealedOfDevice1 = await sealedOf(install, device.id);
      await install.rawExec('update device_variables set value = $1 where device_id = $2 and name = $3', [
        sealedOfDevice1,
        device2.id,
        'DEVICE_TOKEN',
      ]);
      await expect(server.delivered(device2.id)).rejects.toThrow(/does not open for device-variable:/);
      // Device 1 still gets its own.
      expect((await server.delivered(device.id)).DEVICE_TOKEN).toBe(`device ${SECRET}`);
    } finally {
      await server.stop();
    }
  });

  it('stored in plain text before sealing existed are sealed by the upgrade, and still delivered', async () => {
    const install = newInstall();
    let server = await install.start();
    const { device } = await seed(server);
    await server.stop();
    // The database as a fleetgate before migration 0012 left it: the migration undone (no key_id column), the
    // secret values in plain text.
    const database = await openDatabase({
      databaseUrl: install.databaseUrl,
      schema: install.schema,
      sqliteFile: path.join(install.dataDir, 'fleetgate.db'),
    });
    await database.db
      .updateTable('device_variables')
      .set({ value: `device ${SECRET}`, key_id: null })
      .where('name', '=', 'DEVICE_TOKEN')
      .execute();
    await database.db
      .updateTable('fleet_variables')
      .set({ value: `fleet ${SECRET}`, key_id: null })
      .where('name', '=', 'FLEET_TOKEN')
      .execute();
    const migrator = new Migrator({
      db: database.db,
      provider: migrationProvider(
        install.databaseUrl
          ? { dialect: 'postgres', id: 'bigserial', bigint: 'bigint' }
          : { dialect: 'sqlite', id: 'integer', bigint: 'integer' },
      ),
      ...(install.databaseUrl ? { migrationTableSchema: install.schema } : {}),
    });
    // Back to the schema before sealing (undoing the later migrations on the way).
    const undone = await migrator.migrateTo('0011_device_web');
    expect(undone.error).toBeUndefined();
    expect(undone.results?.map((r) => r.migrationName).at(-1)).toBe('0012_sealed_secrets');
    await database.close();

    server = await install.start();
    try {
      const secrets = (await install.rawRows()).filter((r) => r.name.endsWith('_TOKEN'));
      expect(secrets).toHaveLength(2);
      for (const row of secrets) {
        expect(row.value).toMatch(/^v1:[0-9a-f]{16}:/);
        expect(row.value).not.toContain(SECRET);
      }
      expect(install.sqliteBytes().includes(`device ${SECRET}`)).toBe(false);
      expect(await server.delivered(device.id)).toMatchObject({
        FLEET_TOKEN: `fleet ${SECRET}`,
        DEVICE_TOKEN: `device ${SECRET}`,
      });
    } finally {
      await server.stop();
    }
    // A further start finds nothing left to seal and changes nothing.
    const before = await install.rawRows();
    await (await install.start()).stop();
    expect(await install.rawRows()).toEqual(before);
  });

  it('make a start without their key refuse with what to do, changing nothing (key file lost, wrong key given)', async () => {
    const install = newInstall();
    let server = await install.start();
    const { device } = await seed(server);
    await server.stop();
    const rows = await install.rawRows();
    const keyFile = secretsKeyFile(install.dataDir);
    const saved = fs.readFileSync(keyFile);

    fs.rmSync(keyFile);
    const lost = await install.start().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(lost).toBeInstanceOf(SecretKeyError);
    expect((lost as Error).message).toMatch(
      /sealed with key [0-9a-f]{16}, but neither .*secrets\.json nor FLEETGATE_SECRETS_KEY gives any key\. Restore .*secrets\.json from the backup/,
    );
    // No new key file was made to hide the loss, and no value changed.
    expect(fs.existsSync(keyFile)).toBe(false);
    await expect(install.start(KEY_B)).rejects.toThrow(
      /FLEETGATE_SECRETS_KEY does not hold key [0-9a-f]{16}/,
    );
    expect(await install.rawRows()).toEqual(rows);

    fs.writeFileSync(keyFile, saved, { mode: 0o600 });
    server = await install.start();
    try {
      expect((await server.delivered(device.id)).DEVICE_TOKEN).toBe(`device ${SECRET}`);
    } finally {
      await server.stop();
    }
  });

  it('stay readable through a rotation of the key file, sealed with the new key; older keys stay in the file', async () => {
    const install = newInstall();
    let server = await install.start();
    const { device } = await seed(server);
    const oldKeyId = server.app.deps.secrets.currentKeyId;
    await server.stop();

    const rotated = await rotateSecretKeys({ env: install.env(), flags: install.flags() });
    expect(rotated).toMatchObject({ resealed: 2, source: secretsKeyFile(install.dataDir) });
    expect(rotated.keyId).not.toBe(oldKeyId);
    const keyFile = JSON.parse(fs.readFileSync(secretsKeyFile(install.dataDir), 'utf8'));
    expect(keyFile.keys.map((k: { id: string }) => k.id)).toEqual([rotated.keyId, oldKeyId]);
    for (const row of (await install.rawRows()).filter((r) => r.key_id !== null)) {
      expect(row.key_id).toBe(rotated.keyId);
      expect(row.value.startsWith(`v1:${rotated.keyId}:`)).toBe(true);
    }
    server = await install.start();
    try {
      expect(server.app.deps.secrets.currentKeyId).toBe(rotated.keyId);
      // Audited in the same transaction, by the machine's operator.
      const audited = await server.app.deps.db
        .selectFrom('audit_events')
        .select(['resource_id', 'details'])
        .where('action', '=', 'secrets.rotate')
        .execute();
      expect(audited).toHaveLength(1);
      expect(audited[0]!.resource_id).toBe(rotated.keyId);
      expect(JSON.parse(String(audited[0]!.details))).toMatchObject({
        resealed: 2,
        osUser: os.userInfo().username,
      });
      expect(await server.delivered(device.id)).toMatchObject({
        FLEET_TOKEN: `fleet ${SECRET}`,
        DEVICE_TOKEN: `device ${SECRET}`,
      });
    } finally {
      await server.stop();
    }
  });

  it('rotated beside a running server reach its devices still, and are then written with the new key', async () => {
    const install = newInstall();
    const server = await install.start();
    try {
      const { fleet, device } = await seed(server);
      const rotated = await rotateSecretKeys({ env: install.env(), flags: install.flags() });
      expect(rotated.resealed).toBe(2);
      expect(await server.delivered(device.id)).toMatchObject({
        FLEET_TOKEN: `fleet ${SECRET}`,
        DEVICE_TOKEN: `device ${SECRET}`,
      });
      await server.api('PUT', `/api/v1/fleets/${fleet.id}/variables/AFTER`, { value: 'later', secret: true });
      expect((await install.rawRows()).find((r) => r.name === 'AFTER')?.key_id).toBe(rotated.keyId);
    } finally {
      await server.stop();
    }
  });

  it('move to the first key of FLEETGATE_SECRETS_KEY on rotation, after which the old key is no longer needed', async () => {
    const install = newInstall();
    let server = await install.start(KEY_A);
    const { device } = await seed(server);
    await server.stop();
    expect(fs.existsSync(secretsKeyFile(install.dataDir))).toBe(false);

    // Rotation refuses to run without the key that sealed the values.
    await expect(rotateSecretKeys({ env: install.env(KEY_B), flags: install.flags() })).rejects.toThrow(
      SecretKeyError,
    );
    const rotated = await rotateSecretKeys({ env: install.env(`${KEY_B},${KEY_A}`), flags: install.flags() });
    expect(rotated).toMatchObject({ resealed: 2, source: 'FLEETGATE_SECRETS_KEY' });
    server = await install.start(KEY_B);
    try {
      expect((await server.delivered(device.id)).DEVICE_TOKEN).toBe(`device ${SECRET}`);
    } finally {
      await server.stop();
    }
  });
});

/** The stored (sealed) value of a device's DEVICE_TOKEN, read with the database's own client. */
async function sealedOf(install: Install, deviceId: number): Promise<string> {
  if (!install.databaseUrl) {
    const db = new Database(path.join(install.dataDir, 'fleetgate.db'), { readonly: true });
    try {
      return (
        db
          .prepare('select value from device_variables where device_id = ? and name = ?')
          .get(deviceId, 'DEVICE_TOKEN') as {
          value: string;
        }
      ).value;
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: install.databaseUrl });
  await client.connect();
  try {
    await client.query(`set search_path to ${install.schema}`);
    return (
      await client.query('select value from device_variables where device_id = $1 and name = $2', [
        deviceId,
        'DEVICE_TOKEN',
      ])
    ).rows[0].value;
  } finally {
    await client.end();
  }
}

describe('a sealed value that does not open', () => {
  it("stops only its own device's variables: the other devices of the fleet still get theirs", async () => {
    const server = await startTunnelServer();
    const agents: TestAgent[] = [];
    try {
      const token = server.adminToken;
      const put = async (url: string, body: unknown) => {
        const answer = await server.api('PUT', url, { token, body });
        if (answer.status !== 200) throw new Error(`${url}: ${answer.status}`);
      };
      const fleet = (
        await server.api('POST', '/api/v1/fleets', {
          token,
          body: { orgId: 1, name: 'one-bad-row', defaultDeviceType: 'raspberrypi4-64' },
        })
      ).body;
      const { key } = await createProvisioningKey(server, fleet.id);
      const [broken, healthy] = [await registerNewDevice(server, key), await registerNewDevice(server, key)];
      await put(`/api/v1/devices/${broken!.uuid}/variables/TOKEN`, { value: 'broken', secret: true });
      await put(`/api/v1/devices/${healthy!.uuid}/variables/TOKEN`, { value: 'healthy', secret: true });
      for (const d of [broken!, healthy!]) {
        const agent = await TestAgent.connect(server.wsUrl, basicAuth(d.uuid, d.apiKey));
        agents.push(agent);
        await agent.waitFor(isVariables);
      }
      // The healthy device's sealed token copied onto the broken device's row: it no longer opens there.
      const sealed = await server.database.db
        .selectFrom('device_variables')
        .select('value')
        .where('device_id', '=', healthy!.id)
        .executeTakeFirstOrThrow();
      await server.database.db
        .updateTable('device_variables')
        .set({ value: sealed.value })
        .where('device_id', '=', broken!.id)
        .execute();
      const seen = agents.map((a) => a.messages.length);
      await put(`/api/v1/fleets/${fleet.id}/variables/SITE`, { value: 'north' });
      const update = await agents[1]!.waitFor(isVariables, seen[1]);
      expect(update.variables).toEqual({ TOKEN: 'healthy', SITE: 'north' });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(agents[0]!.messages.slice(seen[0]).filter(isVariables)).toEqual([]);
    } finally {
      for (const agent of agents) agent.close();
      await server.close();
    }
  });
});
