import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { effectiveVariablesOf } from '../../src/features/variables/service.ts';
import { seedTwoOrgs, startTestServer, type TestServer } from '../harness.ts';
import { check } from './helpers.ts';

/** Fleet-wide and per-device variables, device values overriding fleet values, and write-only secrets. */
let server: TestServer;
let seed: Awaited<ReturnType<typeof seedTwoOrgs>>;
let admin: string;
let fleetUrl: string;
let deviceUrl: string;

beforeAll(async () => {
  server = await startTestServer();
  seed = await seedTwoOrgs(server);
  admin = server.adminToken;
  fleetUrl = `/api/v1/fleets/${seed.alpha.fleet.id}/variables`;
  deviceUrl = `/api/v1/devices/${seed.alpha.device.uuid}/variables`;
});

afterAll(async () => {
  await server?.close();
});

interface Variable {
  name: string;
  value: string | null;
  secret: boolean;
  source?: 'device' | 'fleet';
  overridesFleet?: boolean;
}

const put = (url: string, value: string, secret?: boolean, token = admin) =>
  server.api('PUT', url, { token, body: { value, ...(secret === undefined ? {} : { secret }) } });

async function items(url: string, token = admin): Promise<Variable[]> {
  return check(await server.api('GET', url, { token }), 200).items;
}

describe('fleet variables', () => {
  it('are set, listed, changed and deleted', async () => {
    const set = check(await put(`${fleetUrl}/LOG_LEVEL`, 'info'), 200);
    expect(set).toMatchObject({ name: 'LOG_LEVEL', value: 'info', secret: false });
    expect(await items(fleetUrl)).toEqual([expect.objectContaining({ name: 'LOG_LEVEL', value: 'info' })]);

    check(await put(`${fleetUrl}/LOG_LEVEL`, 'debug'), 200);
    expect((await items(fleetUrl)).find((v) => v.name === 'LOG_LEVEL')?.value).toBe('debug');

    expect((await server.api('DELETE', `${fleetUrl}/LOG_LEVEL`, { token: admin })).status).toBe(204);
    expect((await items(fleetUrl)).some((v) => v.name === 'LOG_LEVEL')).toBe(false);
    expect((await server.api('DELETE', `${fleetUrl}/LOG_LEVEL`, { token: admin })).status).toBe(404);
  });

  it('are written by admins, not by operators or viewers, and hidden from other organizations', async () => {
    for (const person of [seed.people.alphaOperator, seed.people.alphaViewer]) {
      expect((await put(`${fleetUrl}/BY_${person.userId}`, 'x', false, person.token)).status).toBe(403);
    }
    check(await put(`${fleetUrl}/BY_ADMIN`, 'yes', false, seed.people.alphaAdmin.token), 200);
    expect((await items(fleetUrl, seed.people.alphaViewer.token)).map((v) => v.name)).toContain('BY_ADMIN');

    const outsider = seed.people.betaOwner.token;
    expect((await server.api('GET', fleetUrl, { token: outsider })).status).toBe(404);
    expect((await put(`${fleetUrl}/PLANTED`, 'x', false, outsider)).status).toBe(404);
    expect((await items(fleetUrl)).map((v) => v.name)).not.toContain('PLANTED');
    expect((await server.api('DELETE', `${fleetUrl}/BY_ADMIN`, { token: outsider })).status).toBe(404);
  });
});

