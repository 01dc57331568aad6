import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiFrom, check } from '../api/helpers.ts';
import { signedAuthRequest, type TestKey, testKey } from '../auth-sets/signing.ts';
import { type ApiAnswer, dialectUnderTest, startTestServer, type TestServer } from '../harness.ts';
import { basic, createProvisioningKey, newDeviceIdentity, register } from './helpers.ts';

/** The organization's device limit is one rule, whichever way devices arrive, however many arrive at once. */
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});

afterAll(async () => {
  await server?.close();
});

const LIMIT = 5;
/** Attempts per way in, all at once: every way alone could fill the organization. One more of each is kept. */
const PER_PATH = LIMIT;

/** A device's signed auth request (Mender wire format), from its own address. */
async function authRequest(
  key: TestKey,
  identity: Record<string, string>,
  source: string,
  tenantToken?: string,
): Promise<ApiAnswer> {
  const { payload, headers } = signedAuthRequest(key, identity, tenantToken ? { tenantToken } : {});
  const r = await server.app.inject({
    method: 'POST',
    url: '/api/devices/v1/authentication/auth_requests',
    payload,
    headers,
    remoteAddress: source,
  });
  const isJson = (r.headers['content-type'] ?? '').toString().includes('json');
  return { status: r.statusCode, body: isJson && r.body ? JSON.parse(r.body) : r.body, headers: r.headers };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe(`the device limit (${dialectUnderTest})`, () => {
  it('admits exactly the limit when devices arrive through every way in at once', async () => {
    const admin = server.adminToken;
    const orgId = 1;
    const fleet = check(
      await server.api('POST', '/api/v1/fleets', {
        token: admin,
        body: { orgId, name: 'limited', defaultDeviceType: 'generic-amd64' },
      }),
      201,
    );
    const { key: provisioningKey } = await createProvisioningKey(server, fleet.id);

    // Devices waiting to be let in: pending auth sets (asked with the fleet's provisioning key as tenant token),
    // preauthorized ones, and recovery candidates (a lost database's devices presenting their keys).
    const pendingKeys = range(PER_PATH + 1).map(() => testKey('ed25519'));
    for (const [i, key] of pendingKeys.entries())
      expect(
        (await authRequest(key, { mac: `02:00:00:01:00:0${i}` }, '10.8.1.1', provisioningKey)).status,
      ).toBe(401);
    const pending = check(
      await server.api('GET', `/api/v1/auth-sets?status=pending&orgId=${orgId}`, { token: admin }),
      200,
    ).items as { id: number }[];
    expect(pending).toHaveLength(PER_PATH + 1);

    const preauthorized = range(PER_PATH + 1).map((i) => ({
      key: testKey('ed25519'),
      identity: { mac: `02:00:00:02:00:0${i}` },
    }));
    const preauth = check(
      await server.api('POST', '/api/v1/auth-sets/preauthorize', {
        token: admin,
        body: {
          fleetId: fleet.id,
          devices: preauthorized.map((p) => ({ identity: p.identity, publicKey: p.key.publicPem })),
        },
      }),
      200,
    );
    expect(preauth.created).toBe(PER_PATH + 1);

    const lost = range(PER_PATH + 1).map(() => newDeviceIdentity());
    for (const device of lost)
      check(
        await apiFrom(server, '10.8.3.1', 'GET', '/api/v1/device/self', {
          headers: basic(device.uuid, device.apiKey),
        }),
        401,
      );
    const queue = check(
      await server.api('GET', '/api/v1/recovery-candidates?limit=500', { token: admin }),
      200,
    ).items as { id: number; uuid: string }[];
    const candidateIds = lost.map((d) => queue.find((c) => c.uuid === d.uuid)!.id);

    // Room for LIMIT: the preauthorized devices wait outside the limit until they are accepted.
    expect(
      check(
        await server.api('PUT', `/api/v1/orgs/${orgId}/device-limit`, {
          token: admin,
          body: { limit: LIMIT },
        }),
        200,
      ),
    ).toEqual({ orgId, limit: LIMIT, accepted: 0 });

    // Each way in, as one attempt: true when the device was admitted, false when the limit refused it (and
    // nothing else: any other answer fails the test).
    const refusedByLimit = (answer: ApiAnswer) => {
      expect(answer.status, JSON.stringify(answer.body)).toBe(422);
      expect(answer.body.error.details.reason).toBe('device_limit');
      return false;
    };
    const ways: Record<string, (i: number) => Promise<boolean>> = {
      rest: async (i) => {
        const answer = await server.api('POST', '/api/v1/devices', {
          token: admin,
          body: { fleetId: fleet.id, name: `made-${i}` },
        });
        return answer.status === 201 || refusedByLimit(answer);
      },
      register: async (i) => {
        const identity = newDeviceIdentity();
        const answer = await register(
          server,
          provisioningKey,
          { uuid: identity.uuid, device_type: 'generic-amd64', api_key: identity.apiKey },
          `10.8.4.${i + 1}`,
        );
        return answer.status === 201 || refusedByLimit(answer);
      },
      accept: async (i) => {
        const answer = await server.api('PUT', `/api/v1/auth-sets/${pending[i]!.id}/status`, {
          token: admin,
          body: { status: 'accepted' },
        });
        return answer.status === 200 || refusedByLimit(answer);
      },
      'preauthorized auth request': async (i) => {
        const { key, identity } = preauthorized[i]!;
        const answer = await authRequest(key, identity, `10.8.5.${i + 1}`);
        if (answer.status === 200) return true;
        expect(answer.status, JSON.stringify(answer.body)).toBe(401);
        expect(answer.body.error.details.reason).toBe('device_limit');
        return false;
      },
      adopt: async (i) => {
        const id = candidateIds[i]!;
        const answer = await server.api('POST', '/api/v1/recovery-candidates/adopt', {
          token: admin,
          body: { ids: [id], fleetId: fleet.id },
        });
        if (answer.status !== 200) return refusedByLimit(answer);
        expect(answer.body.items).toMatchObject([{ id, outcome: 'adopted' }]);
        return true;
      },
      import: async () => {
        const { uuid, apiKey } = newDeviceIdentity();
        const [item] = check(
          await server.api('POST', '/api/v1/devices/import', {
            token: admin,
            body: { items: [{ uuid, apiKey, fleetId: fleet.id }] },
          }),
          200,
        ).items;
        if (item.outcome === 'created') return true;
        expect(item).toMatchObject({
          outcome: 'failed',
          reason: expect.stringContaining(`device limit (${LIMIT})`),
        });
        return false;
      },
    };

    // Every way in at once, each as many times as would fill the organization on its own.
    const outcomes = await Promise.all(
      Object.entries(ways).flatMap(([way, attempt]) =>
        range(PER_PATH).map(async (i) => ({ way, admitted: await attempt(i) })),
      ),
    );
    const admitted = outcomes.filter((o) => o.admitted).map((o) => o.way);
    expect(outcomes).toHaveLength(6 * PER_PATH);
    expect(admitted, `admitted through: ${admitted.join(', ')}`).toHaveLength(LIMIT);

    // The organization holds exactly the limit, and says so.
    expect(
      check(await server.api('GET', `/api/v1/orgs/${orgId}/device-limit`, { token: admin }), 200),
    ).toEqual({
      orgId,
      limit: LIMIT,
      accepted: LIMIT,
    });
    // Full is full, whichever way the next device comes (each way's spare, kept out of the rush).
    for (const [way, attempt] of Object.entries(ways))
      expect(await attempt(PER_PATH), `${way} after the limit was reached`).toBe(false);
    expect(
      check(await server.api('GET', `/api/v1/orgs/${orgId}/device-limit`, { token: admin }), 200).accepted,
    ).toBe(LIMIT);
  });
});
