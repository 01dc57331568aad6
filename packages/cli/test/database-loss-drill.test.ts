/**
 * The database-loss drill (issue 18, seed 000): devices of every kind fleetgate supports are enrolled and
 * online, then the server is stopped and its database deleted (the SQLite file, or the PostgreSQL schema with
 * DATABASE_URL) while the data directory's keys and TLS files stay. The server starts again on an empty
 * database, and only operator commands (`fleetgate import balena-config`, `fleetgate recovery adopt`,
 * `fleetgate devices accept`) bring every device back: nothing is done on any device, whose processes keep
 * running and reconnecting by themselves. The time from the restart until every device is back is printed.
 *
 * Every program is its own process: `fleetgate serve`, three `fleetgate-agent`s (device key from a provisioning
 * key, key pair, balena config.json), the real `mender-client` daemon, and the `fleetgate` CLI of the operator.
 * The README's "Database-loss runbook" is this test's sequence of commands.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { dropPostgresSchema } from '@fleetgate/server';
import { type JsonAnswer, requestJson } from '@fleetgate/server/test/listening.ts';
import {
  canRunMender,
  createMenderDevice,
  type MenderDevice,
  startMenderDaemon,
  whyMenderCannotRun,
} from '@fleetgate/server/test/mender/mender-device.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentBin, cliBin, eventually, freePort, Processes, type Running } from './processes.ts';

const ADMIN = { email: 'admin@drill.test', password: 'database-loss-drill-password' };
const FLEET = 'drill';
const KEY_PAIR_MAC = '02:d7:00:00:00:0b';
const MENDER_MAC = '02:d7:00:00:00:0c';
const BALENA = { uuid: 'bd'.repeat(16), deviceApiKey: 'balena-device-api-key-0123456789abcdef' };

if (!canRunMender) console.warn(`the drill runs WITHOUT the mender-client device: ${whyMenderCannotRun}`);

let processes: Processes;
let dir: string;
let port: number;
let base: string;
let ca: Buffer;
let caFile: string;
let serverEnv: NodeJS.ProcessEnv;
/** The mender-client daemon: not one of `processes`, so stopped here. */
let menderDaemon: ChildProcess | undefined;

beforeAll(async () => {
  processes = new Processes();
  dir = processes.dir;
  port = await freePort();
  base = `https://127.0.0.1:${port}`;
  // A stand-in for the web UI: building the real one would only slow each start down.
  const webRoot = path.join(dir, 'web');
  fs.mkdirSync(webRoot);
  fs.writeFileSync(path.join(webRoot, 'index.html'), '<!doctype html><title>fleetgate</title>');
  // Short presence and liveness rounds, so that status changes show within the test's patience.
  serverEnv = {
    FLEETGATE_WEB_ROOT: webRoot,
    FLEETGATE_PRESENCE_FLUSH_MS: '200',
    FLEETGATE_TUNNEL_PING_INTERVAL_MS: '2000',
  };
  const init = await fleetgate('init', '--host', 'localhost', '--data-dir', serverDataDir());
  expect(init.code, init.stderr).toBe(0);
  caFile = path.join(serverDataDir(), 'tls', 'ca.crt');
  ca = fs.readFileSync(caFile);
}, 60_000);

afterAll(async () => {
  menderDaemon?.kill('SIGKILL');
  await processes?.cleanUp();
});