describe('device variables', () => {
  it('override the fleet value of the same name and show where each value comes from', async () => {
    check(await put(`${fleetUrl}/API_URL`, 'https://fleet.example.test'), 200);
    check(await put(`${fleetUrl}/REGION`, 'eu'), 200);
    const own = check(await put(`${deviceUrl}/API_URL`, 'https://device.example.test'), 200);
    expect(own).toMatchObject({ name: 'API_URL', value: 'https://device.example.test', secret: false });
    check(await put(`${deviceUrl}/ONLY_HERE`, '1'), 200);

    const effective = await items(deviceUrl);
    const byName = new Map(effective.map((v) => [v.name, v]));
    expect(byName.get('API_URL')).toMatchObject({
      value: 'https://device.example.test',
      source: 'device',
      overridesFleet: true,
    });
    expect(byName.get('REGION')).toMatchObject({ value: 'eu', source: 'fleet', overridesFleet: false });
    expect(byName.get('ONLY_HERE')).toMatchObject({ value: '1', source: 'device', overridesFleet: false });
    expect(effective.filter((v) => v.name === 'API_URL')).toHaveLength(1);
    const names = effective.map((v) => v.name);
    expect(names).toEqual([...names].sort());

    // The fleet's value is untouched, and the other device of the fleet sees only the fleet's.
    expect((await items(fleetUrl)).find((v) => v.name === 'API_URL')?.value).toBe(
      'https://fleet.example.test',
    );
    const other = check(
      await server.api('POST', '/api/v1/devices', { token: admin, body: { fleetId: seed.alpha.fleet.id } }),
      201,
    );
    const otherVars = await items(`/api/v1/devices/${other.id}/variables`);
    expect(otherVars.find((v) => v.name === 'API_URL')).toMatchObject({
      value: 'https://fleet.example.test',
      source: 'fleet',
    });
    expect(otherVars.some((v) => v.name === 'ONLY_HERE')).toBe(false);
  });

  it('let the fleet value show through again once deleted', async () => {
    check(await put(`${fleetUrl}/MODE`, 'fleet-mode'), 200);
    check(await put(`${deviceUrl}/MODE`, 'device-mode'), 200);
    expect((await server.api('DELETE', `${deviceUrl}/MODE`, { token: admin })).status).toBe(204);
    expect((await items(deviceUrl)).find((v) => v.name === 'MODE')).toMatchObject({
      value: 'fleet-mode',
      source: 'fleet',
      overridesFleet: false,
    });
    expect((await server.api('DELETE', `${deviceUrl}/MODE`, { token: admin })).status).toBe(404);
  });

  it('are written by operators but not viewers', async () => {
    check(await put(`${deviceUrl}/SET_BY_OPERATOR`, 'ok', false, seed.people.alphaOperator.token), 200);
    expect((await put(`${deviceUrl}/SET_BY_VIEWER`, 'no', false, seed.people.alphaViewer.token)).status).toBe(
      403,
    );
    expect((await items(deviceUrl)).map((v) => v.name)).not.toContain('SET_BY_VIEWER');
    expect((await put('/api/v1/devices/999999/variables/X', 'x')).status).toBe(404);
  });
});

describe('secret variables', () => {
  const fleetSecret = 'fleet-secret-value-7f3a9c';
  const deviceSecret = 'device-secret-value-e21b04';
  const changedSecret = 'rotated-secret-value-55d0';

  it('never return their value, in any answer or in the audit log', async () => {
    const answers = [
      await put(`${fleetUrl}/DB_PASSWORD`, fleetSecret, true),
      await put(`${deviceUrl}/DEVICE_TOKEN`, deviceSecret, true),
      await put(`${deviceUrl}/DB_PASSWORD`, changedSecret, true),
    ];
    for (const answer of answers) {
      expect(check(answer, 200)).toMatchObject({ value: null, secret: true });
    }

    const fleetVars = await items(fleetUrl);
    expect(fleetVars.find((v) => v.name === 'DB_PASSWORD')).toMatchObject({ value: null, secret: true });
    const deviceVars = await items(deviceUrl);
    expect(deviceVars.find((v) => v.name === 'DEVICE_TOKEN')).toMatchObject({ value: null, secret: true });
    expect(deviceVars.find((v) => v.name === 'DB_PASSWORD')).toMatchObject({
      value: null,
      secret: true,
      overridesFleet: true,
    });
    const byDeviceId = await items(`/api/v1/devices/${seed.alpha.device.id}/variables`);
    expect(byDeviceId.find((v) => v.name === 'DB_PASSWORD')?.value).toBeNull();

    const audit = check(await server.api('GET', '/api/v1/audit?orgId=1&limit=500', { token: admin }), 200);
    const variableEvents = audit.items.filter((e: { action: string }) => e.action.includes('variable'));
    expect(variableEvents.length).toBeGreaterThanOrEqual(3);
    const everything = JSON.stringify({ answers: answers.map((a) => a.body), fleetVars, deviceVars, audit });
    for (const secret of [fleetSecret, deviceSecret, changedSecret]) expect(everything).not.toContain(secret);
    const auditRows = await server.database.db.selectFrom('audit_events').selectAll().execute();
    for (const secret of [fleetSecret, deviceSecret, changedSecret]) {
      expect(JSON.stringify(auditRows)).not.toContain(secret);
    }
  });

  it('show their value again only once rewritten as not secret', async () => {
    check(await put(`${fleetUrl}/WAS_SECRET`, 'hidden-value-91', true), 200);
    const plain = check(await put(`${fleetUrl}/WAS_SECRET`, 'visible-value', false), 200);
    expect(plain).toMatchObject({ value: 'visible-value', secret: false });
    expect((await items(fleetUrl)).find((v) => v.name === 'WAS_SECRET')?.value).toBe('visible-value');
  });
});

