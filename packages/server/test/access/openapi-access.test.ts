import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_EMAIL, ADMIN_PASSWORD, type ApiAnswer, startTestServer } from '../harness.ts';
import {
  type AlphaResources,
  alphaRequest,
  betaOwnerPassword,
  namesAlphaOutsidePath,
  type OpenApiDocument,
  type Operation,
  operationsOf,
  seedAlphaResources,
  viewerPassword,
} from '../openapi-cases.ts';

/**
 * Access control for every operation of the OpenAPI document, generated from the document itself: a route
 * added to the server is tested here without anyone listing it, and fails until it has an access rule.
 *
 * Each operation is called with a request that names organization alpha's resources (ids in the path,
 * `orgId`/`fleetId`/device types in the query or body) and a minimal valid body, as:
 *  - nobody (no token, then a token that is not one): 401;
 *  - beta's owner, who belongs to another organization: 404 (see the convention below);
 *  - alpha's viewer, for writes: 403 (the viewer sees alpha's resources but may not change them);
 *  - alpha's owner, for reads: 200 (with alpha's data where beta's answer is checked for leaks), proving the
 *    URL names real resources, so beta's 404 is about access and not about a made-up id; for writes, the
 *    viewer's 403 proves the same.
 *  - a device (its uuid + key, then a device token): 401 on every route not made for devices, which the
 *    document marks with the `device` security scheme;
 * Routes where that rule does not fit (public ones, routes acting on the caller, server-admin and device routes)
 * are listed in PUBLIC_ROUTES and CALLER_SCOPED_ROUTES below, each with its reason and its own rule. Path
 * parameters get alpha's values by name (test/openapi-cases.ts); an unknown name fails the route's tests.
 *
 * The convention, from `authorize` in src/infra/access: a caller who cannot even see a resource gets
 * `not_found`, exactly as for a resource that does not exist, so other organizations' resources do not
 * reveal their existence; `forbidden` (403) only goes to a member who sees the resource but whose role does
 * not allow the action. So an outsider never gets 403 for anything of alpha's. For writes that name alpha in
 * their body (`POST /fleets {orgId}`, `POST /devices {fleetId}`…) that means 404. For lists that take alpha as
 * a query filter, the server answers either 404 (device types, audit) or an empty page (fleets, devices):
 * both are the answer a non-existent organization gets, so both are accepted, as long as nothing of alpha's is
 * in the answer.
 */

/** Routes that answer without authentication, with the reason, and a request that shows they do. */
const PUBLIC_ROUTES: Record<string, { why: string; probe: { url: string; body?: unknown }; status: number }> =
  {
    'POST /api/v1/auth/login': {
      why: 'how a caller gets a token in the first place',
      probe: { url: '/api/v1/auth/login', body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } },
      status: 200,
    },
    'GET /api/v1/openapi.json': {
      why: 'the API description, so clients can be generated without an account (hidden from the document itself)',
      probe: { url: '/api/v1/openapi.json' },
      status: 200,
    },
    'POST /api/v1/device-auth/auth_requests': {
      why: 'a device proves who it is by signing the request (X-MEN-Signature), not with a token; unsigned → 400',
      probe: { url: '/api/v1/device-auth/auth_requests', body: {} },
      status: 400,
    },
    'GET /healthz': {
      why: 'liveness probes carry no credentials (outside /api/v1 and the document)',
      probe: { url: '/healthz' },
      status: 200,
    },
  };

/** What one kind of caller must get: one of these statuses, and on 2xx nothing of alpha's in the body. */
interface Outcome {
  status: readonly number[];
  leakFree?: boolean;
}

interface AccessRule {
  why: string;
  /** Beta's owner, a member of another organization only. */
  outsider: Outcome;
  /** Alpha's viewer; for writes only (reads are open to viewers). */
  viewer?: Outcome;
  /**
   * For reads: who must be served (200) at the same URL, proving it names real resources; by default alpha's
   * owner, whose answer must hold alpha's data whenever the outsider's is checked for leaks.
   */
  control?: { as: 'owner' | 'alphaDevice'; holdsAlpha: boolean; status?: number };
  /** The route ends the caller's session: callers ask with a throwaway one. */
  throwawaySession?: boolean;
}

