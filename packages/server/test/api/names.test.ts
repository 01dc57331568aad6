import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedTwoOrgs, startTestServer, type TestServer } from '../harness.ts';
import { check } from './helpers.ts';

/**
 * The API's paths name devices, fleets and organizations as people do: by name, uuid or uuid prefix, not only
 * by id (devices/resolve.ts, fleets/resolve.ts, orgs/resolve.ts). Each person finds only their own.
 */
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

const get = (path: string, token = admin) => server.api('GET', path, { token });

describe('a device in a path', () => {
  it('is found by its name, its uuid, a unique uuid prefix and its id, in any case of A-Z', async () => {
    const { device } = seed.alpha;
    for (const ref of [
      device.name,
      device.name.toUpperCase(),
      device.uuid,
      device.uuid.toUpperCase(),
      device.uuid.slice(0, 9),
      String(device.id),
    ]) {
      expect(check(await get(`/api/v1/devices/${encodeURIComponent(ref)}`), 200).id, ref).toBe(device.id);
    }
  });

  it('is found by a uuid prefix of digits alone (`45099294…`), which also reads as an id', async () => {
    const digits = check(
      await server.api('POST', '/api/v1/devices', {
        token: admin,
        body: { fleetId: seed.alpha.fleet.id, name: 'digits-first', uuid: `45099294${'ab'.repeat(12)}` },
      }),
      201,
    );
    for (const ref of ['45099294', '4509929', digits.uuid, String(digits.id)])
      expect(check(await get(`/api/v1/devices/${ref}`), 200).id, ref).toBe(digits.id);
    check(await get('/api/v1/devices/99999999'), 404);
  });

  it('is changed and deleted by its name', async () => {
    const created = check(
      await server.api('POST', '/api/v1/devices', {
        token: admin,
        body: { fleetId: seed.alpha.fleet.id, name: 'renamed by name' },
      }),
      201,
    );
    const renamed = check(
      await server.api('PATCH', `/api/v1/devices/${encodeURIComponent('renamed by name')}`, {
        token: admin,
        body: { name: 'deleted-by-name', notes: 'found by its name' },
      }),
      200,
    );
    expect(renamed).toMatchObject({ id: created.id, notes: 'found by its name' });
    check(await server.api('DELETE', '/api/v1/devices/deleted-by-name', { token: admin }), 204);
    check(await get(`/api/v1/devices/${created.uuid}`), 404);
  });

  it('answers 409 with every candidate when a name or prefix names several devices', async () => {
    const twins = [];
    for (const fleet of [seed.alpha.fleet, seed.alpha.fleet2]) {
      twins.push(
        check(
          await server.api('POST', '/api/v1/devices', {
            token: admin,
            body: { fleetId: fleet.id, name: 'twin', uuid: `abcdef0${fleet.id}`.padEnd(32, '0') },
          }),
          201,
        ),
      );
    }
    const answer = check(await get('/api/v1/devices/twin'), 409);
    expect(answer.error.message).toContain(twins[0].uuid);
    expect(answer.error.message).toContain(twins[1].uuid);
    expect(answer.error.details.candidates.map((c: { id: number }) => c.id).sort()).toEqual(
      twins.map((t) => t.id).sort(),
    );
    const prefix = check(await get('/api/v1/devices/abcdef0'), 409);
    expect(prefix.error.details.candidates).toHaveLength(2);
    // Each twin is still reached by its uuid.
    expect(check(await get(`/api/v1/devices/${twins[1].uuid}`), 200).id).toBe(twins[1].id);
  });

  it('is not found by name in another organization, in the words of one that does not exist', async () => {
    const beta = seed.people.betaOwner.token;
    const theirs = check(await get('/api/v1/devices/alpha-device', beta), 404);
    const none = check(await get('/api/v1/devices/no-such-device', beta), 404);
    expect(theirs.error.message).toBe('no device "alpha-device" among your devices');
    expect(none.error.message).toBe('no device "no-such-device" among your devices');
    // A name both organizations use is one device for each of their people, not an ambiguity.
    check(
      await server.api('POST', '/api/v1/devices', {
        token: beta,
        body: { fleetId: seed.beta.fleet.id, name: 'alpha-device' },
      }),
      201,
    );
    expect(check(await get('/api/v1/devices/alpha-device', beta), 200).orgId).toBe(seed.beta.orgId);
    expect(check(await get('/api/v1/devices/alpha-device'), 200).id).toBe(seed.alpha.device.id);
  });

  it('is found by name for a fleet-scoped member only within their fleets', async () => {
    const fleetOperator = seed.people.alphaFleetOperator.token;
    check(await get(`/api/v1/devices/${seed.alpha.device.name}`, fleetOperator), 200);
    check(await get(`/api/v1/devices/${seed.alpha.device2.name}`, fleetOperator), 404);
  });

  it('reaches its sub-resources by name: tags, variables, allowed ports', async () => {
    const name = seed.alpha.device.name;
    check(
      await server.api('PUT', `/api/v1/devices/${name}/tags/site`, {
        token: admin,
        body: { value: 'north' },
      }),
      204,
    );
    expect(check(await get(`/api/v1/devices/${name}/tags`), 200).tags).toEqual({ site: 'north' });
    check(await get(`/api/v1/devices/${name}/allowed-ports`), 200);
  });
});

