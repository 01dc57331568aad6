/**
 * Idle device tunnels in bulk, shared by bench/tunnel and bench/cluster: devices with device keys seeded straight
 * into the database, and load-generator processes (tunnel-generator.ts) that hold one tunnel per device, one
 * 127.0.0.x source address each, and reconnect as fleetgate-agent does.
 */
import { fork } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { openDatabase } from '@fleetgate/server';
import { ROOT, track } from './processes.ts';

export interface SeededDevice {
  uuid: string;
  key: string;
}

/** Where to seed: the server's database (SQLite file, or PostgreSQL URL and schema). */
export type SeedDatabase = Parameters<typeof openDatabase>[0];

/** Inserts `count` devices with a device key each, straight into the database (as bench/auth does). */
export async function seedDevices(
  database: SeedDatabase,
  fleet: { id: number; orgId: number },
  count: number,
): Promise<SeededDevice[]> {
  const devices: SeededDevice[] = Array.from({ length: count }, () => ({
    uuid: randomBytes(16).toString('hex'),
    key: randomBytes(16).toString('hex'),
  }));
  const seeding = await openDatabase(database);
  try {
    const now = Date.now();
    for (let first = 0; first < count; first += 500) {
      const batch = devices.slice(first, first + 500);
      await seeding.db.transaction().execute(async (trx) => {
        const inserted = await trx
          .insertInto('devices')
          .values(
            batch.map((d, i) => ({
              uuid: d.uuid,
              org_id: fleet.orgId,
              fleet_id: fleet.id,
              name: `idle-${first + i}`,
              device_type: 'generic-amd64',
              notes: '',
              created_at: now,
              updated_at: now,
            })),
          )
          .returning(['id', 'uuid'])
          .execute();
        const idOf = new Map(inserted.map((r) => [r.uuid, r.id]));
        await trx
          .insertInto('device_keys')
          .values(
            batch.map((d) => ({
              device_id: idOf.get(d.uuid)!,
              key_hash: createHash('sha256').update(d.key, 'utf8').digest('hex'),
              origin: 'import' as const,
              created_at: now,
              last_used_at: null,
              revoked_at: null,
            })),
          )
          .execute();
      });
    }
  } finally {
    await seeding.close();
  }
  return devices;
}

export interface Generators {
  /** Tunnels up now, summed over the generators (each reports at most every 100 ms). */
  connected(): number;
  /** Times (Date.now()) at which tunnels came up, since the last `resetCounts()`. */
  online: number[];
  /** Refused upgrades by HTTP status, since the last `resetCounts()`. */
  refused: Record<string, number>;
  /** Connection attempts that ended without an answer, since the last `resetCounts()`. */
  failed: number;
  resetCounts(): void;
  /** Closes all tunnels but the first `total` (counted across the generators in order); they stay closed. */
  trim(total: number): void;
  /** Ends the generator processes (their tunnels close with them). */
  stop(): void;
}

/**
 * Starts `processes` generators that share `devices` in order, 64 handshakes in flight each while ramping up.
 * Generator g connects to `bases[g % bases.length]` (http://host:port of fleetgate, or of a load balancer in front
 * of it).
 */
export function startGenerators(bases: string[], devices: SeededDevice[], processes: number): Generators {
  const urlOf = (g: number) => `${bases[g % bases.length]!.replace(/^http/, 'ws')}/api/v1/tunnel`;
  const connected = new Array<number>(processes).fill(0);
  const perProcess = Math.ceil(devices.length / processes);
  const state: Generators = {
    connected: () => connected.reduce((a, b) => a + b, 0),
    online: [],
    refused: {},
    failed: 0,
    resetCounts() {
      state.online = [];
      state.refused = {};
      state.failed = 0;
    },
    trim(total) {
      let left = total;
      for (const child of generators) {
        const keep = Math.max(0, Math.min(perProcess, left));
        left -= keep;
        child.send({ trim: keep });
      }
    },
    stop() {
      for (const child of generators) if (child.connected) child.disconnect();
    },
  };
  const generators = Array.from({ length: processes }, (_, g) => {
    const options = {
      url: urlOf(g),
      localAddress: `127.0.0.${2 + g}`,
      devices: devices.slice(g * perProcess, (g + 1) * perProcess),
      concurrency: 64,
    };
    const child = track(
      fork(path.join(ROOT, 'bench/lib/tunnel-generator.ts'), [], { execArgv: process.execArgv }),
    );
    child.send(options);
    child.on(
      'message',
      (message: {
        connected?: number;
        online?: number[];
        refused?: Record<string, number>;
        failed?: number;
      }) => {
        if (message.connected !== undefined) connected[g] = message.connected;
        if (message.online) state.online.push(...message.online);
        for (const [status, n] of Object.entries(message.refused ?? {}))
          state.refused[status] = (state.refused[status] ?? 0) + n;
        state.failed += message.failed ?? 0;
      },
    );
    child.once('exit', (code) => {
      if (code !== 0 && code !== null) process.stderr.write(`a load generator ended with code ${code}\n`);
    });
    return child;
  });
  return state;
}
