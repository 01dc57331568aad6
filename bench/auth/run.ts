/**
 * Device authentication benchmark. Starts a real fleetgate on 127.0.0.1 in a child process, seeds 10,000
 * accepted devices (each with a device key and an accepted auth set; a few hundred of them preauthorized
 * through the API, accepted on their first signed request), with Ed25519, ECDSA P-256 and RSA-3072 keys in
 * turn (RSA-3072 key generation is slow: 200 RSA keys are shared round-robin between the RSA devices), and
 * loads it with autocannon from this process:
 *   (1) signed auth requests (Mender `POST /api/devices/v1/authentication/auth_requests`) per key type,
 *       beside a bare `crypto.verify` loop for that key type in this process (one core: the crypto limit);
 *   (2) device-key checks (`GET /api/v1/device/self`, `Authorization: Basic base64(uuid:key)`), beside a bare
 *       SHA-256 loop;
 *   (3) registrations (`POST /api/v1/devices/register`) with one provisioning key, a new uuid and key each;
 *   (4) every device route at 500 connections: no timeouts, no errors, p99.
 * Each against a baseline measured in the same run, GET /healthz, and with the server's CPU time per request.
 * Every request body is signed before the measurement, so that autocannon's side only sends bytes. A second
 * table says what held either event loop during each measured run (event-loop delay, GC; the server's from its
 * /metrics), since autocannon runs in this process on the same two cores and its pauses are in the latencies too.
 *
 *   npm run bench:auth -- [--db sqlite|postgres] [--devices 10000] [--duration 10] [--cpu-prof]
 *
 * `--db` defaults to sqlite; postgres uses DATABASE_URL or postgres://postgres@127.0.0.1:5432/test, in a
 * schema of its own that is dropped at the end. `--cpu-prof` writes a V8 CPU profile of the server.
 *
 * Targets (issue 3, this 2-core machine): ≥ 2,000 Ed25519 auth requests/s; ≥ 10,000 device-key checks/s with
 * p99 ≤ 10 ms at 50 connections; ≥ 1,000 registrations/s. It exits 0 whether targets are met or not, 1 when
 * the bench itself fails (a non-2xx answer, a socket error, a timeout, a wrong answer).
 */
import {
  createHash,
  createPublicKey,
  generateKeyPair,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { parseArgs, promisify } from 'node:util';
import {
  canonicalIdentity,
  dropPostgresSchema,
  identityHash,
  openDatabase,
  parsePublicKey,
} from '@fleetgate/server';
import { sql } from 'kysely';
import { type Figures, fire, settle } from '../lib/load.ts';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  api,
  type Flags,
  ratio,
  type ServerProcess,
  signInAsAdmin,
  startServerProcess,
  wholeNumber,
} from '../lib/server-process.ts';

const POSTGRES_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
/** Unrecorded seconds before each measurement, so that the JIT and the page cache are warm. */
const WARMUP_SECONDS = 2;
/** RSA-3072 key pairs generated; the RSA devices share them round-robin. */
const RSA_KEYS = 200;
/** Devices preauthorized through the API (per key type); the rest are inserted as accepted. */
const PREAUTHORIZED_PER_TYPE = 100;
/** Signed auth requests kept per key type (one per device, the first devices of that type). */
const SIGNED_POOL_PER_TYPE = 2_000;
/** Auth requests sent before the load (checked; their device tokens serve the inventory and deployments runs). */
const TOKEN_POOL = 500;
/** Seconds of each 500-connection run. */
const BURST_SECONDS = 5;
const BURST_CONNECTIONS = 500;

type DbName = 'sqlite' | 'postgres';
type Db = Awaited<ReturnType<typeof openDatabase>>['db'];
type KeyType = 'ed25519' | 'ecdsa-p256' | 'rsa';
const keyTypes: KeyType[] = ['ed25519', 'ecdsa-p256', 'rsa'];
const keyLabel: Record<KeyType, string> = {
  ed25519: 'Ed25519',
  'ecdsa-p256': 'ECDSA P-256',
  rsa: 'RSA-3072',
};

