import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/infra/crypto/index.ts';
import { ADMIN_EMAIL, startTestServer, type TestServer } from '../harness.ts';
import { apiFrom, check, createUser } from './helpers.ts';

/**
 * Sign-in, sessions, password changes and API keys. The server allows 3 failed sign-ins per (account, source)
 * and 30 per source, so every failing sign-in here comes from a source address of its own (TEST-NET ranges):
 * the harness signs in from 127.0.0.1 and must never be locked out.
 */
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ loginAttempts: 3 });
});

afterAll(async () => {
  await server?.close();
});

const loginFrom = (source: string, email: string, password: string) =>
  apiFrom(server, source, 'POST', '/api/v1/auth/login', { body: { email, password } });

describe('signing in', () => {
  it('answers a session token that identifies the user on /me', async () => {
    await createUser(server, 'alice@example.test', 'alice password 1');
    const body = check(
      await server.api('POST', '/api/v1/auth/login', {
        body: { email: 'alice@example.test', password: 'alice password 1' },
      }),
      200,
    );
    expect(body.token).toMatch(/^fgs_/);
    expect(Date.parse(body.expiresAt)).toBeGreaterThan(Date.now());
    expect(body.user.email).toBe('alice@example.test');

    const me = check(await server.api('GET', '/api/v1/me', { token: body.token }), 200);
    expect(me.email).toBe('alice@example.test');
    expect(me.serverAdmin).toBe(false);

    const admin = check(await server.api('GET', '/api/v1/me', { token: server.adminToken }), 200);
    expect(admin.email).toBe(ADMIN_EMAIL);
    expect(admin.memberships).toEqual([expect.objectContaining({ orgId: 1, role: 'owner', fleetIds: null })]);
  });

  it('refuses /me without a token or with a made-up one', async () => {
    const anonymous = await server.api('GET', '/api/v1/me');
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error.code).toBe('unauthorized');
    expect((await server.api('GET', '/api/v1/me', { token: 'fgs_not-a-real-token' })).status).toBe(401);
    expect((await server.api('GET', '/api/v1/me', { token: 'fgk_not-a-real-key' })).status).toBe(401);
    expect(
      (await server.api('GET', '/api/v1/me', { headers: { authorization: `Basic ${server.adminToken}` } }))
        .status,
    ).toBe(401);
  });

  it('matches the e-mail without regard to case or surrounding spaces', async () => {
    await createUser(server, 'casey@example.test', 'casey password 1');
    const body = check(
      await server.api('POST', '/api/v1/auth/login', {
        body: { email: '  Casey@EXAMPLE.test ', password: 'casey password 1' },
      }),
      200,
    );
    expect(body.user.email).toBe('casey@example.test');
  });

  it('answers a wrong password and an unknown e-mail with the same 401', async () => {
    await createUser(server, 'bob@example.test', 'bob password 1');
    const wrongPassword = await loginFrom('192.0.2.10', 'bob@example.test', 'not bob password');
    const unknownEmail = await loginFrom('192.0.2.11', 'nobody@example.test', 'bob password 1');
    expect(wrongPassword.status).toBe(401);
    expect(unknownEmail.status).toBe(401);
    expect(wrongPassword.body).toEqual(unknownEmail.body);
    expect(wrongPassword.body.error.code).toBe('unauthorized');
    expect(wrongPassword.body).not.toHaveProperty('token');
  });
  it('answers a NUL character in the e-mail like any wrong sign-in, never with a 5xx', async () => {
    const answer = await loginFrom('192.0.2.12', 'bob\u0000@example.test', 'bob password 1');
    expect([400, 401], `${answer.status} ${JSON.stringify(answer.body)}`).toContain(answer.status);
  });
});

