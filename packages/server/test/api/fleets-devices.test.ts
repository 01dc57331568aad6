import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceTags, tagsOf } from '../../src/features/tags/service.ts';
import { seedTwoOrgs, startTestServer, type TestServer } from '../harness.ts';
import { check } from './helpers.ts';

/** Fleets, device types, devices, tags, and the device list's filters, sorting and pages. */
let server: TestServer;
let seed: Awaited<ReturnType<typeof seedTwoOrgs>>;
let admin: string;

beforeAll(async () => {
  server = await startTestServer();
  seed = await seedTwoOrgs(server);
  admin = server.adminToken;
});

afterAll(async () => {
  await server?.close();
});

interface Fleet {
  id: number;
  name: string;
  deviceCount: number;
  defaultDeviceType: string | null;
  tags: Record<string, string>;
}
interface Device {
  id: number;
  uuid: string;
  name: string;
  fleetId: number;
  fleetName: string;
  deviceType: string;
  notes: string;
  tags: Record<string, string>;
}

async function createFleet(name: string, extra: Record<string, unknown> = {}, orgId = 1, token = admin) {
  return check(
    await server.api('POST', '/api/v1/fleets', { token, body: { orgId, name, ...extra } }),
    201,
  ) as Fleet;
}

async function createDevice(fleetId: number, extra: Record<string, unknown> = {}, token = admin) {
  return check(
    await server.api('POST', '/api/v1/devices', { token, body: { fleetId, ...extra } }),
    201,
  ) as Device;
}

async function getFleet(id: number, token = admin) {
  return check(await server.api('GET', `/api/v1/fleets/${id}`, { token }), 200) as Fleet;
}

async function getDevice(ref: number | string, token = admin) {
  return check(await server.api('GET', `/api/v1/devices/${ref}`, { token }), 200) as Device;
}

