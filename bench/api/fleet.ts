/**
 * The fleet bench/api measures, shared by its scripts (run.ts, page-cost.ts): a real fleetgate in a child process
 * with 2 organizations and 20 fleets made through the API, 100,000 devices and 250,000 tags written straight
 * into its database, restarted as after a start on a populated database; and the paths of the scenarios asked of
 * it. On PostgreSQL it works in a schema of its own, dropped by `close()`.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dropPostgresSchema, openDatabase } from '@fleetgate/server';
import { sql } from 'kysely';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  api,
  type Flags,
  type ServerProcess,
  signInAsAdmin,
  startServerProcess,
} from '../lib/server-process.ts';

export const POSTGRES_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

export type DbName = 'sqlite' | 'postgres';
type Db = Awaited<ReturnType<typeof openDatabase>>['db'];

// ─── Seeding ──────────────────────────────────────────────────────────────────────────────────────────

/** The first word of every device name; the list scenario searches for its first 4 letters. */
export const deviceKinds = ['kiosk', 'gateway', 'sensor', 'camera', 'router', 'display', 'scanner', 'meter'];
/** Values of the `site` tag that every device has. */
export const sites = Array.from({ length: 50 }, (_, i) => `plant-${String(i + 1).padStart(2, '0')}`);
const hardwareRevisions = ['rev-a', 'rev-b', 'rev-c', 'rev-d', 'rev-e'];
const deviceTypes = ['raspberrypi4-64', 'raspberrypi5', 'generic-amd64', 'jetson-nano', 'beaglebone-black'];

/** A small seeded generator, so that every run and both databases get the same devices. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Inserts `count` devices named `<kind>-<serial>` (`kiosk-004217`) spread over `fleets`, each with the tags
 * `site=<one of 50>`, `hw=<revision>` and, for about half, `env=prod|staging`: the rows `createDevice` and
 * `putTag` would write, straight through Kysely (100,000 devices through the API would take minutes).
 * Answers every device's uuid, and those of the devices seeded online.
 */