const log = (line: string) => process.stdout.write(`${line}\n`);

// ─── Devices and their keys ───────────────────────────────────────────────────────────────────────────

interface DeviceKeyPair {
  type: KeyType;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicPem: string;
}

interface BenchDevice {
  index: number;
  uuid: string;
  /** The device key (Basic uuid:key). */
  apiKey: string;
  identity: { mac: string; serial: string };
  key: DeviceKeyPair;
  preauthorized: boolean;
}

function pairOf(type: KeyType, pair: { privateKey: KeyObject; publicKey: KeyObject }): DeviceKeyPair {
  return {
    type,
    ...pair,
    publicPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

async function rsaKeys(count: number): Promise<DeviceKeyPair[]> {
  const generate = promisify(generateKeyPair);
  // libuv's thread pool generates them on every core at once.
  const pairs = await Promise.all(
    Array.from({ length: count }, () => generate('rsa', { modulusLength: 3072 })),
  );
  return pairs.map((pair) => pairOf('rsa', pair));
}

/** Device i has key type i mod 3; the first PREAUTHORIZED_PER_TYPE of each type are preauthorized. */
function makeDevices(count: number, rsa: DeviceKeyPair[]): BenchDevice[] {
  const devices: BenchDevice[] = [];
  for (let index = 0; index < count; index++) {
    const type = keyTypes[index % 3]!;
    const key =
      type === 'rsa'
        ? rsa[Math.floor(index / 3) % rsa.length]!
        : pairOf(
            type,
            type === 'ed25519'
              ? generateKeyPairSync('ed25519')
              : generateKeyPairSync('ec', { namedCurve: 'prime256v1' }),
          );
    const mac = Array.from(createHash('sha256').update(`mac-${index}`).digest().subarray(0, 6))
      .map((b) => b.toString(16).padStart(2, '0'))
      .join(':');
    devices.push({
      index,
      uuid: createHash('sha256').update(`fleetgate-bench-auth-device-${index}`).digest('hex').slice(0, 32),
      apiKey: randomBytes(16).toString('hex'),
      identity: { mac, serial: `SN-${String(index).padStart(8, '0')}` },
      key,
      preauthorized: Math.floor(index / 3) < PREAUTHORIZED_PER_TYPE,
    });
  }
  return devices;
}

/** The exact bytes and headers a Mender client sends: body signed over its raw bytes. */
interface SignedRequest {
  body: Buffer;
  headers: Record<string, string>;
}

function signedAuthRequest(device: BenchDevice): SignedRequest {
  const body = Buffer.from(
    `${JSON.stringify({
      id_data: canonicalIdentity(device.identity),
      tenant_token: '',
      pubkey: device.key.publicPem,
    })}\n`,
    'utf8',
  );
  const signature = sign(device.key.type === 'ed25519' ? null : 'sha256', body, device.key.privateKey);
  return {
    body,
    headers: {
      'content-type': 'application/json',
      authorization: 'Bearer ',
      'x-men-signature': signature.toString('base64'),
    },
  };
}

const basicOf = (device: BenchDevice) =>
  `Basic ${Buffer.from(`${device.uuid}:${device.apiKey}`).toString('base64')}`;

// ─── Seeding ──────────────────────────────────────────────────────────────────────────────────────────

/**
 * Preauthorizes the first devices of each type through the API (the service makes the device and the
 * preauthorized set), then inserts the others as accepted devices with accepted auth sets, straight through
 * Kysely, computing the identity and key hashes with the service's own helpers; every device gets a device
 * key (SHA-256 hex of the key).
 */
async function seed(
  base: string,
  session: string,
  database: { databaseUrl: string | undefined; schema: string | undefined; sqliteFile: string },
  fleet: { id: number; orgId: number },
  devices: BenchDevice[],
  signal: AbortSignal,
): Promise<void> {
  const preauthorized = devices.filter((d) => d.preauthorized);
  const idByUuid = new Map<string, number>();
  for (let first = 0; first < preauthorized.length; first += 1_000) {
    const batch = preauthorized.slice(first, first + 1_000);
    const answer = await api(base, 'POST', '/api/v1/auth-sets/preauthorize', session, {
      fleetId: fleet.id,
      devices: batch.map((d) => ({ identity: d.identity, publicKey: d.key.publicPem })),
    });
    if (answer.created !== batch.length)
      throw new Error(`preauthorize: ${JSON.stringify(answer).slice(0, 500)}`);
    for (const [k, item] of (answer.items as { device: { id: number; uuid: string } }[]).entries()) {
      // The service names the device's uuid: the bench's own uuid is not used for these.
      batch[k]!.uuid = item.device.uuid;
      idByUuid.set(item.device.uuid, item.device.id);
    }
  }

  const seeding = await openDatabase(database);
  try {
    const db: Db = seeding.db;
    const parsed = new Map<string, ReturnType<typeof parsePublicKey>>();
    const keyOf = (pem: string) => {
      let key = parsed.get(pem);
      if (!key) {
        key = parsePublicKey(pem);
        parsed.set(pem, key);
      }
      return key;
    };
    const now = Date.now();
    // At most 14 columns × 500 rows per statement: below both dialects' limits on parameters.
    for (let first = 0; first < devices.length; first += 500) {
      signal.throwIfAborted();
      const batch = devices.slice(first, first + 500);
      await db.transaction().execute(async (trx) => {
        const fresh = batch.filter((d) => !d.preauthorized);
        if (fresh.length > 0) {
          const inserted = await trx
            .insertInto('devices')
            .values(
              fresh.map((d) => ({
                uuid: d.uuid,
                org_id: fleet.orgId,
                fleet_id: fleet.id,
                name: d.identity.serial,
                device_type: 'raspberrypi4-64',
                notes: '',
                created_at: now,
                updated_at: now,
              })),
            )
            .returning(['id', 'uuid'])
            .execute();
          for (const r of inserted) idByUuid.set(r.uuid, r.id);
          await trx
            .insertInto('auth_sets')
            .values(
              fresh.map((d) => {
                const canonical = canonicalIdentity(d.identity);
                const key = keyOf(d.key.publicPem);
                return {
                  org_id: fleet.orgId,
                  device_id: idByUuid.get(d.uuid)!,
                  fleet_id: fleet.id,
                  identity: canonical,
                  identity_hash: identityHash(canonical),
                  public_key: key.pem,
                  public_key_hash: key.hash,
                  key_type: key.type,
                  status: 'accepted' as const,
                  source_ip: null,
                  created_at: now,
                  updated_at: now,
                  last_request_at: null,
                };
              }),
            )
            .execute();
        }
        await trx
          .insertInto('device_keys')
          .values(
            batch.map((d) => ({
              device_id: idByUuid.get(d.uuid)!,
              key_hash: createHash('sha256').update(d.apiKey, 'utf8').digest('hex'),
              origin: 'import' as const,
              created_at: now,
              last_used_at: null,
              revoked_at: null,
            })),
          )
          .execute();
      });
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (database.databaseUrl) await sql`vacuum analyze`.execute(db);
    else await sql`pragma wal_checkpoint(truncate)`.execute(db);
  } finally {
    await seeding.close();
  }
}

// ─── Load ─────────────────────────────────────────────────────────────────────────────────────────────

interface Request {
  method: 'GET' | 'POST' | 'PUT';
  path: string;
  headers: Record<string, string>;
  body?: Buffer | string;
}

interface Scenario {
  label: string;
  connections: number;
  /** The next request: each connection takes the next one from a pool shared by all connections. */
  next: () => Request;
  /** Bare crypto in this process for the same work, operations per second on one core. */
  limit?: { label: string; rate: number };
  target?: { rps?: number; p99?: number };
  seconds?: number;
}

interface Measured extends Figures {
  scenario: Scenario;
  pauses: Pauses;
}

/**
 * What held either event loop during a measured window. The load generator (autocannon, in this process) shares
 * the two cores with the server, and a pause of either one delays every request in flight by as much: a p99
 * alone does not say whose it was.
 */
interface Pauses {
  /** How late the server's 10 ms event-loop timer fired (its `/metrics`), and its garbage collection. */
  server: { delayP99Ms: number; delayMaxMs: number; gcMs: number };
  /** The same for this process, and its CPU time per request sent. */
  loadGenerator: { delayP99Ms: number; delayMaxMs: number; gcMs: number; cpuMicros: number };
}

function rotating<T>(pool: readonly T[]): () => T {
  let i = Math.floor(Math.random() * pool.length);
  return () => {
    i = (i + 1) % pool.length;
    return pool[i]!;
  };
}

/**
 * Both event-loop delay monitors (the server's, under its `/metrics`, and this process's) fire a timer every
 * `DELAY_RESOLUTION_MS` and record the time between firings: how late a firing was is that time less the period.
 */
const DELAY_RESOLUTION_MS = 10;
const lateness = (intervalMs: number) => Math.max(0, intervalMs - DELAY_RESOLUTION_MS);

/** The server's event-loop delay since the last scrape (reading `/metrics` starts it anew) and its GC time so far. */
async function serverLoop(base: string): Promise<{ delayP99Ms: number; delayMaxMs: number; gcMs: number }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  let gcSeconds = 0;
  for (const match of text.matchAll(/^fleetgate_nodejs_gc_duration_seconds_sum\{kind="\w+"\} (\S+)$/gm))
    gcSeconds += Number(match[1]);
  return {
    delayP99Ms: lateness(value('fleetgate_nodejs_eventloop_lag_p99_seconds') * 1000),
    delayMaxMs: lateness(value('fleetgate_nodejs_eventloop_lag_max_seconds') * 1000),
    gcMs: gcSeconds * 1000,
  };
}

/**
 * As bench/lib/load.ts's `measure` (an unrecorded warm-up, then the run), with both event loops' pauses read
 * over the measured run (the server's up to the end of the half-second settle after it, when it is idle).
 */
async function measure(
  server: ServerProcess,
  scenario: Scenario,
  seconds: number,
  signal: AbortSignal,
): Promise<Measured> {
  await fire(server.url, scenario, WARMUP_SECONDS, signal);
  await settle();
  signal.throwIfAborted();
  const serverGcBefore = (await serverLoop(server.url)).gcMs;
  const delay = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
  let gcMs = 0;
  const gc = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcMs += entry.duration;
  });
  const cpuBefore = await server.cpuMicros();
  const ownCpuBefore = process.cpuUsage();
  delay.enable();
  gc.observe({ entryTypes: ['gc'] });
  const result = await fire(server.url, scenario, scenario.seconds ?? seconds, signal);
  delay.disable();
  gc.disconnect();
  const ownCpu = process.cpuUsage(ownCpuBefore);
  await settle();
  const cpu = (await server.cpuMicros()) - cpuBefore;
  const serverAfter = await serverLoop(server.url);
  signal.throwIfAborted();
  if (result.non2xx > 0 || result.errors > 0 || result.timeouts > 0) {
    throw new Error(
      `${scenario.label}: ${result.non2xx} non-2xx answers, ${result.errors} errors, ${result.timeouts} timeouts ` +
        `(status codes ${JSON.stringify(result.statusCodeStats)})`,
    );
  }
  return {
    scenario,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuMicros: cpu / result.requests.total,
    pauses: {
      server: { ...serverAfter, gcMs: serverAfter.gcMs - serverGcBefore },
      loadGenerator: {
        delayP99Ms: lateness(delay.percentile(99) / 1e6),
        delayMaxMs: lateness(delay.max / 1e6),
        gcMs,
        cpuMicros: (ownCpu.user + ownCpu.system) / result.requests.total,
      },
    },
  };
}