describe('a fleet in a path', () => {
  it('is found by its name or its id, and its sub-resources too', async () => {
    const { fleet } = seed.alpha;
    expect(check(await get(`/api/v1/fleets/${fleet.name}`), 200).id).toBe(fleet.id);
    expect(check(await get(`/api/v1/fleets/${fleet.name.toUpperCase()}`), 200).id).toBe(fleet.id);
    expect(check(await get(`/api/v1/fleets/${fleet.id}`), 200).id).toBe(fleet.id);
    check(await get(`/api/v1/fleets/${fleet.name}/allowed-ports`), 200);
    check(await get(`/api/v1/fleets/${fleet.name}/variables`), 200);
    check(
      await server.api('PUT', `/api/v1/fleets/${fleet.name}/tags/env`, {
        token: admin,
        body: { value: 'prod' },
      }),
      204,
    );
    expect(check(await get(`/api/v1/fleets/${fleet.id}/tags`), 200).tags).toEqual({ env: 'prod' });
  });

  it("is not found by the name of another organization's fleet", async () => {
    const answer = check(await get('/api/v1/fleets/beta-fleet'), 404);
    expect(answer.error.message).toBe('no fleet "beta-fleet" among your fleets');
  });

  it('answers 409 with the candidates when fleets of two of my organizations share the name', async () => {
    const beta = seed.people.betaOwner.token;
    const other = check(
      await server.api('POST', '/api/v1/orgs', { token: beta, body: { name: 'Beta Two' } }),
      201,
    );
    const second = check(
      await server.api('POST', '/api/v1/fleets', {
        token: beta,
        body: { orgId: other.id, name: 'beta-fleet' },
      }),
      201,
    );
    const answer = check(await get('/api/v1/fleets/beta-fleet', beta), 409);
    expect(answer.error.details.candidates.map((c: { id: number }) => c.id).sort()).toEqual(
      [seed.beta.fleet.id, second.id].sort(),
    );
    expect(answer.error.message).toMatch(/use the id/);
  });
});

describe('an organization in a path', () => {
  it('is found by its slug, its name and its id', async () => {
    const beta = seed.people.betaOwner.token;
    const org = check(await get(`/api/v1/orgs/${seed.beta.orgId}`, beta), 200);
    for (const ref of [org.slug, org.name, org.name.toLowerCase(), String(org.id)]) {
      expect(check(await get(`/api/v1/orgs/${encodeURIComponent(ref)}`, beta), 200).id, ref).toBe(org.id);
    }
    expect(check(await get(`/api/v1/orgs/${org.slug}/members`, beta), 200).items.length).toBeGreaterThan(0);
    check(await get(`/api/v1/orgs/${org.slug}/session-recording`, beta), 200);
    check(await get(`/api/v1/orgs/${org.slug}/device-limit`, beta), 200);
  });

  it('is not found by the name of an organization I am not a member of', async () => {
    const alphaViewer = seed.people.alphaViewer.token;
    const answer = check(await get(`/api/v1/orgs/${encodeURIComponent('Beta Corp')}`, alphaViewer), 404);
    expect(answer.error.message).toBe('no organization "Beta Corp" among your organizations');
  });
});