describe('failed sign-ins are rate-limited without locking the owner out', () => {
  /** The audit rows of refused sign-ins to `email`'s account, oldest first. */
  const refusedSignIns = async (userId: number) =>
    (
      await server.database.db
        .selectFrom('audit_events')
        .select(['source_ip', 'details'])
        .where('action', '=', 'auth.login')
        .where('outcome', '=', 'failure')
        .where('resource_id', '=', String(userId))
        .orderBy('id')
        .execute()
    ).map((row) => ({
      sourceIp: row.source_ip,
      reason: (typeof row.details === 'string' ? JSON.parse(row.details) : row.details)?.reason,
    }));

  it('stops a source after 3 failures on an account, right password or not, while the owner elsewhere gets in', async () => {
    const victimId = await createUser(server, 'victim@example.test', 'victim password 1');
    const attacker = '198.51.100.1';
    // The e-mail spelled three ways is one account all the same.
    for (const email of ['victim@example.test', 'VICTIM@example.test', ' Victim@Example.Test']) {
      expect((await loginFrom(attacker, email, 'a wrong guess')).status).toBe(401);
    }
    // The attacker's fourth try is refused before the password is looked at: right and wrong answer alike.
    const limited = await loginFrom(attacker, 'victim@example.test', 'victim password 1');
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('rate_limited');
    expect(limited.body).not.toHaveProperty('token');
    const retryAfter = limited.body.error.details.retryAfterSeconds;
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(15 * 60);
    expect(limited.headers['retry-after']).toBe(String(retryAfter));
    const wrongWhileLimited = await loginFrom(attacker, 'victim@example.test', 'another guess');
    expect(wrongWhileLimited.status).toBe(429);
    expect(wrongWhileLimited.body.error.message).toBe(limited.body.error.message);

    // The owner, from their own address, signs in with the right password while the attacker is held back.
    check(await loginFrom('198.51.100.50', 'victim@example.test', 'victim password 1'), 200);

    // Each failure is audited, and so is the refusal for too many (once a minute per source, not per try).
    expect(await refusedSignIns(victimId)).toEqual([
      { sourceIp: attacker, reason: 'wrong_credentials' },
      { sourceIp: attacker, reason: 'wrong_credentials' },
      { sourceIp: attacker, reason: 'wrong_credentials' },
      { sourceIp: attacker, reason: 'rate_limited' },
    ]);
  });

  it('gives each address one wrong guess on an account under a spread-out attack; the owner still gets in', async () => {
    await createUser(server, 'spread@example.test', 'spread password 1');
    // 30 failures from 30 addresses (ten times the allowance per address): the account is under attack.
    for (let i = 1; i <= 30; i++) {
      expect((await loginFrom(`198.18.0.${i}`, 'spread@example.test', `guess ${i}`)).status).toBe(401);
    }
    // An address that already guessed wrong gets no second try, even under its own allowance of 3…
    expect((await loginFrom('198.18.0.1', 'spread@example.test', 'spread password 1')).status).toBe(429);
    // …while an address that never failed (the owner's) signs in.
    check(await loginFrom('198.18.1.1', 'spread@example.test', 'spread password 1'), 200);
  });

  it('stops a source after 30 failures over any accounts (ten times the allowance), only that source', async () => {
    await createUser(server, 'bystander2@example.test', 'bystander password 2');
    const source = '203.0.113.20';
    for (let i = 0; i < 30; i++) {
      expect((await loginFrom(source, `guess${i}@example.test`, 'a wrong guess')).status).toBe(401);
    }
    const limited = await loginFrom(source, 'bystander2@example.test', 'bystander password 2');
    expect(limited.status).toBe(429);
    expect(limited.body.error.details.retryAfterSeconds).toBeGreaterThan(0);

    // The same account from another source signs in: the account itself was never attacked.
    check(await loginFrom('203.0.113.21', 'bystander2@example.test', 'bystander password 2'), 200);
  });

  it('does not let a client escape the limit with X-Forwarded-For', async () => {
    await createUser(server, 'bystander3@example.test', 'bystander password 3');
    const source = '203.0.113.30';
    for (let i = 1; i <= 3; i++) {
      const answer = await apiFrom(server, source, 'POST', '/api/v1/auth/login', {
        body: { email: 'bystander3@example.test', password: 'a wrong guess' },
        headers: { 'x-forwarded-for': `10.9.9.${i}` },
      });
      expect(answer.status).toBe(401);
    }
    const limited = await apiFrom(server, source, 'POST', '/api/v1/auth/login', {
      body: { email: 'bystander3@example.test', password: 'bystander password 3' },
      headers: { 'x-forwarded-for': '10.9.9.99' },
    });
    expect(limited.status).toBe(429);
  });
});

