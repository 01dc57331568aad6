import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_EMAIL, seedTwoOrgs, startTestServer, type TestServer } from '../harness.ts';
import { check, createUser } from './helpers.ts';

/** User accounts: who creates them, who sees whom, who changes and deletes them. */
let server: TestServer;
let seed: Awaited<ReturnType<typeof seedTwoOrgs>>;

beforeAll(async () => {
  server = await startTestServer();
  seed = await seedTwoOrgs(server);
});

afterAll(async () => {
  await server?.close();
});

const emailsIn = (page: { items: { email: string }[] }) => page.items.map((u) => u.email).sort();

describe('creating users', () => {
  it('lets the server admin create a user with a generated password that signs in', async () => {
    const created = check(
      await server.api('POST', '/api/v1/users', {
        token: server.adminToken,
        body: { email: 'Generated@Example.test', name: 'Gen Erated' },
      }),
      201,
    );
    expect(created).toMatchObject({
      email: 'generated@example.test',
      name: 'Gen Erated',
      serverAdmin: false,
    });
    expect(typeof created.password).toBe('string');
    expect(created.password.length).toBeGreaterThanOrEqual(12);

    const token = await server.login('generated@example.test', created.password);
    expect(check(await server.api('GET', '/api/v1/me', { token }), 200).id).toBe(created.id);
  });

  it('answers no password when the admin chose one', async () => {
    const created = check(
      await server.api('POST', '/api/v1/users', {
        token: server.adminToken,
        body: { email: 'chosen@example.test', password: 'a chosen password' },
      }),
      201,
    );
    expect(created).not.toHaveProperty('password');
    await server.login('chosen@example.test', 'a chosen password');
  });

  it('refuses a second account with the same e-mail, in any case', async () => {
    const answer = await server.api('POST', '/api/v1/users', {
      token: server.adminToken,
      body: { email: 'CHOSEN@example.test', password: 'another password' },
    });
    expect(answer.status).toBe(409);
    await server.login('chosen@example.test', 'a chosen password');
  });

  it('refuses a malformed e-mail or a short password with 400', async () => {
    for (const body of [
      { email: 'not-an-email', password: 'long enough password' },
      { email: 'short@example.test', password: 'short' },
      { email: 'extra@example.test', password: 'long enough password', serverAdmin: true },
    ]) {
      const answer = await server.api('POST', '/api/v1/users', { token: server.adminToken, body });
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.body.error.code).toBe('validation_failed');
    }
  });

  it('refuses anyone but the server admin, even organization owners and admins', async () => {
    for (const person of [seed.people.betaOwner, seed.people.alphaAdmin, seed.people.alphaViewer]) {
      const answer = await server.api('POST', '/api/v1/users', {
        token: person.token,
        body: { email: 'sneaky@example.test', password: 'sneaky password' },
      });
      expect(answer.status).toBe(403);
    }
    const search = check(
      await server.api('GET', '/api/v1/users?q=sneaky', { token: server.adminToken }),
      200,
    );
    expect(search.total).toBe(0);
  });
});

describe('seeing users', () => {
  it('shows each person only the people they share an organization with', async () => {
    const betaView = check(
      await server.api('GET', '/api/v1/users', { token: seed.people.betaOwner.token }),
      200,
    );
    expect(emailsIn(betaView)).toEqual(['betaowner@example.test', 'betaviewer@example.test']);
    expect(betaView.total).toBe(2);

    const alphaView = check(
      await server.api('GET', '/api/v1/users?limit=500', { token: seed.people.alphaViewer.token }),
      200,
    );
    const alphaEmails = emailsIn(alphaView);
    expect(alphaEmails).toEqual(
      expect.arrayContaining([ADMIN_EMAIL, 'alphaadmin@example.test', 'alphaviewer@example.test']),
    );
    expect(alphaEmails).not.toContain('betaowner@example.test');
    expect(alphaEmails).not.toContain('betaviewer@example.test');
    expect(alphaView.total).toBe(alphaView.items.length);
  });

  it('shows the server admin everyone', async () => {
    const all = check(await server.api('GET', '/api/v1/users?limit=500', { token: server.adminToken }), 200);
    expect(emailsIn(all)).toEqual(
      expect.arrayContaining([
        'betaowner@example.test',
        'betaviewer@example.test',
        'alphaadmin@example.test',
      ]),
    );
  });

  it("answers 404 for a user outside one's organizations", async () => {
    const answer = await server.api('GET', `/api/v1/users/${seed.people.alphaAdmin.userId}`, {
      token: seed.people.betaOwner.token,
    });
    expect(answer.status).toBe(404);
    const visible = check(
      await server.api('GET', `/api/v1/users/${seed.people.betaViewer.userId}`, {
        token: seed.people.betaOwner.token,
      }),
      200,
    );
    expect(visible.email).toBe('betaviewer@example.test');
  });

  it('filters by text in the e-mail or name, and pages', async () => {
    const found = check(
      await server.api('GET', '/api/v1/users?q=ALPHAADMIN', { token: server.adminToken }),
      200,
    );
    expect(emailsIn(found)).toEqual(['alphaadmin@example.test']);
    const page = check(
      await server.api('GET', '/api/v1/users?limit=2&page=2', { token: server.adminToken }),
      200,
    );
    expect(page.items).toHaveLength(2);
    expect(page.total).toBeGreaterThan(4);
  });
});