/**
 * Routes where "beta gets 404, the viewer 403" would be the wrong rule, each with the rule it follows. Most act
 * on the caller's own things (session, account, keys), so outsiders and viewers get what anyone gets for their
 * own, and never anything of alpha's; a path id naming someone else's key is `not_found` to them. Some need a
 * server-wide role (server administrator) rather than a role in an organization: without it, 403, since no
 * organization's resource is named. Device routes take a device credential, never a user's token.
 * Every other operation gets its rule from what its request names (see `ruleFor`).
 */
const CALLER_SCOPED_ROUTES: Record<string, AccessRule> = {
  'POST /api/v1/auth/logout': {
    why: "ends the caller's own session: anyone signed in may",
    outsider: { status: [204] },
    viewer: { status: [204] },
    throwawaySession: true,
  },
  'GET /api/v1/me': { why: 'the caller themself', outsider: { status: [200], leakFree: true } },
  'GET /api/v1/events': {
    why: "the caller's own live updates: each event goes only to people who may read what it names (test/live)",
    outsider: { status: [200], leakFree: true },
    control: { as: 'owner', holdsAlpha: false },
  },
  'PATCH /api/v1/me': {
    why: "changes the caller's own account: anyone signed in may, whatever their role",
    outsider: { status: [200], leakFree: true },
    viewer: { status: [200] },
  },
  'GET /api/v1/api-keys': { why: "the caller's own API keys", outsider: { status: [200], leakFree: true } },
  'POST /api/v1/api-keys': {
    why: 'creates an API key for the caller, with no more rights than the caller has',
    outsider: { status: [201], leakFree: true },
    viewer: { status: [201] },
  },
  'DELETE /api/v1/api-keys/{keyId}': {
    why: "the key is alpha's owner's: only its owner sees it, so everyone else gets 404",
    outsider: { status: [404] },
    viewer: { status: [404] },
  },
  'GET /api/v1/ssh-keys': { why: "the caller's own SSH keys", outsider: { status: [200], leakFree: true } },
  'POST /api/v1/ssh-keys': {
    why: 'registers an SSH key for the caller',
    outsider: { status: [201], leakFree: true },
    viewer: { status: [201] },
  },
  'DELETE /api/v1/ssh-keys/{keyId}': {
    why: "the key is alpha's owner's: only its owner sees it, so everyone else gets 404",
    outsider: { status: [404] },
    viewer: { status: [404] },
  },
  'GET /api/v1/orgs': { why: "the caller's own organizations", outsider: { status: [200], leakFree: true } },
  'POST /api/v1/orgs': {
    why: 'creates a new organization owned by the caller: anyone signed in may',
    outsider: { status: [201], leakFree: true },
    viewer: { status: [201] },
  },
  'GET /api/v1/users': {
    why: "the people of the caller's organizations",
    outsider: { status: [200], leakFree: true },
  },
  'POST /api/v1/users': {
    why: 'server administrators only; no organization is named, so a missing server role is 403',
    outsider: { status: [403] },
    viewer: { status: [403] },
  },
  'GET /api/v1/recovery-candidates': {
    why: "server administrators only: candidates are server-wide, no organization's",
    outsider: { status: [403] },
    control: { as: 'owner', holdsAlpha: false },
  },
  'POST /api/v1/recovery-candidates/adopt': {
    why: 'server administrators only, refused before the fleet in the body is looked at (so nothing leaks)',
    outsider: { status: [403] },
    viewer: { status: [403] },
  },
  'POST /api/v1/recovery-candidates/discard': {
    why: "server administrators only: candidates are server-wide, no organization's",
    outsider: { status: [403] },
    viewer: { status: [403] },
  },
  'DELETE /api/v1/recovery-candidates/{id}': {
    why: "server administrators only: candidates are server-wide, no organization's",
    outsider: { status: [403] },
    viewer: { status: [403] },
  },
  'GET /api/v1/ssh/authorized-keys': {
    why: "the OpenSSH bastion's service credential and server administrators only: keys are server-wide, no organization's",
    outsider: { status: [403] },
    control: { as: 'owner', holdsAlpha: false },
  },
  'POST /api/v1/auth-sets/reject': {
    why: 'names auth sets by id only: each id the caller cannot see or act on is reported as an error row in a 200 answer, without its details',
    outsider: { status: [200], leakFree: true },
    viewer: { status: [200] },
  },
  'POST /api/v1/devices/register': {
    why: "a device registers with a fleet's provisioning key in Authorization, never with a person's token",
    outsider: { status: [401] },
    viewer: { status: [401] },
  },
  'GET /api/v1/device/self': {
    why: "the calling device itself: a device credential is needed, a person's token gets 401",
    outsider: { status: [401] },
    control: { as: 'alphaDevice', holdsAlpha: true },
  },
  'GET /api/v1/file-transfer': {
    why: "the server's file transfer limit, a setting any signed-in person may read (it names nobody's data)",
    outsider: { status: [200], leakFree: true },
    control: { as: 'owner', holdsAlpha: false },
  },
  'GET /api/v1/devices/{device}/files': {
    why:
      "downloads a file from alpha's device: outsiders 404; alpha's device has no agent here, so its owner gets " +
      '503 (offline), past every access check (test/file-transfer downloads from a real agent, and refuses viewers)',
    outsider: { status: [404] },
    control: { as: 'owner', holdsAlpha: false, status: 503 },
  },
  'POST /api/v1/device/self/key': {
    why: "replaces the calling device's own key: a device credential is needed, a person's token gets 401",
    outsider: { status: [401] },
    viewer: { status: [401] },
  },
};