describe('sessions', () => {
  it('logout revokes only the session it was sent with', async () => {
    await createUser(server, 'carol@example.test', 'carol password 1');
    const first = await server.login('carol@example.test', 'carol password 1');
    const second = await server.login('carol@example.test', 'carol password 1');

    expect((await server.api('POST', '/api/v1/auth/logout', { token: first })).status).toBe(204);
    expect((await server.api('GET', '/api/v1/me', { token: first })).status).toBe(401);
    expect((await server.api('POST', '/api/v1/auth/logout', { token: first })).status).toBe(401);
    check(await server.api('GET', '/api/v1/me', { token: second }), 200);
  });

  it('an expired session token is refused', async () => {
    await createUser(server, 'dave@example.test', 'dave password 1');
    const token = await server.login('dave@example.test', 'dave password 1');
    check(await server.api('GET', '/api/v1/me', { token }), 200);
    await server.database.db
      .updateTable('sessions')
      .set({ expires_at: Date.now() - 1000 })
      .where('token_hash', '=', sha256Hex(token))
      .execute();
    expect((await server.api('GET', '/api/v1/me', { token })).status).toBe(401);
  });
});

describe('changing my password', () => {
  it('needs the current password, then ends my other sessions and only the new password works', async () => {
    await createUser(server, 'erin@example.test', 'erin password old');
    const current = await server.login('erin@example.test', 'erin password old');
    const other = await server.login('erin@example.test', 'erin password old');

    const withoutCurrent = await server.api('PATCH', '/api/v1/me', {
      token: current,
      body: { password: 'erin password new' },
    });
    expect(withoutCurrent.status).toBe(403);
    expect(withoutCurrent.body.error.message).toMatch(/currentPassword/);
    const withWrongCurrent = await server.api('PATCH', '/api/v1/me', {
      token: current,
      body: { password: 'erin password new', currentPassword: 'not my password' },
    });
    expect(withWrongCurrent.status).toBe(403);
    // Refused attempts changed nothing: the other session still works.
    check(await server.api('GET', '/api/v1/me', { token: other }), 200);

    const tooShort = await server.api('PATCH', '/api/v1/me', {
      token: current,
      body: { password: 'short', currentPassword: 'erin password old' },
    });
    expect(tooShort.status).toBe(400);

    const changed = check(
      await server.api('PATCH', '/api/v1/me', {
        token: current,
        body: { password: 'erin password new', currentPassword: 'erin password old', name: 'Erin' },
      }),
      200,
    );
    expect(changed.name).toBe('Erin');

    check(await server.api('GET', '/api/v1/me', { token: current }), 200);
    expect((await server.api('GET', '/api/v1/me', { token: other })).status).toBe(401);
    expect((await loginFrom('192.0.2.40', 'erin@example.test', 'erin password old')).status).toBe(401);
    check(await loginFrom('192.0.2.41', 'erin@example.test', 'erin password new'), 200);
  });

  it('changing only my name needs no password and keeps my sessions', async () => {
    await createUser(server, 'frank@example.test', 'frank password 1');
    const current = await server.login('frank@example.test', 'frank password 1');
    const other = await server.login('frank@example.test', 'frank password 1');
    const me = check(
      await server.api('PATCH', '/api/v1/me', { token: current, body: { name: 'Frank' } }),
      200,
    );
    expect(me.name).toBe('Frank');
    check(await server.api('GET', '/api/v1/me', { token: other }), 200);
  });
});

