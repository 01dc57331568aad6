import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_EMAIL, ADMIN_PASSWORD, seedTwoOrgs, startTestServer, type TestServer } from '../harness.ts';

/**
 * The browser's side of the API: sign-in by an httpOnly cookie, the origin check on writes the cookie signs in,
 * and the live event stream, whose events reach only the people who may read what they name.
 */
let server: TestServer;
let seeded: Awaited<ReturnType<typeof seedTwoOrgs>>;
let url: string;

beforeAll(async () => {
  server = await startTestServer();
  seeded = await seedTwoOrgs(server);
  url = await server.app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await server?.close();
});

const host = () => new URL(url).host;

async function cookieLogin(): Promise<string> {
  const answer = await server.api('POST', '/api/v1/auth/login', {
    body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD, cookie: true },
    headers: { origin: url, host: host() },
  });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  const setCookie = String(answer.headers['set-cookie']);
  return /fleetgate_session=([^;]+)/.exec(setCookie)![1]!;
}

describe('browser sign-in', () => {
  it('sets an httpOnly SameSite=Strict cookie and leaves the token out of the answer', async () => {
    const answer = await server.api('POST', '/api/v1/auth/login', {
      body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD, cookie: true },
      headers: { origin: url, host: host() },
    });
    expect(answer.status).toBe(200);
    expect(answer.body.token).toBeUndefined();
    expect(answer.body.user.email).toBe(ADMIN_EMAIL);
    expect(String(answer.headers['set-cookie'])).toMatch(
      /^fleetgate_session=fgs_[^;]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/,
    );
  });

  it('refuses to sign a browser in from another origin', async () => {
    const answer = await server.api('POST', '/api/v1/auth/login', {
      body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD, cookie: true },
      headers: { origin: 'http://evil.example', host: host() },
    });
    expect(answer.status).toBe(403);
    expect(answer.headers['set-cookie']).toBeUndefined();
  });

  it('reads with the cookie, and writes with it only from its own origin', async () => {
    const token = await cookieLogin();
    const cookie = `fleetgate_session=${token}`;
    const me = await server.api('GET', '/api/v1/me', { headers: { cookie } });
    expect(me.status).toBe(200);
    expect(me.body.memberships[0].actions).toContain('fleet.create');

    const body = { orgId: 1, name: 'from-the-browser' };
    for (const headers of <Record<string, string>[]>[
      { cookie },
      { cookie, origin: 'http://evil.example', host: host() },
      { cookie, 'sec-fetch-site': 'cross-site', origin: url, host: host() },
      { cookie, origin: 'null', host: host() },
    ]) {
      const refused = await server.api('POST', '/api/v1/fleets', { body, headers });
      expect(refused.status, JSON.stringify(headers)).toBe(403);
      expect(refused.body.error.message).toContain('cross-site request refused');
    }
    const sameOrigin = await server.api('POST', '/api/v1/fleets', {
      body,
      headers: { cookie, origin: url, host: host(), 'sec-fetch-site': 'same-origin' },
    });
    expect(sameOrigin.status).toBe(201);
    // Scripts keep using Authorization, without any origin.
    const bearer = await server.api('POST', '/api/v1/fleets', {
      token: server.adminToken,
      body: { orgId: 1, name: 'from-a-script' },
    });
    expect(bearer.status).toBe(201);
  });

  it('signs out: the session is revoked on the server and the cookie removed', async () => {
    const token = await cookieLogin();
    const cookie = `fleetgate_session=${token}`;
    const out = await server.api('POST', '/api/v1/auth/logout', {
      headers: { cookie, origin: url, host: host() },
    });
    expect(out.status).toBe(204);
    expect(String(out.headers['set-cookie'])).toContain(
      'fleetgate_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0',
    );
    expect((await server.api('GET', '/api/v1/me', { headers: { cookie } })).status).toBe(401);
  });
});

/** An open `GET /api/v1/events`, read as text as it arrives. */
async function openEvents(token: string) {
  const abort = new AbortController();
  const response = await fetch(`${url}/api/v1/events`, {
    headers: { authorization: `Bearer ${token}` },
    signal: abort.signal,
  });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toContain('text/event-stream');
  let text = '';
  const reading = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body!) text += decoder.decode(chunk as Uint8Array, { stream: true });
    } catch {
      // Aborted.
    }
  })();
  return {
    text: () => text,
    events: (name: string) =>
      [...text.matchAll(new RegExp(`event: ${name}\\ndata: (.*)\\n`, 'g'))].map((m) => JSON.parse(m[1]!)),
    async close() {
      abort.abort();
      await reading;
    },
  };
}

describe('live events', () => {
  it("tell each person of changes and device presence in their organizations, and nothing of others'", async () => {
    const alphaViewer = await openEvents(seeded.people.alphaViewer.token);
    const fleetOperator = await openEvents(seeded.people.alphaFleetOperator.token);
    const beta = await openEvents(seeded.people.betaOwner.token);
    await expect.poll(() => beta.text()).toContain(': connected');

    const renamed = await server.api('PATCH', `/api/v1/devices/${seeded.alpha.device2.uuid}`, {
      token: server.adminToken,
      body: { notes: 'moved to the lobby' },
    });
    expect(renamed.status).toBe(200);
    server.app.deps.events.emit('presence.written', {
      deviceIds: [seeded.alpha.device.id, seeded.alpha.device2.id, seeded.beta.device.id],
    });

    await expect.poll(() => alphaViewer.events('device').length).toBe(2);
    expect(
      alphaViewer
        .events('device')
        .map((d) => d.uuid)
        .sort(),
    ).toEqual([seeded.alpha.device.uuid, seeded.alpha.device2.uuid].sort());
    expect(alphaViewer.events('device')[0]).toEqual(
      expect.objectContaining({ orgId: 1, status: 'never-connected', lastSeenAt: null }),
    );
    expect(alphaViewer.events('change')).toContainEqual({
      action: 'device.update',
      resourceType: 'device',
      orgId: 1,
    });
    // Narrowed to alpha's first fleet: the device of the second fleet is not theirs to see.
    await expect.poll(() => fleetOperator.events('device').length).toBe(1);
    expect(fleetOperator.events('device')[0].uuid).toBe(seeded.alpha.device.uuid);
    await expect.poll(() => beta.events('device').length).toBe(1);
    expect(beta.events('device')[0].uuid).toBe(seeded.beta.device.uuid);
    expect(beta.text()).not.toContain(seeded.alpha.device.uuid);
    expect(beta.events('change')).toEqual([]);
    await Promise.all([alphaViewer.close(), fleetOperator.close(), beta.close()]);
  });

  it('ends the stream when its sign-in is revoked', async () => {
    const token = await server.login(ADMIN_EMAIL, ADMIN_PASSWORD);
    const stream = await openEvents(token);
    await expect.poll(() => stream.text()).toContain(': connected');
    expect((await server.api('POST', '/api/v1/auth/logout', { token })).status).toBe(204);
    await expect
      .poll(() => stream.events('end'))
      .toEqual([{ reason: 'signed out: the session ended or access was removed' }]);
    await stream.close();
  });

  it('is for people only', async () => {
    const answer = await server.api('GET', '/api/v1/events', {});
    expect(answer.status).toBe(401);
  });
});
