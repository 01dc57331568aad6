import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devicePageSchema, deviceSchema } from '../../src/features/devices/routes.ts';
import { startTestServer, type TestServer } from '../harness.ts';
import { check } from './helpers.ts';

/**
 * The device list as the web UI's devices table uses it: sorted by last seen (devices never seen last), filtered
 * by device type and status, paged with `after` / `nextCursor` as well as with `page`, with ties and nulls.
 */
let server: TestServer;
let admin: string;
let fleetId: number;

interface Device {
  id: number;
  name: string;
  deviceType: string;
  status: string;
  lastSeenAt: string | null;
}
interface DevicePage {
  items: Device[];
  total: number;
  page: number;
  limit: number;
  nextCursor: string | null;
}

/**
 * Name, device type, last seen (seconds before the start; null = never) and whether the tunnel is up. Names and
 * last-seen times repeat, so ties have to go by id.
 */
const plan: [name: string, type: string, seenSecondsAgo: number | null, online: boolean][] = [
  ['beta', 'generic-amd64', 30, false],
  ['alpha', 'raspberrypi4-64', null, false],
  ['gamma', 'generic-amd64', 10, true],
  ['alpha', 'generic-amd64', 30, false],
  ['delta', 'raspberrypi4-64', null, false],
  ['beta', 'raspberrypi4-64', 20, true],
  ['epsilon', 'generic-amd64', 10, false],
  ['zeta', 'generic-amd64', null, false],
  ['eta', 'raspberrypi4-64', 30, true],
];
const start = Date.now();
let devices: Device[] = [];

beforeAll(async () => {
  server = await startTestServer();
  admin = server.adminToken;
  fleetId = check(
    await server.api('POST', '/api/v1/fleets', {
      token: admin,
      body: { orgId: 1, name: 'paging', defaultDeviceType: 'raspberrypi4-64' },
    }),
    201,
  ).id;
  for (const [name, deviceType, seenSecondsAgo, online] of plan) {
    const { id } = check(
      await server.api('POST', '/api/v1/devices', { token: admin, body: { fleetId, name, deviceType } }),
      201,
    );
    // Presence as the tunnel hub writes it (a connect, a last sign of life, a disconnect unless online).
    if (seenSecondsAgo !== null) {
      const lastSeen = start - seenSecondsAgo * 1000;
      await server.database.db
        .updateTable('devices')
        .set({
          connected_at: lastSeen - 60_000,
          last_seen_at: lastSeen,
          disconnected_at: online ? null : lastSeen,
        })
        .where('id', '=', id)
        .execute();
    }
  }
  devices = (await list('limit=500')).items;
});

afterAll(async () => {
  await server?.close();
});

async function list(query: string, status = 200): Promise<DevicePage> {
  return check(
    await server.api('GET', `/api/v1/devices?fleetId=${fleetId}&${query}`, { token: admin }),
    status,
  );
}

/** The order the API promises: never-seen last either way, ties by id ascending. */
function expected(sort: string, filter: (d: Device) => boolean = () => true): string[] {
  const descending = sort.startsWith('-');
  const key = (d: Device): string | number | null =>
    sort.endsWith('name')
      ? d.name
      : sort.endsWith('createdAt')
        ? d.id
        : d.lastSeenAt && Date.parse(d.lastSeenAt);
  return devices
    .filter(filter)
    .sort((a, b) => {
      const [x, y] = [key(a), key(b)];
      if (x === y) return a.id - b.id;
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * (descending ? -1 : 1);
    })
    .map((d) => `${d.name}#${d.id}`);
}
const ids = (page: DevicePage) => page.items.map((d) => `${d.name}#${d.id}`);

/** Every page of `query` through `after`, `limit` at a time. */
async function walk(query: string, limit: number): Promise<{ pages: DevicePage[]; all: string[] }> {
  const pages: DevicePage[] = [];
  let cursor: string | null = null;
  do {
    const after: string = cursor ? `&after=${encodeURIComponent(cursor)}` : '';
    const page = await list(`limit=${limit}&${query}${after}`);
    pages.push(page);
    cursor = page.nextCursor;
  } while (cursor && pages.length < 50);
  return { pages, all: pages.flatMap(ids) };
}