describe('API keys', () => {
  it('are shown once, work as Bearer, record their last use, and stop working when revoked', async () => {
    await createUser(server, 'gina@example.test', 'gina password 1');
    const session = await server.login('gina@example.test', 'gina password 1');

    const created = check(
      await server.api('POST', '/api/v1/api-keys', { token: session, body: { name: 'ci deploys' } }),
      201,
    );
    const key: string = created.key;
    expect(key).toMatch(/^fgk_/);
    expect(created.name).toBe('ci deploys');
    expect(key.startsWith(created.prefix)).toBe(true);
    expect(created.prefix.length).toBeLessThan(key.length);
    expect(created.lastUsedAt).toBeNull();
    expect(created.expiresAt).toBeNull();

    const listed = check(await server.api('GET', '/api/v1/api-keys', { token: session }), 200);
    expect(listed.items).toHaveLength(1);
    expect(listed.items[0]).not.toHaveProperty('key');
    expect(JSON.stringify(listed)).not.toContain(key);
    expect(listed.items[0]).toMatchObject({ id: created.id, name: 'ci deploys', lastUsedAt: null });

    const me = check(await server.api('GET', '/api/v1/me', { token: key }), 200);
    expect(me.email).toBe('gina@example.test');

    const afterUse = check(await server.api('GET', '/api/v1/api-keys', { token: session }), 200);
    expect(afterUse.items[0].lastUsedAt).not.toBeNull();
    expect(Number.isNaN(Date.parse(afterUse.items[0].lastUsedAt))).toBe(false);

    expect((await server.api('DELETE', `/api/v1/api-keys/${created.id}`, { token: session })).status).toBe(
      204,
    );
    expect((await server.api('GET', '/api/v1/me', { token: key })).status).toBe(401);
    const afterRevoke = check(await server.api('GET', '/api/v1/api-keys', { token: session }), 200);
    expect(afterRevoke.items[0].revokedAt).not.toBeNull();
    expect((await server.api('DELETE', `/api/v1/api-keys/${created.id}`, { token: session })).status).toBe(
      404,
    );
  });

  it("cannot be listed or revoked by someone else and never show up in another user's list", async () => {
    await createUser(server, 'hana@example.test', 'hana password 1');
    const hana = await server.login('hana@example.test', 'hana password 1');
    const created = check(
      await server.api('POST', '/api/v1/api-keys', { token: hana, body: { name: 'hana key' } }),
      201,
    );
    const adminList = check(await server.api('GET', '/api/v1/api-keys', { token: server.adminToken }), 200);
    expect(adminList.items.map((k: { id: number }) => k.id)).not.toContain(created.id);
    expect(
      (await server.api('DELETE', `/api/v1/api-keys/${created.id}`, { token: server.adminToken })).status,
    ).toBe(404);
    check(await server.api('GET', '/api/v1/me', { token: created.key }), 200);
  });

  it('an expired key is refused', async () => {
    await createUser(server, 'ivan@example.test', 'ivan password 1');
    const session = await server.login('ivan@example.test', 'ivan password 1');
    const created = check(
      await server.api('POST', '/api/v1/api-keys', {
        token: session,
        body: { name: 'short-lived', expiresInDays: 30 },
      }),
      201,
    );
    expect(Date.parse(created.expiresAt)).toBeGreaterThan(Date.now() + 29 * 86_400_000);
    check(await server.api('GET', '/api/v1/me', { token: created.key }), 200);

    await server.database.db
      .updateTable('api_keys')
      .set({ expires_at: Date.now() - 1000 })
      .where('id', '=', created.id)
      .execute();
    expect((await server.api('GET', '/api/v1/me', { token: created.key })).status).toBe(401);
  });

  it('logout with an API key is refused and leaves the key working', async () => {
    await createUser(server, 'jo@example.test', 'jo password 1');
    const session = await server.login('jo@example.test', 'jo password 1');
    const created = check(
      await server.api('POST', '/api/v1/api-keys', { token: session, body: { name: 'script' } }),
      201,
    );
    expect((await server.api('POST', '/api/v1/auth/logout', { token: created.key })).status).toBe(400);
    check(await server.api('GET', '/api/v1/me', { token: created.key }), 200);
  });
});