/**
 * A service credential (an API key made with `service: 'openssh'`, for the OpenSSH bastion) may call only the
 * routes made for it; every other operation refuses it with 403, before looking at anything it names. The
 * exceptions, each with its reason:
 */
const SERVICE_ROUTES: Record<string, { why: string; status: number }> = {
  'GET /api/v1/ssh/authorized-keys': {
    why: "sshd's AuthorizedKeysCommand on the bastion: looking up registered SSH keys is what the key is for",
    status: 200,
  },
  'POST /api/v1/devices/register': {
    why: 'takes a provisioning key in Authorization, not an API key: any API key is an invalid one there',
    status: 401,
  },
};

/** Whether the document says the operation is made for devices (its security is the `device` scheme). */
function isForDevices(op: Operation): boolean {
  return (op.security ?? []).some((requirement) => Object.hasOwn(requirement as object, 'device'));
}

/** The access rule of an operation: from the table above, else from what its request names. */
function ruleFor(op: Operation): AccessRule | undefined {
  const listed = CALLER_SCOPED_ROUTES[op.key];
  if (listed) return listed;
  if (op.pathParameters.length) {
    return {
      why: "its path names alpha's resources",
      outsider: { status: [404] },
      ...(op.isWrite ? { viewer: { status: [403] } } : {}),
    };
  }
  if (namesAlphaOutsidePath(openapi, op)) {
    return op.isWrite
      ? { why: 'its body names alpha', outsider: { status: [404] }, viewer: { status: [403] } }
      : { why: 'its query filters on alpha', outsider: { status: [404, 200], leakFree: true } };
  }
  return undefined;
}

const server = await startTestServer();
const openapi = (await server.api('GET', '/api/v1/openapi.json')).body as OpenApiDocument;
const documented = operationsOf(openapi);
const cases = documented
  .filter((op) => op.path.startsWith('/api/v1/') && !(op.key in PUBLIC_ROUTES))
  .map((op) => ({ ...op, rule: ruleFor(op) }));

let resources: AlphaResources;
/** The OpenSSH bastion's service credential, made by the server administrator. */
let serviceKey: string;
/** Alpha's keyed device's credentials: its uuid + key, and a device token (JWT) issued to it. */
let deviceCredentials: { name: string; token: string }[];
/** Which callers each operation was actually tried with: `METHOD /path as anonymous`… */
const exercised = new Set<string>();