describe('fleets', () => {
  it('are created, read, listed, changed and deleted', async () => {
    const fleet = await createFleet('lab', {
      description: 'bench boards',
      defaultDeviceType: 'raspberrypi5',
    });
    expect(fleet).toMatchObject({
      orgId: 1,
      name: 'lab',
      description: 'bench boards',
      defaultDeviceType: 'raspberrypi5',
      deviceCount: 0,
      tags: {},
    });
    expect(await getFleet(fleet.id)).toEqual(fleet);
    const listed = check(await server.api('GET', '/api/v1/fleets?orgId=1', { token: admin }), 200);
    expect(listed.items.map((f: Fleet) => f.name)).toContain('lab');

    const changed = check(
      await server.api('PATCH', `/api/v1/fleets/${fleet.id}`, {
        token: admin,
        body: { name: 'lab-2', description: 'moved', defaultDeviceType: 'generic-amd64' },
      }),
      200,
    );
    expect(changed).toMatchObject({
      name: 'lab-2',
      description: 'moved',
      defaultDeviceType: 'generic-amd64',
    });
    const cleared = check(
      await server.api('PATCH', `/api/v1/fleets/${fleet.id}`, {
        token: admin,
        body: { defaultDeviceType: null },
      }),
      200,
    );
    expect(cleared.defaultDeviceType).toBeNull();
    expect((await getFleet(fleet.id)).name).toBe('lab-2');

    expect((await server.api('DELETE', `/api/v1/fleets/${fleet.id}`, { token: admin })).status).toBe(204);
    expect((await server.api('GET', `/api/v1/fleets/${fleet.id}`, { token: admin })).status).toBe(404);
  });

  it('have unique names within an organization, not across organizations', async () => {
    await createFleet('unique-name');
    const duplicate = await server.api('POST', '/api/v1/fleets', {
      token: admin,
      body: { orgId: 1, name: 'unique-name' },
    });
    expect(duplicate.status).toBe(409);
    expect(duplicate.body.error.message).toMatch(/unique-name/);

    const other = await createFleet('other-name');
    const rename = await server.api('PATCH', `/api/v1/fleets/${other.id}`, {
      token: admin,
      body: { name: 'unique-name' },
    });
    expect(rename.status).toBe(409);
    expect((await getFleet(other.id)).name).toBe('other-name');
    // Renaming a fleet to its own name is no conflict.
    check(
      await server.api('PATCH', `/api/v1/fleets/${other.id}`, { token: admin, body: { name: 'other-name' } }),
      200,
    );

    await createFleet('unique-name', {}, seed.beta.orgId, seed.people.betaOwner.token);
  });

  it('refuse an unknown default device type', async () => {
    const answer = await server.api('POST', '/api/v1/fleets', {
      token: admin,
      body: { orgId: 1, name: 'typo-fleet', defaultDeviceType: 'raspberrypi9' },
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error.message).toMatch(/raspberrypi9/);
  });

  it('count their devices', async () => {
    const fleet = await createFleet('counted', { defaultDeviceType: 'generic-amd64' });
    await createDevice(fleet.id);
    await createDevice(fleet.id);
    expect((await getFleet(fleet.id)).deviceCount).toBe(2);
    const listed = check(await server.api('GET', '/api/v1/fleets?q=counted', { token: admin }), 200);
    expect(listed.items).toEqual([expect.objectContaining({ id: fleet.id, deviceCount: 2 })]);
  });

  it('cannot be deleted while they have devices', async () => {
    const fleet = await createFleet('busy', { defaultDeviceType: 'generic-amd64' });
    const device = await createDevice(fleet.id);
    const refused = await server.api('DELETE', `/api/v1/fleets/${fleet.id}`, { token: admin });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('conflict');
    expect((await getFleet(fleet.id)).deviceCount).toBe(1);

    expect((await server.api('DELETE', `/api/v1/devices/${device.id}`, { token: admin })).status).toBe(204);
    expect((await server.api('DELETE', `/api/v1/fleets/${fleet.id}`, { token: admin })).status).toBe(204);
  });

  it('are created only by admins and owners, and seen only inside their organization', async () => {
    for (const person of [seed.people.alphaViewer, seed.people.alphaOperator]) {
      const answer = await server.api('POST', '/api/v1/fleets', {
        token: person.token,
        body: { orgId: 1, name: `by-${person.email}` },
      });
      expect(answer.status).toBe(403);
    }
    await createFleet('by-admin-role', {}, 1, seed.people.alphaAdmin.token);

    const outsider = seed.people.betaOwner.token;
    expect(
      (await server.api('GET', `/api/v1/fleets/${seed.alpha.fleet.id}`, { token: outsider })).status,
    ).toBe(404);
    const theirs = check(await server.api('GET', '/api/v1/fleets?limit=500', { token: outsider }), 200);
    expect(theirs.items.every((f: { orgId: number }) => f.orgId === seed.beta.orgId)).toBe(true);
    const intoAlpha = await server.api('POST', '/api/v1/fleets', {
      token: outsider,
      body: { orgId: 1, name: 'planted' },
    });
    expect(intoAlpha.status).toBe(404);
  });
});

describe('devices', () => {
  it("take the fleet's default device type and start never-connected", async () => {
    const device = await createDevice(seed.alpha.fleet.id);
    expect(device).toMatchObject({
      orgId: 1,
      fleetId: seed.alpha.fleet.id,
      fleetName: 'alpha-fleet',
      deviceType: 'raspberrypi4-64',
      status: 'never-connected',
      notes: '',
      tags: {},
    });
    expect(device.uuid).toMatch(/^[0-9a-f]{32}$/);
    expect(device.name).toBe(`device-${device.uuid.slice(0, 7)}`);

    const explicit = await createDevice(seed.alpha.fleet.id, { deviceType: 'jetson-nano', name: 'jetson' });
    expect(explicit.deviceType).toBe('jetson-nano');
  });

  it('need a device type when the fleet has no default', async () => {
    const fleet = await createFleet('no-default');
    const answer = await server.api('POST', '/api/v1/devices', { token: admin, body: { fleetId: fleet.id } });
    expect(answer.status).toBe(400);
    expect(answer.body.error.message).toMatch(/deviceType/);
  });

  it('refuse an unknown device type with a message naming it', async () => {
    const answer = await server.api('POST', '/api/v1/devices', {
      token: admin,
      body: { fleetId: seed.alpha.fleet.id, deviceType: 'toaster-9000' },
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('bad_request');
    expect(answer.body.error.message).toMatch(/unknown device type toaster-9000/);
    const retype = await server.api('PATCH', `/api/v1/devices/${seed.alpha.device.id}`, {
      token: admin,
      body: { deviceType: 'toaster-9000' },
    });
    expect(retype.status).toBe(400);
    expect((await getDevice(seed.alpha.device.id)).deviceType).toBe('raspberrypi4-64');
  });

  it('can use a custom device type of their organization, which cannot be deleted while in use', async () => {
    const type = check(
      await server.api('POST', '/api/v1/device-types', {
        token: admin,
        body: { orgId: 1, slug: 'acme-board', name: 'Acme Board', arch: 'aarch64' },
      }),
      201,
    );
    expect(type).toMatchObject({ slug: 'acme-board', orgId: 1, builtin: false });
    const types = check(await server.api('GET', '/api/v1/device-types?orgId=1', { token: admin }), 200);
    expect(types.items.map((t: { slug: string }) => t.slug)).toEqual(
      expect.arrayContaining(['acme-board', 'raspberrypi4-64']),
    );
    // Another organization neither sees nor uses it.
    const betaTypes = check(
      await server.api('GET', '/api/v1/device-types', { token: seed.people.betaOwner.token }),
      200,
    );
    expect(betaTypes.items.map((t: { slug: string }) => t.slug)).not.toContain('acme-board');
    const inBeta = await server.api('POST', '/api/v1/devices', {
      token: seed.people.betaOwner.token,
      body: { fleetId: seed.beta.fleet.id, deviceType: 'acme-board' },
    });
    expect(inBeta.status).toBe(400);

    const device = await createDevice(seed.alpha.fleet2.id, { deviceType: 'acme-board', name: 'acme-1' });
    expect(device.deviceType).toBe('acme-board');

    const inUse = await server.api('DELETE', `/api/v1/device-types/${type.id}`, { token: admin });
    expect(inUse.status).toBe(409);
    expect(inUse.body.error.message).toMatch(/acme-board/);

    check(
      await server.api('PATCH', `/api/v1/devices/${device.id}`, {
        token: admin,
        body: { deviceType: 'generic-aarch64' },
      }),
      200,
    );
    expect((await server.api('DELETE', `/api/v1/device-types/${type.id}`, { token: admin })).status).toBe(
      204,
    );
    const gone = await server.api('POST', '/api/v1/devices', {
      token: admin,
      body: { fleetId: seed.alpha.fleet.id, deviceType: 'acme-board' },
    });
    expect(gone.status).toBe(400);
  });

  it('refuse a custom device type that shadows a built-in one, or a duplicate', async () => {
    const builtin = await server.api('POST', '/api/v1/device-types', {
      token: admin,
      body: { orgId: 1, slug: 'raspberrypi5', name: 'Mine', arch: 'aarch64' },
    });
    expect(builtin.status).toBe(409);
    check(
      await server.api('POST', '/api/v1/device-types', {
        token: admin,
        body: { orgId: 1, slug: 'twice', name: 'Twice', arch: 'amd64' },
      }),
      201,
    );
    const twice = await server.api('POST', '/api/v1/device-types', {
      token: admin,
      body: { orgId: 1, slug: 'twice', name: 'Twice again', arch: 'amd64' },
    });
    expect(twice.status).toBe(409);
    const byViewer = await server.api('POST', '/api/v1/device-types', {
      token: seed.people.alphaViewer.token,
      body: { orgId: 1, slug: 'viewers-board', name: 'V', arch: 'amd64' },
    });
    expect(byViewer.status).toBe(403);
  });

  it('are found by id and by uuid, in either case (names: test/api/names.test.ts)', async () => {
    const device = await createDevice(seed.alpha.fleet.id, { name: 'findable' });
    const byId = await getDevice(device.id);
    expect(await getDevice(device.uuid)).toEqual(byId);
    expect(await getDevice(device.uuid.toUpperCase())).toEqual(byId);
    expect(byId.name).toBe('findable');

    expect((await server.api('GET', `/api/v1/devices/${'f'.repeat(32)}`, { token: admin })).status).toBe(404);
    expect((await server.api('GET', '/api/v1/devices/999999', { token: admin })).status).toBe(404);
    // Other text is a name (or uuid prefix): none of the person's devices has it.
    expect((await server.api('GET', '/api/v1/devices/not-a-device', { token: admin })).status).toBe(404);
  });

  it('are found by a uuid made only of digits, not mistaken for another device id', async () => {
    // Serial-number-like uuids are all decimal digits; the one below must not be read as device id 1.
    const uuid = `${'0'.repeat(31)}1`;
    const device = await createDevice(seed.alpha.fleet2.id, { uuid, name: 'digits-only' });
    expect(device.id).not.toBe(1);
    const found = await server.api('GET', `/api/v1/devices/${uuid}`, { token: admin });
    expect(found.status).toBe(200);
    expect(found.body).toMatchObject({ id: device.id, uuid, name: 'digits-only' });
    const serial = '12345678901234567890123456789012';
    await createDevice(seed.alpha.fleet2.id, { uuid: serial, name: 'serial' });
    const bySerial = await server.api('GET', `/api/v1/devices/${serial}`, { token: admin });
    expect(bySerial.status).toBe(200);
    expect(bySerial.body.name).toBe('serial');
  });

  it('keep a uuid given at creation and refuse it twice', async () => {
    const uuid = 'ABCDEF0123456789ABCDEF0123456789';
    const device = await createDevice(seed.alpha.fleet.id, { uuid });
    expect(device.uuid).toBe(uuid.toLowerCase());
    const again = await server.api('POST', '/api/v1/devices', {
      token: admin,
      body: { fleetId: seed.alpha.fleet2.id, uuid: uuid.toLowerCase() },
    });
    expect(again.status).toBe(409);
  });

  it("refuse a uuid another organization's device has exactly as one of their own, without saying it exists", async () => {
    const ownUuid = seed.alpha.device.uuid;
    const othersUuid = seed.beta.device.uuid;
    const answers = [];
    for (const uuid of [ownUuid, othersUuid, othersUuid.toUpperCase()]) {
      const answer = await server.api('POST', '/api/v1/devices', {
        token: admin,
        body: { fleetId: seed.alpha.fleet.id, uuid },
      });
      expect(answer.status, uuid).toBe(409);
      answers.push(answer.body);
    }
    expect(answers[0]).toEqual({
      error: {
        code: 'conflict',
        message: 'this uuid cannot be used: choose another',
        details: { reason: 'uuid_unavailable' },
      },
    });
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[2]).toEqual(answers[0]);
    // And the same from beta's side, about alpha's device.
    const fromBeta = await server.api('POST', '/api/v1/devices', {
      token: seed.people.betaOwner.token,
      body: { fleetId: seed.beta.fleet.id, uuid: ownUuid },
    });
    expect(fromBeta.status).toBe(409);
    expect(fromBeta.body).toEqual(answers[0]);
  });

  it('are renamed and annotated', async () => {
    const device = await createDevice(seed.alpha.fleet.id, { name: 'before' });
    const changed = check(
      await server.api('PATCH', `/api/v1/devices/${device.uuid}`, {
        token: seed.people.alphaOperator.token,
        body: { name: 'after', notes: 'on the roof, north side' },
      }),
      200,
    );
    expect(changed).toMatchObject({ name: 'after', notes: 'on the roof, north side' });
    expect(await getDevice(device.id)).toMatchObject({ name: 'after', notes: 'on the roof, north side' });

    const blank = await server.api('PATCH', `/api/v1/devices/${device.id}`, {
      token: admin,
      body: { name: '  ' },
    });
    expect(blank.status).toBe(400);
    const byViewer = await server.api('PATCH', `/api/v1/devices/${device.id}`, {
      token: seed.people.alphaViewer.token,
      body: { name: 'viewer was here' },
    });
    expect(byViewer.status).toBe(403);
    expect((await getDevice(device.id)).name).toBe('after');
  });

  it('move between fleets of their organization', async () => {
    const from = await createFleet('move-from', { defaultDeviceType: 'generic-amd64' });
    const to = await createFleet('move-to', { defaultDeviceType: 'generic-amd64' });
    const device = await createDevice(from.id);
    const moved = check(
      await server.api('PATCH', `/api/v1/devices/${device.id}`, { token: admin, body: { fleetId: to.id } }),
      200,
    );
    expect(moved).toMatchObject({ fleetId: to.id, fleetName: 'move-to' });
    expect((await getFleet(from.id)).deviceCount).toBe(0);
    expect((await getFleet(to.id)).deviceCount).toBe(1);
  });

  it('do not move to a fleet of another organization', async () => {
    // alphaAdmin also administers beta, so the refusal is about the organizations, not about access.
    check(
      await server.api('POST', `/api/v1/orgs/${seed.beta.orgId}/members`, {
        token: seed.people.betaOwner.token,
        body: { email: seed.people.alphaAdmin.email, role: 'admin' },
      }),
      201,
    );
    // Memberships are read on every request, so the seeded session already reaches beta.
    const alphaAdmin = seed.people.alphaAdmin.token;
    const device = await createDevice(seed.alpha.fleet.id, { name: 'stays-home' });
    const across = await server.api('PATCH', `/api/v1/devices/${device.id}`, {
      token: alphaAdmin,
      body: { fleetId: seed.beta.fleet.id },
    });
    expect(across.status).toBe(400);
    expect(across.body.error.message).toMatch(/organization/);

    // Someone who cannot see the other organization's fleet gets 404 for it.
    const blind = await server.api('PATCH', `/api/v1/devices/${device.id}`, {
      token: admin,
      body: { fleetId: seed.beta.fleet.id },
    });
    expect(blind.status).toBe(404);

    expect(await getDevice(device.id)).toMatchObject({ fleetId: seed.alpha.fleet.id, orgId: 1 });
    const betaFleet = check(
      await server.api('GET', `/api/v1/fleets/${seed.beta.fleet.id}`, { token: seed.people.betaOwner.token }),
      200,
    );
    expect(betaFleet.deviceCount).toBe(1);
  });

  it('are deleted', async () => {
    const device = await createDevice(seed.alpha.fleet.id);
    const byOperator = await server.api('DELETE', `/api/v1/devices/${device.id}`, {
      token: seed.people.alphaOperator.token,
    });
    expect(byOperator.status).toBe(403);
    expect((await server.api('DELETE', `/api/v1/devices/${device.uuid}`, { token: admin })).status).toBe(204);
    expect((await server.api('GET', `/api/v1/devices/${device.id}`, { token: admin })).status).toBe(404);
    expect((await server.api('DELETE', `/api/v1/devices/${device.id}`, { token: admin })).status).toBe(404);
  });

  it("are invisible to other organizations' people", async () => {
    const outsider = seed.people.betaViewer.token;
    expect(
      (await server.api('GET', `/api/v1/devices/${seed.alpha.device.uuid}`, { token: outsider })).status,
    ).toBe(404);
    const list = check(await server.api('GET', '/api/v1/devices?limit=500', { token: outsider }), 200);
    expect(list.items.every((d: { orgId: number }) => d.orgId === seed.beta.orgId)).toBe(true);
    const filtered = check(
      await server.api('GET', `/api/v1/devices?fleetId=${seed.alpha.fleet.id}`, { token: outsider }),
      200,
    );
    expect(filtered.total).toBe(0);
    const create = await server.api('POST', '/api/v1/devices', {
      token: seed.people.betaOwner.token,
      body: { fleetId: seed.alpha.fleet.id },
    });
    expect(create.status).toBe(404);
  });
});

describe('tags', () => {
  it('are set, overwritten and removed on a device', async () => {
    const device = await createDevice(seed.alpha.fleet.id, { name: 'tagged' });
    const url = `/api/v1/devices/${device.id}/tags`;
    expect((await server.api('PUT', `${url}/env`, { token: admin, body: { value: 'prod' } })).status).toBe(
      204,
    );
    expect(
      (
        await server.api('PUT', `${url}/site`, {
          token: seed.people.alphaOperator.token,
          body: { value: 'Oslo 2' },
        })
      ).status,
    ).toBe(204);
    expect(check(await server.api('GET', url, { token: admin }), 200).tags).toEqual({
      env: 'prod',
      site: 'Oslo 2',
    });

    expect((await server.api('PUT', `${url}/env`, { token: admin, body: { value: 'staging' } })).status).toBe(
      204,
    );
    expect((await getDevice(device.uuid)).tags).toEqual({ env: 'staging', site: 'Oslo 2' });

    expect((await server.api('DELETE', `${url}/env`, { token: admin })).status).toBe(204);
    expect(check(await server.api('GET', url, { token: admin }), 200).tags).toEqual({ site: 'Oslo 2' });
    expect((await server.api('DELETE', `${url}/env`, { token: admin })).status).toBe(404);
  });

  it('are set, overwritten and removed on a fleet', async () => {
    const fleet = await createFleet('tagged-fleet');
    const url = `/api/v1/fleets/${fleet.id}/tags`;
    expect((await server.api('PUT', `${url}/region`, { token: admin, body: { value: 'eu' } })).status).toBe(
      204,
    );
    expect((await server.api('PUT', `${url}/region`, { token: admin, body: { value: 'us' } })).status).toBe(
      204,
    );
    expect(check(await server.api('GET', url, { token: admin }), 200).tags).toEqual({ region: 'us' });
    expect((await getFleet(fleet.id)).tags).toEqual({ region: 'us' });
    expect((await server.api('DELETE', `${url}/region`, { token: admin })).status).toBe(204);
    expect((await getFleet(fleet.id)).tags).toEqual({});
    expect((await server.api('DELETE', `${url}/region`, { token: admin })).status).toBe(404);
  });

  it('answer 404 for a missing owner, 400 for a bad key, 403 for a viewer', async () => {
    expect(
      (await server.api('PUT', '/api/v1/devices/999999/tags/env', { token: admin, body: { value: 'x' } }))
        .status,
    ).toBe(404);
    expect((await server.api('GET', '/api/v1/fleets/999999/tags', { token: admin })).status).toBe(404);
    expect(
      (await server.api('PUT', '/api/v1/fleets/999999/tags/env', { token: admin, body: { value: 'x' } }))
        .status,
    ).toBe(404);
    const badKey = await server.api('PUT', `/api/v1/devices/${seed.alpha.device.id}/tags/a%3Db`, {
      token: admin,
      body: { value: 'x' },
    });
    expect(badKey.status).toBe(400);
    const byViewer = await server.api('PUT', `/api/v1/devices/${seed.alpha.device.id}/tags/env`, {
      token: seed.people.alphaViewer.token,
      body: { value: 'x' },
    });
    expect(byViewer.status).toBe(403);
    const fleetByOperator = await server.api('PUT', `/api/v1/fleets/${seed.alpha.fleet.id}/tags/env`, {
      token: seed.people.alphaOperator.token,
      body: { value: 'x' },
    });
    expect(fleetByOperator.status).toBe(403);
    expect((await getFleet(seed.alpha.fleet.id)).tags).toEqual({});
  });
});

describe('tag keys named like JavaScript object internals', () => {
  it('refuse __proto__ with a clear 400 on devices and fleets, and keep constructor, prototype and toString', async () => {
    const device = await createDevice(seed.alpha.fleet.id, { name: 'proto-tags' });
    const fleet = await createFleet('proto-tags-fleet');
    for (const url of [`/api/v1/devices/${device.uuid}/tags`, `/api/v1/fleets/${fleet.id}/tags`]) {
      for (const method of ['PUT', 'DELETE']) {
        const answer = await server.api(method, `${url}/__proto__`, {
          token: admin,
          ...(method === 'PUT' ? { body: { value: 'x' } } : {}),
        });
        expect(answer.status, `${method} ${url}`).toBe(400);
        expect(answer.body.error.message).toMatch(/"__proto__" is a reserved name: choose another/);
      }
      for (const key of ['constructor', 'prototype', 'toString'])
        check(await server.api('PUT', `${url}/${key}`, { token: admin, body: { value: key } }), 204);
      expect(check(await server.api('GET', url, { token: admin }), 200).tags).toEqual({
        constructor: 'constructor',
        prototype: 'prototype',
        toString: 'toString',
      });
    }
    expect((await getDevice(device.uuid)).tags).toEqual({
      constructor: 'constructor',
      prototype: 'prototype',
      toString: 'toString',
    });
    expect((await getFleet(fleet.id)).tags).toMatchObject({ toString: 'toString' });
  });

  it('stored under __proto__ before it was refused stay own keys of the tags object, not its prototype', async () => {
    const device = await createDevice(seed.alpha.fleet.id, { name: 'old-proto-tag' });
    await server.database.db
      .insertInto('device_tags')
      .values({ device_id: device.id, key: '__proto__', value: 'old' })
      .execute();
    const tags = (await tagsOf(server.database.db, deviceTags, [device.id])).get(device.id)!;
    expect(Object.getOwnPropertyDescriptor(tags, '__proto__')?.value).toBe('old');
    expect(Object.getPrototypeOf(tags)).toBe(Object.prototype);
  });
});

describe('the device list', () => {
  let fleet: Fleet;
  const nodes = Array.from({ length: 30 }, (_, i) => `node-${String(i + 1).padStart(2, '0')}`);
  const odd = ['100%done', '100xdone', 'Sensor_A', 'SensorXA'];

  beforeAll(async () => {
    fleet = await createFleet('listing', { defaultDeviceType: 'generic-amd64' });
    // Created out of order, so name order and creation order differ.
    for (const name of [...odd, ...[...nodes].reverse()]) await createDevice(fleet.id, { name });
    const devices = check(
      await server.api('GET', `/api/v1/devices?fleetId=${fleet.id}&limit=500`, { token: admin }),
      200,
    ).items as Device[];
    const byName = new Map(devices.map((d) => [d.name, d]));
    for (const name of nodes.slice(0, 5)) await tag(byName.get(name)!.id, 'env', 'prod');
    for (const name of nodes.slice(5, 8)) await tag(byName.get(name)!.id, 'env', 'staging');
    await tag(byName.get('Sensor_A')!.id, 'owner', 'env=prod');
  });

  async function tag(deviceId: number, key: string, value: string) {
    check(
      await server.api('PUT', `/api/v1/devices/${deviceId}/tags/${key}`, { token: admin, body: { value } }),
      204,
    );
  }

  async function list(query: string) {
    return check(
      await server.api('GET', `/api/v1/devices?fleetId=${fleet.id}&limit=500&${query}`, { token: admin }),
      200,
    ) as { items: Device[]; total: number; page: number; limit: number };
  }
  const names = (page: { items: Device[] }) => page.items.map((d) => d.name);

  it('filters by fleet', async () => {
    const all = await list('');
    expect(all.total).toBe(34);
    expect(all.items.every((d) => d.fleetId === fleet.id)).toBe(true);
    const everything = check(await server.api('GET', '/api/v1/devices?limit=500', { token: admin }), 200);
    expect(everything.total).toBeGreaterThan(34);
  });

  it('filters by tag key, and by key=value', async () => {
    expect(names(await list('tag=env')).sort()).toEqual(nodes.slice(0, 8));
    expect(names(await list('tag=env=prod')).sort()).toEqual(nodes.slice(0, 5));
    expect(names(await list(`tag=${encodeURIComponent('env=staging')}`)).sort()).toEqual(nodes.slice(5, 8));
    // Only the first "=" separates key from value.
    expect(names(await list(`tag=${encodeURIComponent('owner=env=prod')}`))).toEqual(['Sensor_A']);
    expect((await list('tag=env=nowhere')).total).toBe(0);
    expect((await list('tag=nokey')).total).toBe(0);
  });

  it('finds text in the name or uuid, without regard to case', async () => {
    expect(names(await list('q=NODE-1')).sort()).toEqual(nodes.slice(9, 19));
    expect((await list('q=NODE-1')).total).toBe(10);
    const target = (await list('q=node-30')).items[0]!;
    const byUuid = await list(`q=${target.uuid.slice(8, 20).toUpperCase()}`);
    expect(names(byUuid)).toEqual(['node-30']);
  });

  it('finds text beyond ASCII without regard to case', async () => {
    const device = await createDevice(fleet.id, { name: 'ÉCOLE Zürich' });
    try {
      expect(names(await list(`q=${encodeURIComponent('école')}`))).toEqual(['ÉCOLE Zürich']);
      expect(names(await list(`q=${encodeURIComponent('ZÜRICH')}`))).toEqual(['ÉCOLE Zürich']);
    } finally {
      check(await server.api('DELETE', `/api/v1/devices/${device.id}`, { token: admin }), 204);
    }
  });

  it('finds a renamed device by its new name only, forgets a deleted one, and takes quotes in the text', async () => {
    // On SQLite a search of 3 characters or more goes through the trigram index (migration 0017), kept by triggers.
    const device = await createDevice(fleet.id, { name: 'lobby "east" screen' });
    expect(names(await list(`q=${encodeURIComponent('"east"')}`))).toEqual(['lobby "east" screen']);
    expect(names(await list(`q=${encodeURIComponent('BY "EA')}`))).toEqual(['lobby "east" screen']);
    check(
      await server.api('PATCH', `/api/v1/devices/${device.id}`, {
        token: admin,
        body: { name: 'hall west' },
      }),
      200,
    );
    expect((await list('q=lobby')).total).toBe(0);
    expect(names(await list('q=ALL%20WE'))).toEqual(['hall west']);
    expect(names(await list(`q=${device.uuid.slice(10, 22)}`))).toEqual(['hall west']);
    check(await server.api('DELETE', `/api/v1/devices/${device.id}`, { token: admin }), 204);
    expect((await list('q=hall%20west')).total).toBe(0);
  });

  it('finds a text in more than a thousand devices, past the first page, as it finds a rare one', async () => {
    // More matches than the text index hands over (TEXT_CANDIDATES_MAX): the list reads its own index instead.
    const many = check(
      await server.api('POST', '/api/v1/fleets', {
        token: admin,
        body: { orgId: 1, name: 'many-meters', defaultDeviceType: 'raspberrypi4-64' },
      }),
      201,
    );
    const now = Date.now();
    const rows = Array.from({ length: 1_100 }, (_, i) => ({
      uuid: `feedc0de${String(i).padStart(24, '0')}`,
      org_id: 1,
      fleet_id: many.id,
      name: i % 100 === 7 ? `rare-meter-${i}` : `meter-${String(i).padStart(4, '0')}`,
      device_type: 'raspberrypi4-64',
      notes: '',
      created_at: now,
      updated_at: now,
    }));
    for (let first = 0; first < rows.length; first += 500)
      await server.database.db
        .insertInto('devices')
        .values(rows.slice(first, first + 500))
        .execute();
    try {
      const url = (query: string) => `/api/v1/devices?fleetId=${many.id}&limit=500&fields=name&${query}`;
      const common = check(await server.api('GET', url('q=METER&sort=-name'), { token: admin }), 200);
      expect(common.total).toBe(1_100);
      const second = check(await server.api('GET', url('q=METER&sort=-name&page=2'), { token: admin }), 200);
      expect([...common.items, ...second.items].map((d: Device) => d.name)).toEqual(
        rows
          .map((r) => r.name)
          .sort()
          .reverse()
          .slice(0, 1_000),
      );
      const rare = check(await server.api('GET', url('q=rare-meter'), { token: admin }), 200);
      expect(rare.items.map((d: Device) => d.name)).toEqual(
        rows
          .filter((r) => r.name.startsWith('rare'))
          .map((r) => r.name)
          .sort(),
      );
      expect(rare.total).toBe(11);
    } finally {
      await server.database.db.deleteFrom('devices').where('fleet_id', '=', many.id).execute();
      check(await server.api('DELETE', `/api/v1/fleets/${many.id}`, { token: admin }), 204);
    }
  });

  it('treats % and _ in the text literally', async () => {
    expect(names(await list(`q=${encodeURIComponent('%')}`))).toEqual(['100%done']);
    expect(names(await list(`q=${encodeURIComponent('0%d')}`))).toEqual(['100%done']);
    expect(names(await list('q=_'))).toEqual(['Sensor_A']);
    expect(names(await list('q=r_a'))).toEqual(['Sensor_A']);
    expect((await list(`q=${encodeURIComponent('\\')}`)).total).toBe(0);
  });

  it('sorts by name, either way', async () => {
    expect(names(await list('q=node-'))).toEqual(nodes);
    expect(names(await list('q=node-&sort=-name'))).toEqual([...nodes].reverse());
    const byCreation = names(await list('q=node-&sort=createdAt'));
    expect(byCreation).toEqual([...nodes].reverse());
  });

  it('pages with a total over all pages', async () => {
    const everything = names(await list(''));
    const seen: string[] = [];
    for (let page = 1; page <= 5; page++) {
      const answer = check(
        await server.api('GET', `/api/v1/devices?fleetId=${fleet.id}&limit=7&page=${page}`, { token: admin }),
        200,
      );
      expect(answer.total).toBe(34);
      expect(answer.page).toBe(page);
      expect(answer.limit).toBe(7);
      expect(answer.items.length).toBe(page < 5 ? 7 : 6);
      seen.push(...names(answer));
    }
    expect(seen).toEqual(everything);
    const beyond = check(
      await server.api('GET', `/api/v1/devices?fleetId=${fleet.id}&limit=7&page=6`, { token: admin }),
      200,
    );
    expect(beyond.items).toEqual([]);
    expect(beyond.total).toBe(34);

    const filteredPage = check(
      await server.api('GET', `/api/v1/devices?fleetId=${fleet.id}&tag=env&limit=3&page=3`, { token: admin }),
      200,
    );
    expect(filteredPage.total).toBe(8);
    expect(names(filteredPage)).toEqual(nodes.slice(6, 8));
  });

  it('refuses malformed list parameters with 400', async () => {
    for (const query of ['limit=0', 'limit=501', 'page=0', 'sort=color', 'fleetId=abc', 'status=sleeping']) {
      const answer = await server.api('GET', `/api/v1/devices?${query}`, { token: admin });
      expect(answer.status, query).toBe(400);
      expect(answer.body.error.code).toBe('validation_failed');
    }
  });
});

describe('hostile text', () => {
  // PostgreSQL text cannot hold U+0000 while SQLite can: either way the answer must be a 4xx or a faithful
  // round trip, never a 5xx.
  const nul = 'before\u0000after';

  it('in device notes and fleet descriptions is refused or kept as sent', async () => {
    const device = await createDevice(seed.alpha.fleet.id, { name: 'nul-notes' });
    const notes = await server.api('PATCH', `/api/v1/devices/${device.id}`, {
      token: admin,
      body: { notes: nul },
    });
    expect(notes.status, JSON.stringify(notes.body)).toBeLessThan(500);
    expect((await getDevice(device.id)).notes).toBe(notes.status === 200 ? nul : '');

    const fleet = await createFleet('nul-description');
    const description = await server.api('PATCH', `/api/v1/fleets/${fleet.id}`, {
      token: admin,
      body: { description: nul },
    });
    expect(description.status, JSON.stringify(description.body)).toBeLessThan(500);
    expect(
      check(await server.api('GET', `/api/v1/fleets/${fleet.id}`, { token: admin }), 200).description,
    ).toBe(description.status === 200 ? nul : '');
  });

  it('in list filters finds nothing or is refused', async () => {
    const encoded = encodeURIComponent(nul);
    for (const url of [
      `/api/v1/devices?q=${encoded}`,
      `/api/v1/devices?tag=${encoded}`,
      `/api/v1/devices?tag=env=${encoded}`,
      `/api/v1/fleets?q=${encoded}`,
      `/api/v1/users?q=${encoded}`,
    ]) {
      const answer = await server.api('GET', url, { token: admin });
      expect([200, 400], `${url} → ${answer.status} ${JSON.stringify(answer.body)}`).toContain(answer.status);
      if (answer.status === 200) expect(answer.body.total, url).toBe(0);
    }
  });

  it('in a device reference is a 400 or 404, and ids beyond any device are 404', async () => {
    for (const ref of ['9999999999', '2147483648', `${'9'.repeat(32)}`]) {
      const answer = await server.api('GET', `/api/v1/devices/${ref}`, { token: admin });
      expect([400, 404], `${ref} → ${answer.status} ${JSON.stringify(answer.body)}`).toContain(answer.status);
    }
  });

  it('in an id is refused with 400 unless in plain decimal: 00001 does not name fleet 1', async () => {
    const fleetId = seed.alpha.fleet.id;
    check(await server.api('GET', `/api/v1/fleets/${fleetId}`, { token: admin }), 200);
    for (const written of [`0${fleetId}`, `+${fleetId}`, `${fleetId}.0`, `${fleetId}e0`]) {
      const answer = await server.api('GET', `/api/v1/fleets/${encodeURIComponent(written)}`, {
        token: admin,
      });
      expect(answer.status, written).toBe(400);
      expect(answer.body.error.message).toMatch(/in decimal without leading zeros/);
      const listed = await server.api('GET', `/api/v1/devices?fleetId=${encodeURIComponent(written)}`, {
        token: admin,
      });
      expect(listed.status, written).toBe(400);
    }
    expect(
      (await server.api('GET', `/api/v1/devices/0${seed.alpha.device.id}`, { token: admin })).status,
    ).toBe(400);
  });
});