const serverDataDir = () => path.join(dir, 'server');

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The operator's `fleetgate …`, a process of its own with a saved login in its own config dir. */
function fleetgate(...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliBin, ...args],
      {
        env: {
          PATH: process.env.PATH,
          HOME: dir,
          FLEETGATE_CONFIG_DIR: path.join(dir, 'operator'),
          ...(caFile ? { NODE_EXTRA_CA_CERTS: caFile } : {}),
        },
        timeout: 60_000,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** `fleetgate --json …` that must succeed: its answer. */
// biome-ignore lint/suspicious/noExplicitAny: tests read answers loosely and check what they use.
async function fleetgateJson(...args: string[]): Promise<any> {
  const result = await fleetgate('--json', ...args);
  expect(result.code, `fleetgate ${args.join(' ')}: ${result.stderr}`).toBe(0);
  return JSON.parse(result.stdout);
}

async function startServer(): Promise<Running> {
  const server = processes.serve(port, ADMIN, serverEnv);
  await eventually(
    'the server to be ready',
    async () => (await requestJson(`${base}/readyz`, { ca })).status === 200 || undefined,
    30_000,
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}\n${server.output()}`);
  });
  return server;
}

async function stopServer(server: Running): Promise<void> {
  const exited = once(server.child, 'exit');
  server.child.kill('SIGTERM');
  const [code] = await exited;
  expect(code, server.output()).toBe(0);
}

/** Deletes the database and nothing else: the data directory's keys, TLS files and secrets key stay. */
async function deleteDatabase(): Promise<string[]> {
  if (processes.databaseUrl) {
    await dropPostgresSchema(processes.databaseUrl, processes.schema);
    return [`PostgreSQL schema ${processes.schema}`];
  }
  const files = fs.readdirSync(serverDataDir()).filter((f) => /^fleetgate\.db(-wal|-shm)?$/.test(f));
  expect(files).toContain('fleetgate.db');
  for (const f of files) fs.rmSync(path.join(serverDataDir(), f));
  return files;
}

/** The dashboard an operator watches: the API with a session of its own. */
class Dashboard {
  private token = '';

  async signIn(): Promise<void> {
    const answer = await requestJson(`${base}/api/v1/auth/login`, { method: 'POST', body: ADMIN, ca });
    expect(answer.status, answer.text).toBe(200);
    this.token = answer.body.token;
  }

  async get(url: string): Promise<JsonAnswer> {
    return requestJson(`${base}/api/v1${url}`, { token: this.token, ca });
  }

  /** The device with this uuid, or undefined when the server does not know it. */
  // biome-ignore lint/suspicious/noExplicitAny: tests read answers loosely and check what they use.
  async device(uuid: string): Promise<any> {
    const answer = await this.get(`/devices/${uuid}`);
    return answer.status === 200 ? answer.body : undefined;
  }

  /** The device of an accepted auth set with this MAC address, or undefined. */
  // biome-ignore lint/suspicious/noExplicitAny: tests read answers loosely and check what they use.
  async deviceOfIdentity(mac: string): Promise<any> {
    const answer = await this.get('/auth-sets?status=accepted&limit=500');
    const set = answer.body.items?.find((s: { identity: { mac?: string } }) => s.identity.mac === mac);
    return set?.deviceUuid ? this.device(set.deviceUuid) : undefined;
  }
}

/** The drill's devices: each a process of its own that nothing touches once started. */
interface DrillDevices {
  agents: { deviceKey: Running; keyPair: Running; balena: Running };
  mender?: { device: MenderDevice; daemon: { child: ChildProcess } };
  /** uuid of the provisioning-key agent. */
  deviceKeyUuid: string;
}

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

function writeAgentConfig(name: string, settings: Record<string, unknown>): string {
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(
    file,
    JSON.stringify({
      server: base,
      caFile,
      dataDir: path.join(dir, name),
      deviceType: 'generic-amd64',
      name,
      logLevel: 'info',
      ...settings,
    }),
  );
  return file;
}

describe(`the database-loss drill (${process.env.DATABASE_URL ? 'PostgreSQL' : 'SQLite'})`, () => {
  it('brings every kind of device back with operator commands only, nothing done on the devices', async () => {
    // ---- Before: a fleet with one device of each kind, all online. ----
    let server = await startServer();
    const login = await fleetgate(
      'login',
      '--server',
      base,
      '--email',
      ADMIN.email,
      '--password',
      ADMIN.password,
    );
    expect(login.code, login.stderr).toBe(0);
    const dashboard = new Dashboard();
    await dashboard.signIn();
    const fleet = await fleetgateJson(
      'fleets',
      'create',
      FLEET,
      '--org',
      '1',
      '--device-type',
      'generic-amd64',
    );
    const { key: provisioningKey } = await fleetgateJson(
      'provisioning-keys',
      'create',
      'factory',
      '--fleet',
      String(fleet.id),
    );
    // The operator keeps the key, as it is baked into the devices' images: a copy outside the server.
    const keyFile = path.join(dir, 'factory.key');
    fs.writeFileSync(keyFile, `${provisioningKey}\n`, { mode: 0o600 });

    // A balena device whose config.json the operator imported, running the agent on that config.json.
    const configJson = path.join(dir, 'config.json');
    fs.writeFileSync(
      configJson,
      JSON.stringify({ ...BALENA, applicationName: FLEET, applicationId: 1234, deviceType: 'generic-amd64' }),
    );
    const imported = await fleetgate('import', 'balena-config', configJson);
    expect(imported.stdout).toContain('created 1, already present 0, failed 0');

    const devices: DrillDevices = {
      agents: {
        deviceKey: processes.start(agentBin, [
          'run',
          '--config',
          writeAgentConfig('device-key', { provisioningKey }),
        ]),
        keyPair: processes.start(agentBin, [
          'run',
          '--config',
          writeAgentConfig('key-pair', {
            // The fleet's provisioning key as its tenant token: it asks to join that fleet.
            enrollment: { keyPair: { identity: { mac: KEY_PAIR_MAC }, tenantToken: provisioningKey } },
          }),
        ]),
        balena: processes.start(agentBin, [
          'run',
          '--config',
          writeAgentConfig('balena', { enrollment: { balenaConfigFile: configJson } }),
        ]),
      },
      deviceKeyUuid: '',
    };
    if (canRunMender) {
      const device = createMenderDevice({
        dir: path.join(dir, 'mender'),
        identityLines: [`mac=${MENDER_MAC}`],
        serverUrl: `https://localhost:${port}`,
        caFile,
        inventoryId: 'drill',
      });
      devices.mender = { device, daemon: startMenderDaemon(device, 600_000) };
      menderDaemon = devices.mender.daemon.child;
    }

    // The key-pair agent and the mender-client wait in the pending queue until the operator accepts them.
    const expectedPending = canRunMender ? [KEY_PAIR_MAC, MENDER_MAC] : [KEY_PAIR_MAC];
    const firstPending = await eventually('the key-pair devices to ask to join', async () => {
      const sets = (await fleetgateJson('devices', 'pending')).items as {
        id: number;
        identity: { mac: string };
      }[];
      return expectedPending.every((mac) => sets.some((s) => s.identity.mac === mac)) ? sets : undefined;
    });
    const accepted = await fleetgate(
      'devices',
      'accept',
      ...firstPending.map((s) => String(s.id)),
      '--fleet',
      String(fleet.id),
    );
    expect(accepted.code, accepted.stderr).toBe(0);

    // Its uuid as the device shows it: `fleetgate-agent status`.
    devices.deviceKeyUuid = await eventually('the provisioning-key agent to register', async () => {
      const status = await new Promise<string>((resolve) =>
        execFile(
          process.execPath,
          [agentBin, 'status', '--config', path.join(dir, 'device-key.json')],
          (_e, out) => resolve(out),
        ),
      );
      return /credentials:\s+uuid ([0-9a-f]{32}), device key$/m.exec(status)?.[1];
    });
    await everyDeviceBack(dashboard, devices, 'before the loss');

    // What the devices hold, to show afterwards that nothing on them changed.
    const deviceFiles = [
      path.join(dir, 'device-key', 'credentials.json'),
      path.join(dir, 'key-pair', 'credentials.json'),
      path.join(dir, 'key-pair', 'device-key.pem'),
      path.join(dir, 'balena', 'credentials.json'),
      configJson,
      ...(devices.mender ? [path.join(devices.mender.device.dataDir, 'mender-agent.pem')] : []),
    ];
    const before = new Map(deviceFiles.map((f) => [f, sha256(f)]));

    // ---- The loss: the server stops and its database is deleted; the data directory's keys stay. ----
    await stopServer(server);
    const deleted = await deleteDatabase();
    const restartedAt = Date.now();
    server = await startServer();
    const readyAt = Date.now();
    await dashboard.signIn();
    expect((await dashboard.device(BALENA.uuid)) ?? null).toBeNull();
    expect((await dashboard.device(devices.deviceKeyUuid)) ?? null).toBeNull();
    // Watched from now on, so that each device's return is timed as it happens, between the operator's steps.
    const everyoneBack = everyDeviceBack(dashboard, devices, 'after the loss', 240_000);
    // Awaited after the operator's steps; a step failing first must not leave it rejected unhandled.
    everyoneBack.catch(() => {});

    // ---- The runbook, operator commands only. ----
    // 1. Sign in again (the sessions went with the database) and recreate the fleet.
    const relogin = await fleetgate(
      'login',
      '--server',
      base,
      '--email',
      ADMIN.email,
      '--password',
      ADMIN.password,
    );
    expect(relogin.code, relogin.stderr).toBe(0);
    const newFleet = await fleetgateJson(
      'fleets',
      'create',
      FLEET,
      '--org',
      '1',
      '--device-type',
      'generic-amd64',
    );

    // 2. balena devices from the config.json files kept: restored before (or after) they call in.
    const restored = await fleetgate('import', 'balena-config', configJson);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toContain('created 1, already present 0, failed 0');

    // 3. Devices presenting a uuid + key the server no longer knows: the recovery queue, adopted in bulk.
    const candidates = await eventually(
      'the device-key agent in the recovery queue',
      async () => {
        const listed = (await fleetgateJson('recovery', 'ls')).items as { id: number; uuid: string }[];
        return listed.some((c) => c.uuid === devices.deviceKeyUuid) ? listed : undefined;
      },
      120_000,
    );
    // The imported balena device left the queue when it was imported: only the unknown one is there.
    expect(candidates.map((c) => c.uuid)).toEqual([devices.deviceKeyUuid]);
    const adopted = await fleetgate(
      'recovery',
      'adopt',
      ...candidates.map((c) => String(c.id)),
      '--fleet',
      String(newFleet.id),
    );
    expect(adopted.code, adopted.stderr).toBe(0);
    expect(adopted.stdout).toMatch(new RegExp(`${devices.deviceKeyUuid}\\s+adopted`));

    // 4. Key-pair devices (the agent, mender-client) ask to join again: accepted in bulk. The agent sends the
    // lost provisioning key as its tenant token: refused until the key is restored, then pending in its fleet.
    const restoredKey = await fleetgate(
      'provisioning-keys',
      'restore',
      'factory',
      '--fleet',
      String(newFleet.id),
      '--key-file',
      keyFile,
    );
    expect(restoredKey.code, restoredKey.stderr).toBe(0);
    expect(restoredKey.stdout).toContain('restored provisioning key');
    const pending = await eventually(
      'the key-pair devices in the pending queue',
      async () => {
        const sets = (await fleetgateJson('devices', 'pending')).items as {
          id: number;
          fleetId: number | null;
          identity: { mac: string };
        }[];
        return expectedPending.every((mac) => sets.some((s) => s.identity.mac === mac)) ? sets : undefined;
      },
      120_000,
    );
    expect(pending.map((s) => s.identity.mac).sort()).toEqual(expectedPending);
    // Proposed for the restored key's fleet; the mender-client, without a tenant token, for none.
    expect(pending.find((s) => s.identity.mac === KEY_PAIR_MAC)).toMatchObject({ fleetId: newFleet.id });
    const reaccepted = await fleetgate(
      'devices',
      'accept',
      ...pending.map((s) => String(s.id)),
      '--fleet',
      String(newFleet.id),
    );
    expect(reaccepted.code, reaccepted.stderr).toBe(0);

    const operatorDoneAt = Date.now();

    // ---- Every device back, by itself. ----
    const backAt = await everyoneBack;
    const allBackAt = Math.max(...Object.values(backAt));
    for (const [name, running] of Object.entries(devices.agents))
      expect(running.child.exitCode, `${name} agent kept running: ${running.output()}`).toBeNull();
    if (devices.mender) expect(devices.mender.daemon.child.exitCode, 'mender daemon kept running').toBeNull();
    for (const [file, hash] of before) expect(sha256(file), `${file} unchanged on the device`).toBe(hash);
    // The same devices as before, by their own uuids, in the recreated fleet.
    for (const uuid of [BALENA.uuid, devices.deviceKeyUuid])
      expect(await dashboard.device(uuid)).toMatchObject({ uuid, fleetId: newFleet.id, status: 'online' });

    // ---- Everything the operator did is in the audit log, by the operator. ----
    for (const [action, count] of [
      ['device.import', 1],
      ['recovery.adopt', 1],
      ['auth_set.accept', expectedPending.length],
      ['fleet.create', 1],
      ['provisioning_key.restore', 1],
    ] as const) {
      const events = (await fleetgateJson('audit', '--action', action)).items as {
        actor: { label: string };
        outcome: string;
      }[];
      expect(events, action).toHaveLength(count);
      for (const event of events)
        expect(event).toMatchObject({ actor: { label: ADMIN.email }, outcome: 'success' });
    }

    const seconds = (at: number) => `${((at - restartedAt) / 1000).toFixed(1)} s`;
    console.log(
      [
        `database-loss drill (${processes.databaseUrl ? 'PostgreSQL' : 'SQLite'}; deleted ${deleted.join(', ')}):`,
        `  server ready after ${seconds(readyAt)}`,
        `  the operator's last command done after ${seconds(operatorDoneAt)}`,
        ...Object.entries(backAt).map(([kind, at]) => `  ${kind} back after ${seconds(at)}`),
        `  every device back ${seconds(allBackAt)} after the restart`,
      ].join('\n'),
    );
    await stopServer(server);
  }, 420_000);
});