async function seedDevices(
  db: Db,
  fleets: { id: number; orgId: number }[],
  count: number,
  signal: AbortSignal,
): Promise<{ uuids: string[]; online: string[] }> {
  const random = mulberry32(20_240_611);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const yearMs = 365 * 24 * 3600 * 1000;
  const since = Date.now() - yearMs;
  const uuids: string[] = [];
  const online: string[] = [];
  // 11 columns × 1,000 rows per statement stays below both dialects' limits on parameters.
  for (let first = 0; first < count; first += 1_000) {
    signal.throwIfAborted();
    const devices = Array.from({ length: Math.min(1_000, count - first) }, (_, k) => {
      const fleet = pick(fleets);
      const createdAt = since + Math.floor(random() * yearMs);
      // Presence: 30 % never connected; of the others, 40 % online now (seen in the last minute). Last
      // seen in whole seconds, so that some devices share it (ties go by id).
      const seen = random() < 0.7;
      const online = seen && random() < 0.4;
      const lastSeenAt = !seen
        ? null
        : Date.now() - Math.floor(random() * (online ? 60 : 30 * 24 * 3600)) * 1000;
      const name = `${pick(deviceKinds)}-${String(first + k + 1).padStart(6, '0')}`;
      return {
        uuid: createHash('sha256')
          .update(`fleetgate-bench-device-${first + k}`)
          .digest('hex')
          .slice(0, 32),
        org_id: fleet.orgId,
        fleet_id: fleet.id,
        name,
        device_type: pick(deviceTypes),
        notes: '',
        created_at: createdAt,
        updated_at: createdAt,
        connected_at: lastSeenAt === null ? null : lastSeenAt - 3_600_000,
        disconnected_at: lastSeenAt === null || online ? null : lastSeenAt,
        last_seen_at: lastSeenAt,
        // A device that connected has sent the agent's state report (about 400 bytes, as packages/agent's
        // state.ts writes it) and its version.
        ...(lastSeenAt === null ? {} : stateReport(name, lastSeenAt, random)),
      };
    });
    await db.transaction().execute(async (trx) => {
      const inserted = await trx.insertInto('devices').values(devices).returning(['id', 'uuid']).execute();
      // RETURNING order is not promised for multi-row inserts: match tags to devices by uuid.
      const idOf = new Map(inserted.map((r) => [r.uuid, r.id]));
      const tags = devices.flatMap((device) => {
        const id = idOf.get(device.uuid)!;
        const env =
          random() < 0.5 ? [{ device_id: id, key: 'env', value: random() < 0.7 ? 'prod' : 'staging' }] : [];
        return [
          { device_id: id, key: 'site', value: pick(sites) },
          { device_id: id, key: 'hw', value: pick(hardwareRevisions) },
          ...env,
        ];
      });
      await trx.insertInto('device_tags').values(tags).execute();
    });
    uuids.push(...devices.map((d) => d.uuid));
    for (const d of devices) if (d.last_seen_at !== null && d.disconnected_at === null) online.push(d.uuid);
    // better-sqlite3 answers synchronously: without this the loop would never let a Ctrl-C through.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { uuids, online };
}

const agentVersions = ['0.9.4', '1.0.0', '1.0.2'];

/** The columns an agent's state report writes (presence/service.ts): what a device's row holds once it connected. */
function stateReport(name: string, at: number, random: () => number) {
  const gib = 1024 ** 3;
  const agentVersion = agentVersions[Math.floor(random() * agentVersions.length)]!;
  const report = {
    hostname: name,
    os: 'Debian GNU/Linux 12 (bookworm)',
    kernel: 'Linux 6.1.0-28-arm64',
    agentVersion,
    uptimeSeconds: Math.floor(random() * 30 * 86_400),
    cpuPercent: Math.round(random() * 1000) / 10,
    memory: { totalBytes: 4 * gib, usedBytes: Math.floor(random() * 4 * gib) },
    disk: { totalBytes: 32 * gib, usedBytes: Math.floor(random() * 32 * gib) },
    temperatureCelsius: Math.round((35 + random() * 30) * 10) / 10,
    ipAddresses: [
      `10.${Math.floor(random() * 256)}.${Math.floor(random() * 256)}.${Math.floor(random() * 254) + 1}`,
      'fe80::1',
    ],
  };
  return { agent_version: agentVersion, state: JSON.stringify(report), state_reported_at: at };
}

/**
 * Shows `uuids` online again, as if their agents had reconnected: a server that starts marks every device
 * offline (it holds no tunnel yet), the seeded ones included.
 */
async function markOnline(db: Db, uuids: string[]): Promise<void> {
  // Their last-seen times stay as seeded: the start took them offline as of those.
  for (let first = 0; first < uuids.length; first += 1_000) {
    await db
      .updateTable('devices')
      .set({ disconnected_at: null })
      .where('uuid', 'in', uuids.slice(first, first + 1_000))
      .execute();
  }
}

// ─── The server under test ────────────────────────────────────────────────────────────────────────────

export interface SeededServer {
  server: ServerProcess;
  /** The first administrator's session token, and an API key of theirs. */
  session: string;
  apiKey: string;
  /** The organization that holds the devices (a second one, the admin's too, holds none). */
  orgId: number;
  /** Every device's uuid. */
  uuids: string[];
  /** How long making the fleet took, in seconds. */
  seedSeconds: number;
  /** Stops the server and removes its data: the data directory, and the PostgreSQL schema. */
  close(): Promise<void>;
}

/**
 * Starts fleetgate on `db` (PostgreSQL: `POSTGRES_URL`, in a schema of its own) and seeds it with `devices`
 * devices: see the top of this file. `cpuProfDir` gets a V8 CPU profile of the server as seeded (written when it
 * stops); `log` hears where the data is.
 */
export async function startSeededServer(
  db: DbName,
  devices: number,
  options: { cpuProfDir?: string | undefined; signal: AbortSignal; log: (line: string) => void },
): Promise<SeededServer> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-'));
  const sqliteFile = path.join(dataDir, 'fleetgate.db');
  const schema = `fg_bench_${randomBytes(5).toString('hex')}`;
  const databaseUrl = db === 'postgres' ? POSTGRES_URL : undefined;
  let server: ServerProcess | undefined;
  const close = async () => {
    await server?.stop();
    if (databaseUrl) {
      await dropPostgresSchema(databaseUrl, schema).catch((err: unknown) =>
        options.log(`could not drop the PostgreSQL schema ${schema}: ${String(err)}`),
      );
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    // No tunnel is held in this bench: without this, the server would close its "online" devices as lost
    // tunnels ~2 minutes after their last seen (three missed pings), during the run.
    process.env.FLEETGATE_TUNNEL_PING_INTERVAL_MS ??= String(3_600_000);
    const flags: Flags = {
      dataDir,
      listen: '127.0.0.1',
      httpPort: 0,
      proxyPort: 0,
      sshPort: 0,
      logLevel: 'warn',
      adminEmail: ADMIN_EMAIL,
      adminPassword: ADMIN_PASSWORD,
      ...(databaseUrl ? { databaseUrl, dbSchema: schema } : {}),
    };
    server = await startServerProcess(flags);
    let base = server.url;
    options.log(
      `\n${db === 'sqlite' ? `SQLite ${sqliteFile}` : `PostgreSQL schema ${schema}`}, server ${base}`,
    );

    // People, organizations and fleets through the API, as an administrator would make them.
    const session = await signInAsAdmin(base);
    const { key: apiKey } = await api(base, 'POST', '/api/v1/api-keys', session, { name: 'bench' });
    const firstOrg = (await api(base, 'GET', '/api/v1/orgs', session)).items[0];
    const secondOrg = await api(base, 'POST', '/api/v1/orgs', session, { name: 'Bench Industries' });
    const fleets: { id: number; orgId: number }[] = [];
    for (let i = 0; i < 20; i++) {
      const body = { orgId: firstOrg.id, name: `fleet-${i + 1}`, defaultDeviceType: 'raspberrypi4-64' };
      fleets.push({ id: (await api(base, 'POST', '/api/v1/fleets', session, body)).id, orgId: firstOrg.id });
    }
    // A second organization the admin also belongs to, without devices: the lists' scope spans two.
    await api(base, 'POST', '/api/v1/fleets', session, { orgId: secondOrg.id, name: 'empty' });

    // Devices and tags straight into the database, through a second handle on the same file or schema.
    const seedStart = performance.now();
    const seeding = await openDatabase({ databaseUrl, schema: databaseUrl ? schema : undefined, sqliteFile });
    let uuids: string[];
    let online: string[];
    try {
      ({ uuids, online } = await seedDevices(seeding.db, fleets, devices, options.signal));
      // PostgreSQL: what autovacuum would do on its own within a minute (statistics for the planner).
      if (db === 'postgres') await sql`vacuum analyze`.execute(seeding.db);
      else await sql`pragma wal_checkpoint(truncate)`.execute(seeding.db);
    } finally {
      await seeding.close();
    }
    // Measured as after a restart on a populated database: fleetgate gathers SQLite's planner statistics
    // when it opens the database (and hourly), which an empty database just seeded behind its back lacks.
    await server.stop();
    server = await startServerProcess(flags, { cpuProfDir: options.cpuProfDir });
    base = server.url;
    const presence = await openDatabase({
      databaseUrl,
      schema: databaseUrl ? schema : undefined,
      sqliteFile,
    });
    try {
      await markOnline(presence.db, online);
    } finally {
      await presence.close();
    }
    const seedSeconds = (performance.now() - seedStart) / 1000;
    return { server, session, apiKey, orgId: firstOrg.id, uuids, seedSeconds, close };
  } catch (err) {
    await close();
    throw err;
  }
}

// ─── Scenarios ────────────────────────────────────────────────────────────────────────────────────────

export function randomOf<T>(list: readonly T[]): T {
  return list[Math.floor(Math.random() * list.length)]!;
}

/**
 * One of 50 sites × the first 4 letters of one of 8 device kinds: 400 searches, each matching about 250 of
 * 100,000 devices ("kiosks at plant 7"), so the run does not hammer one hot row.
 */
export function listPath(): string {
  const site = encodeURIComponent(`site=${randomOf(sites)}`);
  return `/api/v1/devices?limit=50&tag=${site}&q=${randomOf(deviceKinds).slice(0, 4)}`;
}

/** A UI's query of the organization's devices, 50 per page: the paths of its first pages, each after the last. */
export interface TableQuery {
  label: string;
  /** The query string after `orgId` and `limit` (sort and filters), one of them per request. */
  queries: string[];
}

/**
 * The keys the web UI's devices table asks for with its default columns (packages/web/src/devices/DevicesPage.tsx:
 * `rowFields` and the columns status, fleet, type, last seen and tags).
 */
export const UI_TABLE_FIELDS =
  'uuid,name,status,onlineVia,vpnAddress,connectedAt,disconnectedAt,lastSeenAt,fleetName,deviceType,tags';

/** The UI scenarios (issue 14): what the devices table asks for; and the same pages of whole devices, to compare. */
export const tableQueries: TableQuery[] = [
  { label: 'UI table: by name', queries: ['sort=name', 'sort=-name'] },
  { label: 'UI table: by last seen', queries: ['sort=-lastSeenAt', 'sort=lastSeenAt'] },
  { label: 'UI table: status, by name', queries: ['status=online&sort=name', 'status=offline&sort=name'] },
  { label: 'UI table: text, by name', queries: deviceKinds.map((kind) => `q=${kind.slice(0, 4)}&sort=name`) },
  { label: 'UI table: a device sought, by name', queries: soughtDevices() },
].map((table) => ({ ...table, queries: table.queries.map((query) => `${query}&fields=${UI_TABLE_FIELDS}`) }));
/** The first table scenario without `fields`: every key of every device, as the API answers by default. */
export const wholeDevicesQuery: TableQuery = {
  label: 'whole devices: by name',
  queries: ['sort=name', 'sort=-name'],
};
/**
 * What a person types to find one device among 100,000: a part of its name (`-01234`: the 10 devices numbered
 * 012340 to 012349, of any kind) or of its uuid (8 hex digits), 40 of each.
 */
function soughtDevices(): string[] {
  const random = mulberry32(7);
  const numbers = Array.from({ length: 40 }, () => String(Math.floor(random() * 10_000)).padStart(5, '0'));
  const uuidParts = Array.from({ length: 40 }, () => {
    const serial = Math.floor(random() * 100_000);
    const uuid = createHash('sha256').update(`fleetgate-bench-device-${serial}`).digest('hex');
    const at = Math.floor(random() * 24);
    return uuid.slice(at, at + 8);
  });
  return [...numbers.map((n) => `q=-${n}`), ...uuidParts.map((part) => `q=${part}`)].map(
    (q) => `${q}&sort=name`,
  );
}

/** How many pages of each query the run walks (through `nextCursor`), and then asks for at random. */
const PAGES_PER_QUERY = 10;

/** Every path of `table`: for each of its queries, the first `PAGES_PER_QUERY` pages, read through the API. */
export async function tablePaths(
  base: string,
  session: string,
  orgId: number,
  table: TableQuery,
): Promise<string[]> {
  const paths: string[] = [];
  for (const query of table.queries) {
    let path = `/api/v1/devices?orgId=${orgId}&limit=50&${query}`;
    for (let page = 0; page < PAGES_PER_QUERY; page++) {
      paths.push(path);
      const { nextCursor } = await api(base, 'GET', path, session);
      if (!nextCursor) break;
      path = `/api/v1/devices?orgId=${orgId}&limit=50&${query}&after=${encodeURIComponent(nextCursor)}`;
    }
  }
  return paths;
}
