import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KEYS_PER_STATEMENT } from '../../src/features/device-auth/last-used.ts';
import { check } from '../api/helpers.ts';
import { startTestServer, type TestServer } from '../harness.ts';
import { basic, createProvisioningKey, deviceSelf, registerNewDevice } from './helpers.ts';

/**
 * A device key's last use, as an admin sees it in the device's key list. The uses are written in batches,
 * `KEYS_PER_STATEMENT` keys per statement (features/device-auth/last-used.ts): a wave of devices checking in
 * together, more than one statement holds, must still show every key's use.
 */
let server: TestServer;

beforeEach(async () => {
  server = await startTestServer();
});

afterEach(async () => {
  await server.close();
});

type Device = Awaited<ReturnType<typeof registerNewDevice>>;

/** Registers more devices than one statement writes, and makes their keys last used long ago. */
async function registerWave(): Promise<Device[]> {
  const fleet = check(
    await server.api('POST', '/api/v1/fleets', {
      token: server.adminToken,
      body: { orgId: 1, name: 'wave', defaultDeviceType: 'raspberrypi4-64' },
    }),
    201,
  );
  const { key } = await createProvisioningKey(server, fleet.id);
  const devices: Device[] = [];
  while (devices.length < KEYS_PER_STATEMENT + 20) {
    devices.push(...(await Promise.all(Array.from({ length: 30 }, () => registerNewDevice(server, key)))));
  }
  // Used an hour ago: the next use is due to be written (a key's use is written at most once a minute).
  await server.database.db
    .updateTable('device_keys')
    .set({ last_used_at: Date.now() - 60 * 60 * 1000 })
    .execute();
  return devices;
}

async function checkIn(devices: Device[]): Promise<void> {
  for (const device of devices) check(await deviceSelf(server, basic(device.uuid, device.apiKey)), 200);
}

describe('device keys: last use', () => {
  it('every key of a wave shows its use in the key list, right after the use', async () => {
    const devices = await registerWave();
    const usedFrom = Date.now();
    await checkIn(devices);
    for (const device of devices) {
      const { items } = check(
        await server.api('GET', `/api/v1/devices/${device.uuid}/keys`, { token: server.adminToken }),
        200,
      );
      expect(items).toHaveLength(1);
      expect(Date.parse(items[0].lastUsedAt), device.uuid).toBeGreaterThanOrEqual(usedFrom);
    }
  });

  it('every key of a wave has its use written when the server closes', async () => {
    const devices = await registerWave();
    const usedFrom = Date.now();
    await checkIn(devices);
    await server.app.close();
    const rows = await server.database.db.selectFrom('device_keys').select(['id', 'last_used_at']).execute();
    expect(rows).toHaveLength(devices.length);
    const stale = rows.filter((row) => row.last_used_at === null || row.last_used_at < usedFrom);
    expect(stale).toEqual([]);
  });
});