/**
 * Waits until every device is back: the agents online (holding their tunnel), the mender-client accepted and
 * reporting its inventory again (it holds no tunnel, so fleetgate never shows it `online`: see the README's
 * runbook). Answers when each one was first seen back.
 */
async function everyDeviceBack(
  dashboard: Dashboard,
  devices: DrillDevices,
  when: string,
  ms = 90_000,
): Promise<Record<string, number>> {
  const online = async (device: Promise<{ status?: string } | undefined>) =>
    (await device)?.status === 'online';
  const checks: Record<string, () => Promise<boolean>> = {
    'device-key agent (recovery queue)': () => online(dashboard.device(devices.deviceKeyUuid)),
    'key-pair agent (pending queue)': () => online(dashboard.deviceOfIdentity(KEY_PAIR_MAC)),
    'balena config.json agent (import)': () => online(dashboard.device(BALENA.uuid)),
  };
  if (devices.mender) {
    checks['mender-client (pending queue)'] = async () => {
      const device = await dashboard.deviceOfIdentity(MENDER_MAC);
      return device?.attributes?.artifact_name === 'fleetgate-test-drill';
    };
  }
  const backAt: Record<string, number> = {};
  await eventually(
    `every device back ${when}`,
    async () => {
      for (const [kind, check] of Object.entries(checks)) {
        if (backAt[kind] === undefined && (await check())) backAt[kind] = Date.now();
      }
      return Object.keys(backAt).length === Object.keys(checks).length || undefined;
    },
    ms,
  ).catch((error: unknown) => {
    const missing = Object.keys(checks).filter((kind) => backAt[kind] === undefined);
    const logs = Object.entries(devices.agents)
      .map(([name, running]) => `--- ${name} agent:\n${running.output().slice(-3000)}`)
      .join('\n');
    throw new Error(`${(error as Error).message}: not back: ${missing.join(', ')}\n${logs}`);
  });
  return backAt;
}