describe('variable names', () => {
  it('must be environment variable names outside the FLEETGATE_ prefix', async () => {
    for (const name of [
      '1ST_VALUE',
      'FLEETGATE_TOKEN',
      'fleetgate_token',
      'MY-VAR',
      'HAS%20SPACE',
      'A'.repeat(129),
    ]) {
      const onFleet = await put(`${fleetUrl}/${name}`, 'x');
      expect(onFleet.status, name).toBe(400);
      expect(onFleet.body.error.code).toBe('validation_failed');
      expect((await put(`${deviceUrl}/${name}`, 'x')).status, name).toBe(400);
    }
    const names = [...(await items(fleetUrl)), ...(await items(deviceUrl))].map((v) => v.name);
    expect(
      names.some((n) => n.startsWith('1') || n.toUpperCase().startsWith('FLEETGATE_') || n.includes('-')),
    ).toBe(false);
    for (const name of ['_UNDERSCORE', 'lower_case', 'A1', `A${'b'.repeat(127)}`]) {
      expect((await put(`${fleetUrl}/${name}`, 'x')).status, name).toBe(200);
    }
  });

  it('refuse __proto__ with a clear 400, while names like constructor and toString are delivered like any other', async () => {
    for (const url of [fleetUrl, deviceUrl]) {
      const answer = await put(`${url}/__proto__`, 'x');
      expect(answer.status, url).toBe(400);
      expect(answer.body.error.message).toMatch(/"__proto__" is a reserved name/);
    }
    for (const name of ['constructor', 'toString', 'prototype', 'hasOwnProperty']) {
      expect((await put(`${fleetUrl}/${name}`, `fleet ${name}`)).status, name).toBe(200);
    }
    expect((await put(`${deviceUrl}/toString`, 'device toString')).status).toBe(200);
    const delivered = (
      await effectiveVariablesOf(server.database.db, server.app.deps.secrets, [seed.alpha.device.id])
    ).get(seed.alpha.device.id)!.variables;
    expect(delivered).toMatchObject({
      constructor: 'fleet constructor',
      toString: 'device toString',
      prototype: 'fleet prototype',
      hasOwnProperty: 'fleet hasOwnProperty',
    });
    expect(Object.hasOwn(delivered, '__proto__')).toBe(false);
    for (const name of ['constructor', 'toString', 'prototype', 'hasOwnProperty'])
      check(await server.api('DELETE', `${fleetUrl}/${name}`, { token: admin }), 204);
    check(await server.api('DELETE', `${deviceUrl}/toString`, { token: admin }), 204);
  });

  it('stored under __proto__ before it was refused stay own keys of the set pushed to the device', async () => {
    // Rows written before the name was refused at the edge: the objects built from them keep every name.
    const fleetId = seed.alpha.fleet2.id;
    const deviceId = seed.alpha.device2.id;
    await server.database.db
      .insertInto('fleet_variables')
      .values({ fleet_id: fleetId, name: '__proto__', value: 'from the fleet', secret: 0, updated_at: 1 })
      .execute();
    try {
      const delivered = (
        await effectiveVariablesOf(server.database.db, server.app.deps.secrets, [deviceId])
      ).get(deviceId)!.variables;
      expect(Object.hasOwn(delivered, '__proto__')).toBe(true);
      expect(Object.getOwnPropertyDescriptor(delivered, '__proto__')?.value).toBe('from the fleet');
      expect(Object.getPrototypeOf(delivered)).toBe(Object.prototype);
    } finally {
      await server.database.db.deleteFrom('fleet_variables').where('fleet_id', '=', fleetId).execute();
    }
  });

  it('refuse or keep faithfully a value holding a NUL character, never a 5xx', async () => {
    const value = 'line\u0000rest';
    const answer = await put(`${fleetUrl}/WITH_NUL`, value);
    expect(answer.status, JSON.stringify(answer.body)).toBeLessThan(500);
    const stored = (await items(fleetUrl)).find((v) => v.name === 'WITH_NUL');
    if (answer.status === 200) expect(stored?.value).toBe(value);
    else expect(stored).toBeUndefined();
  });

  it('refuse a body that is not {value, secret?}', async () => {
    for (const body of [{}, { value: 1 }, { value: 'x', secret: 'yes' }, { value: 'x', extra: true }]) {
      const answer = await server.api('PUT', `${fleetUrl}/SHAPE`, { token: admin, body });
      expect(answer.status, JSON.stringify(body)).toBe(400);
    }
    expect((await items(fleetUrl)).some((v) => v.name === 'SHAPE')).toBe(false);
  });
});