describe('changing users', () => {
  it('lets a user change their own name', async () => {
    const changed = check(
      await server.api('PATCH', `/api/v1/users/${seed.people.alphaViewer.userId}`, {
        token: seed.people.alphaViewer.token,
        body: { name: 'Val Viewer' },
      }),
      200,
    );
    expect(changed.name).toBe('Val Viewer');
  });

  it('does not let a user change another user', async () => {
    const before = check(
      await server.api('GET', `/api/v1/users/${seed.people.alphaOperator.userId}`, {
        token: server.adminToken,
      }),
      200,
    );
    const rename = await server.api('PATCH', `/api/v1/users/${seed.people.alphaOperator.userId}`, {
      token: seed.people.alphaViewer.token,
      body: { name: 'Hijacked' },
    });
    expect(rename.status).toBe(403);
    const password = await server.api('PATCH', `/api/v1/users/${seed.people.alphaOperator.userId}`, {
      token: seed.people.alphaAdmin.token,
      body: { password: 'taken over password' },
    });
    expect(password.status).toBe(403);
    const outsider = await server.api('PATCH', `/api/v1/users/${seed.people.alphaOperator.userId}`, {
      token: seed.people.betaOwner.token,
      body: { name: 'Hijacked' },
    });
    expect(outsider.status).toBe(404);

    const after = check(
      await server.api('GET', `/api/v1/users/${seed.people.alphaOperator.userId}`, {
        token: server.adminToken,
      }),
      200,
    );
    expect(after.name).toBe(before.name);
    check(await server.api('GET', '/api/v1/me', { token: seed.people.alphaOperator.token }), 200);
  });

  it("lets the server admin reset someone's password, which ends that person's sessions", async () => {
    const userId = await createUser(server, 'forgetful@example.test', 'forgotten password');
    const session = await server.login('forgetful@example.test', 'forgotten password');
    check(
      await server.api('PATCH', `/api/v1/users/${userId}`, {
        token: server.adminToken,
        body: { password: 'reset by the admin' },
      }),
      200,
    );
    expect((await server.api('GET', '/api/v1/me', { token: session })).status).toBe(401);
    await server.login('forgetful@example.test', 'reset by the admin');
  });
});

describe('deleting users', () => {
  it('refuses to delete the last owner of an organization', async () => {
    const answer = await server.api('DELETE', `/api/v1/users/${seed.people.betaOwner.userId}`, {
      token: server.adminToken,
    });
    expect(answer.status).toBe(409);
    expect(answer.body.error.details.orgIds).toEqual([seed.beta.orgId]);
    check(await server.api('GET', '/api/v1/me', { token: seed.people.betaOwner.token }), 200);
  });

  it('refuses the server admin deleting their own account', async () => {
    expect((await server.api('DELETE', '/api/v1/users/1', { token: server.adminToken })).status).toBe(409);
  });

  it('is for the server admin only', async () => {
    const answer = await server.api('DELETE', `/api/v1/users/${seed.people.betaViewer.userId}`, {
      token: seed.people.betaOwner.token,
    });
    expect(answer.status).toBe(403);
    check(await server.api('GET', '/api/v1/me', { token: seed.people.betaViewer.token }), 200);
  });

  it('removes the account, its memberships and its sessions', async () => {
    const added = check(
      await server.api('POST', '/api/v1/orgs/1/members', {
        token: server.adminToken,
        body: { email: 'departing@example.test', role: 'operator' },
      }),
      201,
    );
    const token = await server.login('departing@example.test', added.password);
    expect(
      (await server.api('DELETE', `/api/v1/users/${added.userId}`, { token: server.adminToken })).status,
    ).toBe(204);
    expect((await server.api('GET', '/api/v1/me', { token })).status).toBe(401);
    expect(
      (await server.api('GET', `/api/v1/users/${added.userId}`, { token: server.adminToken })).status,
    ).toBe(404);
    const members = check(
      await server.api('GET', '/api/v1/orgs/1/members?limit=500', { token: server.adminToken }),
      200,
    );
    expect(members.items.map((m: { userId: number }) => m.userId)).not.toContain(added.userId);
    // The e-mail is free again.
    await createUser(server, 'departing@example.test', 'came back password');
  });
});