beforeAll(async () => {
  resources = await seedAlphaResources(server);
  const created = await server.api('POST', '/api/v1/api-keys', {
    token: server.adminToken,
    body: { name: 'bastion sshd', service: 'openssh' },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  serviceKey = created.body.key;
  const { keyedDevice, alpha } = resources;
  const deviceToken = await server.app.deps.deviceTokens.issue({
    id: keyedDevice.id,
    uuid: keyedDevice.uuid,
    orgId: alpha.orgId,
  });
  deviceCredentials = [
    { name: 'uuid + device key', token: keyedDevice.credential },
    { name: 'device token', token: deviceToken.token },
  ];
});

afterAll(async () => {
  await server?.close();
});

/** Strings that only alpha's data holds: an answer to an outsider that contains one leaks alpha. */
function alphaMarkers(): string[] {
  const { alpha, keyedDevice } = resources;
  return ['alpha', ADMIN_EMAIL, alpha.device.uuid, alpha.device2.uuid, keyedDevice.uuid];
}

function holdsAlpha(answer: ApiAnswer): boolean {
  const text = JSON.stringify(answer.body).toLowerCase();
  return alphaMarkers().some((marker) => text.includes(marker.toLowerCase()));
}

function shown(op: Operation, answer: ApiAnswer): string {
  return `${op.key} answered ${answer.status} ${JSON.stringify(answer.body).slice(0, 400)}`;
}

async function ask(op: Operation, token: string | undefined): Promise<ApiAnswer> {
  const request = alphaRequest(openapi, op, resources);
  return server.api(op.method, request.url, { token, body: request.body, firstEvent: op.isEventStream });
}

function expectOutcome(op: Operation, answer: ApiAnswer, outcome: Outcome) {
  expect(outcome.status, shown(op, answer)).toContain(answer.status);
  if (answer.status >= 400) {
    expect(answer.body, shown(op, answer)).toEqual({
      error: expect.objectContaining({ code: expect.any(String), message: expect.any(String) }),
    });
  }
  if (outcome.leakFree && answer.status < 300)
    expect(holdsAlpha(answer), `${shown(op, answer)}\nholds one of ${alphaMarkers().join(', ')}`).toBe(false);
}

/** A token for `email` that the test may spend (a route that ends the caller's session). */
async function sessionOf(email: string, password: string, everydayToken: string, throwaway?: boolean) {
  return throwaway ? server.login(email, password) : everydayToken;
}

describe.each(cases)('$key', (op) => {
  it('refuses a caller without a token, or with a token that is not one, with 401', async () => {
    exercised.add(`${op.key} as anonymous`);
    for (const token of [undefined, 'not-a-token']) {
      const answer = await ask(op, token);
      expect(answer.status, shown(op, answer)).toBe(401);
      expect(answer.body.error.code, shown(op, answer)).toBe('unauthorized');
    }
  });

  const served = SERVICE_ROUTES[op.key];
  it(`answers the OpenSSH bastion's service key ${served ? `${served.status} (${served.why})` : '403'}`, async () => {
    exercised.add(`${op.key} as service`);
    const answer = await ask(op, serviceKey);
    expect(answer.status, shown(op, answer)).toBe(served?.status ?? 403);
    if (!served) expect(answer.body.error.code, shown(op, answer)).toBe('forbidden');
  });

  if (!isForDevices(op)) {
    it('refuses a device credential with 401: the route is not made for devices', async () => {
      exercised.add(`${op.key} as device`);
      for (const credential of deviceCredentials) {
        const answer = await ask(op, credential.token);
        expect(answer.status, `${credential.name}: ${shown(op, answer)}`).toBe(401);
        expect(answer.body.error.code, shown(op, answer)).toBe('unauthorized');
      }
    });
  }

  const rule = op.rule;
  if (!rule) {
    it('has an access rule', () => {
      throw new Error(
        `${op.key} names none of alpha's resources in its path, query or body, and is not in ` +
          'CALLER_SCOPED_ROUTES: add it there with the rule it follows',
      );
    });
    return;
  }

  it(`answers the owner of another organization ${rule.outsider.status.join(' or ')} (${rule.why})`, async () => {
    exercised.add(`${op.key} as outsider`);
    const { betaOwner } = resources.people;
    const token = await sessionOf(betaOwner.email, betaOwnerPassword, betaOwner.token, rule.throwawaySession);
    expectOutcome(op, await ask(op, token), rule.outsider);
  });

  const viewerRule = rule.viewer;
  if (op.isWrite) {
    it(`answers alpha's viewer ${viewerRule?.status.join(' or ') ?? '(no rule)'}`, async () => {
      exercised.add(`${op.key} as viewer`);
      if (!viewerRule) throw new Error(`${op.key} is a write without a rule for viewers`);
      const { alphaViewer } = resources.people;
      const token = await sessionOf(
        alphaViewer.email,
        viewerPassword,
        alphaViewer.token,
        rule.throwawaySession,
      );
      expectOutcome(op, await ask(op, token), viewerRule);
    });
  } else {
    const control = rule.control ?? { as: 'owner', holdsAlpha: !!rule.outsider.leakFree };
    const whom = control.as === 'owner' ? "alpha's owner" : "alpha's device";
    it(`serves ${whom}${control.holdsAlpha ? " alpha's data" : ''} at the same URL`, async () => {
      exercised.add(`${op.key} as control`);
      const answer = await ask(
        op,
        control.as === 'owner' ? server.adminToken : resources.keyedDevice.credential,
      );
      expect(answer.status, shown(op, answer)).toBe(control.status ?? 200);
      if (control.holdsAlpha)
        expect(holdsAlpha(answer), `${shown(op, answer)}\nshould hold alpha's data`).toBe(true);
    });
  }
});

describe('routes made for devices', () => {
  it('are exactly the /api/v1/device/ routes, and serve the device', async () => {
    const forDevices = documented.filter(isForDevices).map((op) => op.key);
    expect(forDevices.sort()).toEqual(['GET /api/v1/device/self', 'POST /api/v1/device/self/key']);
    for (const credential of deviceCredentials) {
      const self = await server.api('GET', '/api/v1/device/self', { token: credential.token });
      expect(self.status, `${credential.name}: ${JSON.stringify(self.body)}`).toBe(200);
      expect(self.body.uuid).toBe(resources.keyedDevice.uuid);
    }
  });
});

describe("another organization's device uuids", () => {
  it("are refused at creation exactly like a uuid of the caller's own, so they cannot be probed", async () => {
    const { betaOwner } = resources.people;
    const create = (uuid: string) =>
      server.api('POST', '/api/v1/devices', {
        token: betaOwner.token,
        body: { fleetId: resources.beta.fleet.id, uuid },
      });
    const others = await create(resources.keyedDevice.uuid);
    const own = await create(resources.beta.device.uuid);
    expect(others.status, JSON.stringify(others.body)).toBe(409);
    expect(others.body).toEqual(own.body);
    expect(others.body.error.details).toEqual({ reason: 'uuid_unavailable' });
    expect(holdsAlpha(others), JSON.stringify(others.body)).toBe(false);
  });
});

describe('public routes', () => {
  it.each(Object.entries(PUBLIC_ROUTES))('%s answers without a token', async (key, route) => {
    const method = key.split(' ')[0]!;
    const answer = await server.api(method, route.probe.url, { body: route.probe.body });
    expect(answer.status, `${key} answered ${answer.status}: ${route.why}`).toBe(route.status);
  });

  it('are exactly the operations the document marks as needing no security', () => {
    const open = documented.filter((op) => op.security?.length === 0).map((op) => op.key);
    expect(open.sort()).toEqual(
      Object.keys(PUBLIC_ROUTES)
        .filter((key) => documented.some((op) => op.key === key))
        .sort(),
    );
  });
});

describe('coverage', () => {
  it(`tried every one of the document's ${documented.length} operations (${cases.length} with credentials, ${documented.length - cases.length} public)`, () => {
    expect(documented.length).toBeGreaterThan(0);
    expect(documented.filter((op) => !op.path.startsWith('/api/v1/')).map((op) => op.key)).toEqual([]);
    const expected = cases.flatMap((op) => [
      `${op.key} as anonymous`,
      `${op.key} as service`,
      ...(isForDevices(op) ? [] : [`${op.key} as device`]),
      ...(op.rule ? [`${op.key} as outsider`, `${op.key} as ${op.isWrite ? 'viewer' : 'control'}`] : []),
    ]);
    expect([...exercised].sort()).toEqual(expected.sort());
    expect(cases.length + documented.filter((op) => op.key in PUBLIC_ROUTES).length).toBe(documented.length);
  });

  it('lists no route in its tables that the document does not have', () => {
    const keys = new Set(documented.map((op) => op.key));
    expect(Object.keys(CALLER_SCOPED_ROUTES).filter((key) => !keys.has(key))).toEqual([]);
    expect(Object.keys(SERVICE_ROUTES).filter((key) => !keys.has(key))).toEqual([]);
  });
});