describe('the device list for a devices table', () => {
  it('sorts by last seen either way, devices never seen last, ties by id', async () => {
    const newest = ids(await list('limit=500&sort=-lastSeenAt'));
    expect(newest).toEqual(expected('-lastSeenAt'));
    // gamma and epsilon were both seen 10 s ago, delta, alpha and zeta never: the tail is fixed by id.
    expect(newest.slice(0, 2).map((d) => d.split('#')[0])).toEqual(['gamma', 'epsilon']);
    expect(newest.slice(-3).map((d) => d.split('#')[0])).toEqual(['alpha', 'delta', 'zeta']);
    const oldest = ids(await list('limit=500&sort=lastSeenAt'));
    expect(oldest).toEqual(expected('lastSeenAt'));
    expect(oldest.slice(0, 3).map((d) => d.split('#')[0])).toEqual(['beta', 'alpha', 'eta']);
    expect(oldest.slice(-3).map((d) => d.split('#')[0])).toEqual(['alpha', 'delta', 'zeta']);
  });

  it('pages through every sort with nextCursor, across ties and devices never seen, without loss or repeat', async () => {
    for (const sort of ['name', '-name', 'createdAt', '-createdAt', 'lastSeenAt', '-lastSeenAt']) {
      for (const limit of [1, 2, 3, 4]) {
        const { pages, all } = await walk(`sort=${sort}`, limit);
        expect(all, `${sort}, ${limit} per page`).toEqual(expected(sort));
        expect(pages.every((p) => p.total === plan.length)).toBe(true);
        expect(pages.at(-1)!.nextCursor).toBeNull();
        expect(pages.slice(0, -1).every((p) => p.items.length === limit)).toBe(true);
      }
    }
  });

  it('pages by page number in the same order, also across the never-seen devices', async () => {
    for (const sort of ['lastSeenAt', '-lastSeenAt', '-name']) {
      const seen: string[] = [];
      for (let page = 1; page <= 4; page++)
        seen.push(...ids(await list(`limit=3&page=${page}&sort=${sort}`)));
      expect(seen, sort).toEqual(expected(sort));
    }
    // A page found by number goes on with its cursor.
    const third = await list('limit=2&page=3&sort=-lastSeenAt');
    const next = await list(`limit=2&sort=-lastSeenAt&after=${encodeURIComponent(third.nextCursor!)}`);
    expect(ids(next)).toEqual(expected('-lastSeenAt').slice(6, 8));
  });

  it('filters by device type and by status, with any sort and page', async () => {
    const amd = (d: Device) => d.deviceType === 'generic-amd64';
    const byType = await walk('deviceType=generic-amd64&sort=-lastSeenAt', 2);
    expect(byType.all).toEqual(expected('-lastSeenAt', amd));
    expect(byType.pages[0]!.total).toBe(5);
    const online = await walk('status=online&sort=lastSeenAt', 1);
    expect(online.all.map((d) => d.split('#')[0])).toEqual(['eta', 'beta', 'gamma']);
    expect(online.pages[0]!.total).toBe(3);
    const never = await list('limit=500&status=never-connected&sort=-lastSeenAt');
    expect(ids(never)).toEqual(expected('-lastSeenAt', (d) => d.lastSeenAt === null));
    const both = await list('limit=500&status=offline&deviceType=raspberrypi4-64&sort=name');
    expect(both.items).toEqual([]);
    expect(both.total).toBe(0);
    expect((await list('deviceType=no-such-type')).total).toBe(0);
  });

  it('counts a device created between two pages', async () => {
    const before = await list('limit=2&sort=name');
    const { id } = check(
      await server.api('POST', '/api/v1/devices', { token: admin, body: { fleetId, name: 'omega' } }),
      201,
    );
    try {
      const after = await list(`limit=2&sort=name&after=${encodeURIComponent(before.nextCursor!)}`);
      expect(after.total).toBe(before.total + 1);
    } finally {
      check(await server.api('DELETE', `/api/v1/devices/${id}`, { token: admin }), 204);
    }
    expect((await list('limit=2&sort=name')).total).toBe(before.total);
  });

  it('refuses a cursor it did not give, one from another sort, a cursor with a page number, and unknown fields', async () => {
    const { nextCursor } = await list('limit=2&sort=name');
    for (const query of [
      `sort=-name&after=${encodeURIComponent(nextCursor!)}`,
      `sort=name&page=2&after=${encodeURIComponent(nextCursor!)}`,
      'sort=name&after=bm90LWEtY3Vyc29y',
      `sort=lastSeenAt&after=${Buffer.from(JSON.stringify(['lastSeenAt', 'x', 1])).toString('base64url')}`,
    ]) {
      const answer = await server.api('GET', `/api/v1/devices?fleetId=${fleetId}&${query}`, { token: admin });
      expect(answer.status, query).toBe(400);
      expect(answer.body.error.message).toMatch(/after/);
    }
    const badType = await server.api('GET', '/api/v1/devices?deviceType=Not%20A%20Slug', { token: admin });
    expect(badType.status).toBe(400);
    const unknownField = await server.api('GET', '/api/v1/devices?fields=name,secret', { token: admin });
    expect(unknownField.status).toBe(400);
    expect(unknownField.body.error.message).toContain('no device key is named "secret"');
    expect(unknownField.body.error.message).toContain('lastSeenAt');
    for (const fields of ['', 'name,,status', 'name;drop', 'x'.repeat(600)])
      expect((await server.api('GET', `/api/v1/devices?fields=${fields}`, { token: admin })).status).toBe(
        400,
      );
  });
  it('answers each device as its schema says, field for field and in its order, in the list and alone', async () => {
    // Every field set, a state and attributes holding `__proto__` (zod's parse of a record drops it), tags.
    const { id, uuid } = check(
      await server.api('POST', '/api/v1/devices', {
        token: admin,
        body: { fleetId, name: 'full', notes: 'n' },
      }),
      201,
    );
    for (const [key, value] of [
      ['site', 'plant-1'],
      ['hw', 'rev-b'],
    ])
      check(
        await server.api('PUT', `/api/v1/devices/${id}/tags/${key}`, { token: admin, body: { value } }),
        204,
      );
    const now = Date.now();
    await server.database.db
      .updateTable('devices')
      .set({
        state: '{"__proto__":{"x":1},"os":"Debian","memory":{"total":1024}}',
        state_reported_at: now,
        attributes: '{"mac":"00:11","__proto__":"p"}',
        agent_version: '1.2.3',
        connected_at: now - 1000,
        vpn_connected_at: now - 500,
        vpn_address: '10.8.0.2',
        last_seen_at: now,
        variables_applied_revision: 3,
        variables_applied_at: now,
        variables_error: null,
      })
      .where('id', '=', id)
      .execute();
    try {
      const answers = [
        [`/api/v1/devices?fleetId=${fleetId}&limit=500&sort=-lastSeenAt`, devicePageSchema],
        [`/api/v1/devices/${uuid}`, deviceSchema],
      ] as const;
      for (const [url, schema] of answers) {
        const answer = await server.app.inject({
          method: 'GET',
          url,
          headers: { authorization: `Bearer ${admin}` },
        });
        expect(answer.statusCode).toBe(200);
        // What zod's serializer would have written for the same answer: the same text.
        expect(answer.body).toBe(JSON.stringify(schema.parse(JSON.parse(answer.body))));
      }
      const device = check(await server.api('GET', `/api/v1/devices/${id}`, { token: admin }), 200);
      expect(device).toMatchObject({
        status: 'online',
        onlineVia: ['tunnel', 'vpn'],
        vpnAddress: '10.8.0.2',
        tags: { hw: 'rev-b', site: 'plant-1' },
        attributes: { mac: '00:11' },
        state: { os: 'Debian', memory: { total: 1024 } },
        variablesApplied: { revision: 3, at: new Date(now).toISOString(), error: null },
      });
      expect(Object.keys(device.state)).toEqual(['os', 'memory']);

      // `fields`: each key alone is the value the whole view has, and several come in the schema's order.
      const list = `/api/v1/devices?fleetId=${fleetId}&limit=500&sort=-lastSeenAt`;
      const whole: Record<string, unknown>[] = check(
        await server.api('GET', list, { token: admin }),
        200,
      ).items;
      expect(whole.length).toBe(plan.length + 1);
      for (const field of Object.keys(deviceSchema.shape)) {
        const some: Record<string, unknown>[] = check(
          await server.api('GET', `${list}&fields=${field}`, { token: admin }),
          200,
        ).items;
        expect(some).toEqual(whole.map((d) => ({ id: d.id, [field]: d[field] })));
      }
      const table = await server.app.inject({
        method: 'GET',
        url: `${list}&fields=tags,lastSeenAt,status,name,tags`,
        headers: { authorization: `Bearer ${admin}` },
      });
      expect(table.statusCode).toBe(200);
      expect(table.body).toBe(JSON.stringify(devicePageSchema.parse(JSON.parse(table.body))));
      const first = JSON.parse(table.body).items.find((d: { id: number }) => d.id === id);
      expect(Object.keys(first)).toEqual(['id', 'name', 'status', 'tags', 'lastSeenAt']);
      expect(first).toEqual({
        id,
        name: 'full',
        status: 'online',
        tags: { hw: 'rev-b', site: 'plant-1' },
        lastSeenAt: new Date(now).toISOString(),
      });
    } finally {
      check(await server.api('DELETE', `/api/v1/devices/${id}`, { token: admin }), 204);
    }
  });
});