/** Operations per second of `op` run in a loop for about `ms` milliseconds on this thread. */
function loopRate(op: () => unknown, ms = 1_000): number {
  for (let i = 0; i < 200; i++) op();
  let n = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    for (let i = 0; i < 50; i++) op();
    n += 50;
    elapsed = performance.now() - start;
  }
  return (n * 1000) / elapsed;
}

/** The crypto limits: bare verify per key type (and with the PEM parsed each time), bare SHA-256 of a key. */
function cryptoLimits(devices: BenchDevice[]): {
  verify: Record<KeyType, number>;
  parseVerify: Record<KeyType, number>;
  sha256: number;
} {
  const verifyRates = {} as Record<KeyType, number>;
  const parseRates = {} as Record<KeyType, number>;
  for (const type of keyTypes) {
    const device = devices.find((d) => d.key.type === type)!;
    const { body, headers } = signedAuthRequest(device);
    const signature = Buffer.from(headers['x-men-signature']!, 'base64');
    const algorithm = type === 'ed25519' ? null : 'sha256';
    verifyRates[type] = loopRate(() => {
      if (!verify(algorithm, body, device.key.publicKey, signature)) throw new Error('bad signature');
    });
    parseRates[type] = loopRate(() => {
      const key = createPublicKey({ key: device.key.publicPem, format: 'pem' });
      if (!verify(algorithm, body, key, signature)) throw new Error('bad signature');
    });
  }
  const key = devices[0]!.apiKey;
  const sha256 = loopRate(() => createHash('sha256').update(key, 'utf8').digest('hex'));
  return { verify: verifyRates, parseVerify: parseRates, sha256 };
}