describe('service credentials (API keys made for the OpenSSH bastion)', () => {
  it('are made by server administrators only, listed among their keys, and shown once', async () => {
    await createUser(server, 'mona@example.test', 'mona password 1');
    const mona = await server.login('mona@example.test', 'mona password 1');
    const refused = await server.api('POST', '/api/v1/api-keys', {
      token: mona,
      body: { name: 'my bastion', service: 'openssh' },
    });
    expect(refused.status).toBe(403);
    expect(refused.body.error.message).toContain('server administrators');
    expect(check(await server.api('GET', '/api/v1/api-keys', { token: mona }), 200).items).toEqual([]);
    const unknown = await server.api('POST', '/api/v1/api-keys', {
      token: server.adminToken,
      body: { name: 'x', service: 'gitolite' },
    });
    expect(unknown.status).toBe(400);

    const created = check(
      await server.api('POST', '/api/v1/api-keys', {
        token: server.adminToken,
        body: { name: 'bastion sshd', service: 'openssh' },
      }),
      201,
    );
    expect(created).toMatchObject({ name: 'bastion sshd', service: 'openssh', lastUsedAt: null });
    expect(created.key).toMatch(/^fgk_/);
    const listed = check(await server.api('GET', '/api/v1/api-keys', { token: server.adminToken }), 200);
    expect(listed.items.find((k: { id: number }) => k.id === created.id)).toEqual(
      expect.objectContaining({ service: 'openssh', name: 'bastion sshd' }),
    );
    expect(JSON.stringify(listed)).not.toContain(created.key);
    const row = await server.database.db
      .selectFrom('api_keys')
      .selectAll()
      .where('id', '=', created.id)
      .executeTakeFirstOrThrow();
    expect(row.token_hash.trim()).toBe(sha256Hex(created.key));
    expect(JSON.stringify(row)).not.toContain(created.key);
  });

  it('look up SSH keys and nothing else: no account, no devices, no new keys', async () => {
    const { key, id } = check(
      await server.api('POST', '/api/v1/api-keys', {
        token: server.adminToken,
        body: { name: 'bastion 2', service: 'openssh' },
      }),
      201,
    );
    const lookup = check(
      await server.api('GET', `/api/v1/ssh/authorized-keys?login=${ADMIN_EMAIL}`, { token: key }),
      200,
    );
    expect(lookup.items).toEqual([]);
    for (const [method, url, body] of [
      ['GET', '/api/v1/me'],
      ['GET', '/api/v1/devices'],
      ['GET', '/api/v1/orgs'],
      ['GET', '/api/v1/api-keys'],
      ['POST', '/api/v1/api-keys', { name: 'escalate' }],
      ['POST', '/api/v1/auth/logout'],
    ] as const) {
      const answer = await server.api(method, url, { token: key, body });
      expect(answer.status, `${method} ${url}: ${JSON.stringify(answer.body)}`).toBe(403);
      expect(answer.body.error.message).toContain('service credential (openssh)');
    }
    const afterUse = check(await server.api('GET', '/api/v1/api-keys', { token: server.adminToken }), 200);
    expect(afterUse.items.find((k: { id: number }) => k.id === id).lastUsedAt).not.toBeNull();

    check(await server.api('DELETE', `/api/v1/api-keys/${id}`, { token: server.adminToken }), 204);
    const revoked = await server.api('GET', `/api/v1/ssh/authorized-keys?login=${ADMIN_EMAIL}`, {
      token: key,
    });
    expect(revoked.status).toBe(401);
  });

  it('stop working when their creator is no longer a server administrator', async () => {
    const userId = await createUser(server, 'nils@example.test', 'nils password 1');
    const db = server.database.db;
    await db.updateTable('users').set({ is_server_admin: 1 }).where('id', '=', userId).execute();
    const nils = await server.login('nils@example.test', 'nils password 1');
    const { key } = check(
      await server.api('POST', '/api/v1/api-keys', {
        token: nils,
        body: { name: 'nils bastion', service: 'openssh' },
      }),
      201,
    );
    check(await server.api('GET', '/api/v1/ssh/authorized-keys?login=nils', { token: key }), 200);
    await db.updateTable('users').set({ is_server_admin: 0 }).where('id', '=', userId).execute();
    const after = await server.api('GET', '/api/v1/ssh/authorized-keys?login=nils', { token: key });
    expect(after.status).toBe(401);
    expect(after.body.error.message).toContain('no longer a server administrator');
  });
});

describe('secrets at rest', () => {
  it('stores passwords, session tokens and API keys only as hashes', async () => {
    const password = 'kim secret password 1';
    const userId = await createUser(server, 'kim@example.test', password);
    const token = await server.login('kim@example.test', password);
    const key = check(await server.api('POST', '/api/v1/api-keys', { token, body: { name: 'kim key' } }), 201)
      .key as string;
    // A failed sign-in must not store the attempted password either (not even in the audit log).
    expect((await loginFrom('192.0.2.60', 'kim@example.test', 'kim mistyped password')).status).toBe(401);

    const db = server.database.db;
    const users = await db.selectFrom('users').selectAll().execute();
    const sessions = await db.selectFrom('sessions').selectAll().execute();
    const apiKeys = await db.selectFrom('api_keys').selectAll().execute();
    const audit = await db.selectFrom('audit_events').selectAll().execute();
    const everything = JSON.stringify({ users, sessions, apiKeys, audit });
    for (const secret of [password, 'kim mistyped password', token, key]) {
      expect(everything).not.toContain(secret);
    }

    const kim = users.find((u) => u.id === userId)!;
    expect(kim.password_hash).toMatch(/^scrypt\$/);
    expect(sessions.map((s) => s.token_hash.trim())).toContain(sha256Hex(token));
    expect(apiKeys.map((k) => k.token_hash.trim())).toContain(sha256Hex(key));
  });
});
