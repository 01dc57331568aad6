import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PresenceRecorder } from '../../src/features/presence/service.ts';
import { check } from '../api/helpers.ts';
import { startTestServer, type TestServer } from '../harness.ts';

/**
 * What a server finds at start when its previous run died without writing any disconnect (kill -9): devices still
 * online in the database, their connections open. The real crash, with real processes, is in
 * packages/cli/test/server-crash.test.ts; here the leftovers are written as such a run leaves them.
 */

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

async function newDevice(name: string): Promise<{ id: number; uuid: string }> {
  const fleet = check(
    await server.api('POST', '/api/v1/fleets', {
      token: server.adminToken,
      body: { orgId: 1, name, defaultDeviceType: 'raspberrypi4-64' },
    }),
    201,
  );
  return check(
    await server.api('POST', '/api/v1/devices', {
      token: server.adminToken,
      body: { fleetId: fleet.id, name },
    }),
    201,
  );
}

const get = async (url: string) => check(await server.api('GET', url, { token: server.adminToken }), 200);

describe('at start, presence', () => {
  it('takes the devices a crashed run left online offline, as of their last sign of life, and says so', async () => {
    const { db } = server.app.deps;
    // Seen a moment ago: the running server's own stale sweep (links unseen for minutes) must not be what
    // takes it offline before the start's check does (it did, once, on PostgreSQL).
    const lastSeenAt = Date.now() - 1000;
    const connectedAt = lastSeenAt - 600_000;
    const crashed = await newDevice('left-online');
    await db
      .updateTable('devices')
      .set({ connected_at: connectedAt, last_seen_at: lastSeenAt, disconnected_at: null })
      .where('id', '=', crashed.id)
      .execute();
    await db
      .insertInto('device_connections')
      .values({
        device_id: crashed.id,
        remote_address: '192.0.2.7',
        agent_version: null,
        connected_at: connectedAt,
      })
      .execute();
    // One that went offline properly keeps its times.
    const offline = await newDevice('offline-before');
    await db
      .updateTable('devices')
      .set({
        connected_at: connectedAt,
        last_seen_at: connectedAt + 1000,
        disconnected_at: connectedAt + 1000,
      })
      .where('id', '=', offline.id)
      .execute();
    expect((await get(`/api/v1/devices/${crashed.uuid}`)).status).toBe('online');

    const told: (readonly number[])[] = [];
    const stopListening = server.app.deps.events.on('presence.written', ({ deviceIds }) =>
      told.push(deviceIds),
    );
    const presence = new PresenceRecorder(server.app.deps, { flushMs: 1000, staleAfterMs: 3_600_000 });
    expect(await presence.closeLeftOpen()).toBe(1);
    stopListening();

    const shown = await get(`/api/v1/devices/${crashed.uuid}`);
    expect(shown).toMatchObject({
      status: 'offline',
      disconnectedAt: new Date(lastSeenAt).toISOString(),
      lastSeenAt: new Date(lastSeenAt).toISOString(),
    });
    expect((await get(`/api/v1/devices/${crashed.uuid}/connections`)).items).toMatchObject([
      {
        connectedAt: new Date(connectedAt).toISOString(),
        disconnectedAt: new Date(lastSeenAt).toISOString(),
        durationMs: 600_000,
        closeReason: 'lost: the server holding the tunnel stopped',
      },
    ]);
    expect(told).toEqual([[crashed.id]]);
    expect((await get(`/api/v1/devices/${offline.uuid}`)).disconnectedAt).toBe(
      new Date(connectedAt + 1000).toISOString(),
    );

    // Nothing left: the next start finds nothing to do and tells nobody.
    expect(await presence.closeLeftOpen()).toBe(0);
  });
});

describe('the stale sweep', () => {
  it('takes a device whose tunnel went silent offline and says so, as the start does', async () => {
    const { db } = server.app.deps;
    const silent = await newDevice('went-silent');
    // A minute ago: stale for the recorder below, not yet for the running server's own (about 130 s).
    const lastSeenAt = Date.now() - 60_000;
    await db
      .updateTable('devices')
      .set({ connected_at: lastSeenAt - 60_000, last_seen_at: lastSeenAt, disconnected_at: null })
      .where('id', '=', silent.id)
      .execute();
    expect((await get(`/api/v1/devices/${silent.uuid}`)).status).toBe('online');

    const told: (readonly number[])[] = [];
    const stopListening = server.app.deps.events.on('presence.written', ({ deviceIds }) =>
      told.push(deviceIds),
    );
    // A recorder's first write sweeps; links unseen for 30 s are stale here.
    const presence = new PresenceRecorder(server.app.deps, { flushMs: 1000, staleAfterMs: 30_000 });
    await presence.flush();
    stopListening();

    expect((await get(`/api/v1/devices/${silent.uuid}`)).status).toBe('offline');
    expect(told.flat()).toContain(silent.id);
  });
});