/** One request as autocannon would send it; answers the status and the text. */
async function send(base: string, request: Request): Promise<{ status: number; text: string }> {
  const response = await fetch(base + request.path, {
    method: request.method,
    headers: request.headers,
    body:
      typeof request.body === 'string' || request.body === undefined
        ? request.body
        : new Uint8Array(request.body),
  });
  return { status: response.status, text: await response.text() };
}

// ─── One database ─────────────────────────────────────────────────────────────────────────────────────

const AUTH_PATH = '/api/devices/v1/authentication/auth_requests';

async function benchDatabase(
  db: DbName,
  deviceCount: number,
  seconds: number,
  cpuProfDir: string | undefined,
  signal: AbortSignal,
): Promise<{ measured: Measured[]; limits: ReturnType<typeof cryptoLimits> }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-auth-'));
  const sqliteFile = path.join(dataDir, 'fleetgate.db');
  const schema = `fg_bench_${randomBytes(5).toString('hex')}`;
  const databaseUrl = db === 'postgres' ? POSTGRES_URL : undefined;
  let server: ServerProcess | undefined;
  try {
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
    const keygenStart = performance.now();
    const rsaPromise = rsaKeys(RSA_KEYS);
    server = await startServerProcess(flags);
    let base = server.url;
    log(`\n${db === 'sqlite' ? `SQLite ${sqliteFile}` : `PostgreSQL schema ${schema}`}, server ${base}`);

    const session = await signInAsAdmin(base);
    const org = (await api(base, 'GET', '/api/v1/orgs', session)).items[0];
    const fleetBody = { orgId: org.id, name: 'bench-auth', defaultDeviceType: 'raspberrypi4-64' };
    const fleet = { id: (await api(base, 'POST', '/api/v1/fleets', session, fleetBody)).id, orgId: org.id };
    const { key: provisioningKey } = await api(
      base,
      'POST',
      `/api/v1/fleets/${fleet.id}/provisioning-keys`,
      session,
      { name: 'bench line' },
    );

    const rsa = await rsaPromise;
    const devices = makeDevices(deviceCount, rsa);
    log(
      `generated ${deviceCount.toLocaleString('en')} devices' keys (${RSA_KEYS} RSA-3072 keys shared) in ` +
        `${((performance.now() - keygenStart) / 1000).toFixed(1)} s`,
    );
    const seedStart = performance.now();
    await seed(
      base,
      session,
      { databaseUrl, schema: databaseUrl ? schema : undefined, sqliteFile },
      fleet,
      devices,
      signal,
    );
    log(
      `seeded ${deviceCount.toLocaleString('en')} devices (${PREAUTHORIZED_PER_TYPE * 3} preauthorized through ` +
        `the API) in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`,
    );

    // Signed requests and credentials, all made before the load.
    const signStart = performance.now();
    const signed = {} as Record<KeyType, Request[]>;
    for (const type of keyTypes) {
      signed[type] = devices
        .filter((d) => d.key.type === type)
        .slice(0, SIGNED_POOL_PER_TYPE)
        .map((d) => ({ method: 'POST', path: AUTH_PATH, ...signedAuthRequest(d) }));
    }
    const basics: Request[] = devices.map((d) => ({
      method: 'GET',
      path: '/api/v1/device/self',
      headers: { authorization: basicOf(d) },
    }));
    const registrationCount = (WARMUP_SECONDS + seconds) * 8_000;
    const runId = randomBytes(8).toString('hex');
    const registrations: Request[] = Array.from({ length: registrationCount }, (_, i) => ({
      method: 'POST',
      path: '/api/v1/devices/register',
      headers: { authorization: `Bearer ${provisioningKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        uuid: `${runId}${i.toString(16).padStart(16, '0')}`,
        device_type: 'raspberrypi4-64',
        api_key: randomBytes(16).toString('hex'),
      }),
    }));
    log(
      `signed ${keyTypes.map((t) => signed[t].length).join(' + ')} auth requests and made ` +
        `${registrationCount.toLocaleString('en')} registrations in ${((performance.now() - signStart) / 1000).toFixed(1)} s`,
    );

    // Restart on the populated database (SQLite's planner statistics are gathered when it opens).
    await server.stop();
    server = await startServerProcess(flags, { cpuProfDir });
    base = server.url;

    // Check that every scenario answers what it claims, and fetch device tokens.
    const tokens: string[] = [];
    for (const type of keyTypes) {
      for (const request of signed[type].slice(0, TOKEN_POOL / 3)) {
        const { status, text } = await send(base, request);
        if (status !== 200 || !/^[\w-]+\.[\w-]+\.[\w-]+$/.test(text))
          throw new Error(`${keyLabel[type]} auth request answered ${status}: ${text.slice(0, 300)}`);
        tokens.push(text);
      }
    }
    for (const d of [devices[0]!, devices[deviceCount - 1]!]) {
      const { status, text } = await send(base, basics[d.index]!);
      if (status !== 200 || JSON.parse(text).uuid !== d.uuid)
        throw new Error(`device/self for ${d.uuid} answered ${status}: ${text.slice(0, 300)}`);
    }
    const inventoryBody = JSON.stringify([
      { name: 'device_type', value: 'raspberrypi4-64' },
      { name: 'artifact_name', value: 'release-2026.11' },
      { name: 'kernel', value: 'Linux version 6.6.51-v8' },
      { name: 'mac_eth0', value: '02:12:61:13:6c:42' },
      { name: 'ipv4_eth0', value: '10.0.3.17/24' },
      { name: 'mem_total_kB', value: 3884332 },
      { name: 'rootfs_type', value: 'ext4' },
      { name: 'hostname', value: 'kiosk-000417' },
    ]);
    const jwt = rotating(tokens);
    const inventory = (): Request => ({
      method: 'PUT',
      path: '/api/devices/v1/inventory/device/attributes',
      headers: { authorization: `Bearer ${jwt()}`, 'content-type': 'application/json' },
      body: inventoryBody,
    });
    const deploymentsNext = (): Request => ({
      method: 'GET',
      path: '/api/devices/v1/deployments/device/deployments/next?artifact_name=release-2026.11&device_type=raspberrypi4-64',
      headers: { authorization: `Bearer ${jwt()}` },
    });
    for (const make of [inventory, deploymentsNext]) {
      const request = make();
      const { status, text } = await send(base, request);
      if (status !== 200 && status !== 204) throw new Error(`${request.path} answered ${status}: ${text}`);
    }

    log('measuring the crypto limits in this process (1 s each)…');
    const limits = cryptoLimits(devices);

    const healthz = (): Request => ({ method: 'GET', path: '/healthz', headers: {} });
    let registered = 0;
    const scenarios: Scenario[] = [
      { label: 'GET /healthz (baseline)', connections: 50, next: healthz },
      ...keyTypes.map(
        (type): Scenario => ({
          label: `auth request ${keyLabel[type]}`,
          connections: 50,
          next: rotating(signed[type]),
          limit: { label: 'verify', rate: limits.verify[type] },
          ...(type === 'ed25519' ? { target: { rps: 2_000 } } : {}),
        }),
      ),
      {
        label: 'device-key check (device/self, Basic)',
        connections: 50,
        next: rotating(basics),
        limit: { label: 'SHA-256', rate: limits.sha256 },
        target: { rps: 10_000, p99: 10 },
      },
      {
        label: 'registration (provisioning key)',
        connections: 50,
        next: () => {
          const request = registrations[registered++];
          if (!request) throw new Error('the pool of registrations ran out: raise registrationCount');
          return request;
        },
        target: { rps: 1_000 },
      },
      { label: 'GET /healthz (baseline)', connections: BURST_CONNECTIONS, next: healthz },
      {
        label: 'auth request Ed25519',
        connections: BURST_CONNECTIONS,
        next: rotating(signed.ed25519),
      },
      { label: 'device/self (Basic)', connections: BURST_CONNECTIONS, next: rotating(basics) },
      { label: 'inventory PUT (device JWT)', connections: BURST_CONNECTIONS, next: inventory },
      { label: 'deployments next (device JWT)', connections: BURST_CONNECTIONS, next: deploymentsNext },
    ];
    const measured: Measured[] = [];
    for (const scenario of scenarios) {
      if (scenario.connections === BURST_CONNECTIONS) scenario.seconds = Math.min(seconds, BURST_SECONDS);
      process.stdout.write(`  ${scenario.label}, ${scenario.connections} connections… `);
      const m = await measure(server, scenario, seconds, signal);
      log(`${Math.round(m.rps).toLocaleString('en')} req/s`);
      measured.push(m);
    }
    return { measured, limits };
  } finally {
    await server?.stop();
    if (databaseUrl) {
      await dropPostgresSchema(databaseUrl, schema).catch((err: unknown) =>
        log(`could not drop the PostgreSQL schema ${schema}: ${String(err)}`),
      );
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

// ─── Report ───────────────────────────────────────────────────────────────────────────────────────────

function targetMet(m: Measured): boolean | undefined {
  const target = m.scenario.target;
  if (!target) return undefined;
  return (
    (target.rps === undefined || m.rps >= target.rps) && (target.p99 === undefined || m.p99 <= target.p99)
  );
}

function targetText(scenario: Scenario): string {
  const target = scenario.target;
  if (!target) return '—';
  return [
    target.rps === undefined ? '' : `≥ ${target.rps.toLocaleString('en')}/s`,
    target.p99 === undefined ? '' : `p99 ≤ ${target.p99} ms`,
  ]
    .filter(Boolean)
    .join(', ');
}

/** A table with a header row: the first column left-aligned, the others right-aligned. */
function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)));
  log(`  ${line(rows[0]!).join('  ')}\n  ${widths.map((w) => '─'.repeat(w)).join('  ')}`);
  for (const r of rows.slice(1)) log(`  ${line(r).join('  ')}`);
}

function printReport(db: DbName, measured: Measured[], limits: ReturnType<typeof cryptoLimits>): void {
  const rows = [
    [
      'scenario',
      'conns',
      'req/s',
      'p50 ms',
      'p99 ms',
      'vs baseline',
      'server CPU/req',
      'crypto limit (1 core)',
      'target',
      'met',
    ],
  ];
  for (const m of measured) {
    const baseline = measured.find((b) => b.scenario.connections === m.scenario.connections)!;
    const met = targetMet(m);
    const limit = m.scenario.limit;
    rows.push([
      m.scenario.label,
      String(m.scenario.connections),
      Math.round(m.rps).toLocaleString('en'),
      String(m.p50),
      String(m.p99),
      ratio(m.rps, baseline.rps),
      `${Math.round(m.cpuMicros).toLocaleString('en')} µs`,
      limit ? `${limit.label} ${Math.round(limit.rate).toLocaleString('en')}/s` : '—',
      targetText(m.scenario),
      met === undefined ? '—' : met ? 'met' : 'NOT met',
    ]);
  }
  log(
    `\n${db === 'sqlite' ? 'SQLite' : 'PostgreSQL'} (latencies in whole milliseconds, as autocannon records them; ` +
      `${BURST_CONNECTIONS}-connection runs: no errors, no timeouts)`,
  );
  printTable(rows);
  const pauseRows = [
    [
      'pauses in the measured run',
      'conns',
      'p99 ms',
      'server delay p99 / max ms',
      'server GC ms',
      'load generator delay p99 / max ms',
      'its GC ms',
      'its CPU/req',
    ],
  ];
  for (const m of measured) {
    const { server, loadGenerator } = m.pauses;
    pauseRows.push([
      m.scenario.label,
      String(m.scenario.connections),
      String(m.p99),
      `${server.delayP99Ms.toFixed(1)} / ${server.delayMaxMs.toFixed(1)}`,
      server.gcMs.toFixed(0),
      `${loadGenerator.delayP99Ms.toFixed(1)} / ${loadGenerator.delayMaxMs.toFixed(1)}`,
      loadGenerator.gcMs.toFixed(0),
      `${Math.round(loadGenerator.cpuMicros)} µs`,
    ]);
  }
  log(
    `\nWhat held the event loops meanwhile (delay: how late a ${DELAY_RESOLUTION_MS} ms timer fired; the load generator ` +
      'is autocannon in this process, on the same two cores):',
  );
  printTable(pauseRows);
  log(
    `  parse PEM + verify (what the route did per request before it kept parsed keys): ${keyTypes
      .map((t) => `${keyLabel[t]} ${Math.round(limits.parseVerify[t]).toLocaleString('en')}/s`)
      .join(', ')}`,
  );
  for (const m of measured) {
    if (targetMet(m) === false)
      log(
        `  TARGET NOT MET: ${m.scenario.label} at ${m.scenario.connections} connections, ${targetText(m.scenario)}`,
      );
  }
}

// ─── Command line ─────────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<number> {
  const abort = new AbortController();
  const interrupt = () => abort.abort(new Error('interrupted'));
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  try {
    const { values } = parseArgs({
      options: {
        db: { type: 'string', default: 'sqlite' },
        devices: { type: 'string', default: '10000' },
        duration: { type: 'string', default: '10' },
        'cpu-prof': { type: 'boolean', default: false },
      },
    });
    if (values.db !== 'sqlite' && values.db !== 'postgres')
      throw new Error(`--db must be sqlite or postgres, not ${values.db}`);
    const devices = wholeNumber('devices', values.devices, 3 * PREAUTHORIZED_PER_TYPE);
    const seconds = wholeNumber('duration', values.duration, 1);
    const cpuProfDir = values['cpu-prof']
      ? fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-bench-prof-'))
      : undefined;
    log(
      `fleetgate device authentication benchmark: ${values.db}, ${devices.toLocaleString('en')} devices, ` +
        `${seconds} s per scenario (${Math.min(seconds, BURST_SECONDS)} s at ${BURST_CONNECTIONS} connections; ` +
        `+${WARMUP_SECONDS} s warm-up); Node ${process.versions.node}, ${os.cpus().length} cores, ` +
        `load average ${os.loadavg()[0]!.toFixed(2)}, ${new Date().toISOString()}`,
    );
    const { measured, limits } = await benchDatabase(values.db, devices, seconds, cpuProfDir, abort.signal);
    printReport(values.db, measured, limits);
    log(`load average at the end: ${os.loadavg()[0]!.toFixed(2)}`);
    if (cpuProfDir) log(`CPU profile of the server: ${cpuProfDir}`);
    return 0;
  } catch (err) {
    if (abort.signal.aborted) {
      log('\ninterrupted; cleaned up.');
      return 130;
    }
    log(`\nBENCH FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  }
}

process.exit(await main());
