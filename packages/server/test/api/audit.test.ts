import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureFirstOwner } from '../../src/features/setup/service.ts';
import { ADMIN_EMAIL, seedTwoOrgs, startTestServer, type TestServer } from '../harness.ts';
import { apiFrom, check } from './helpers.ts';

/** The audit log: every write leaves an event; who may read which events. */
let server: TestServer;
let seed: Awaited<ReturnType<typeof seedTwoOrgs>>;
let admin: string;

interface AuditEvent {
  id: number;
  at: string;
  orgId: number | null;
  actor: { type: string; id: number | null; label: string };
  action: string;
  resourceType: string;
  resourceId: string | null;
  sourceIp: string | null;
  outcome: string;
  details: Record<string, unknown> | null;
}
interface AuditPage {
  items: AuditEvent[];
  total: number;
}

beforeAll(async () => {
  server = await startTestServer();
  seed = await seedTwoOrgs(server);
  admin = server.adminToken;
});

afterAll(async () => {
  await server?.close();
});

async function audit(query: string, token = admin): Promise<AuditPage> {
  return check(await server.api('GET', `/api/v1/audit?limit=500&${query}`, { token }), 200);
}

describe('audit events', () => {
  it('record who did what to which resource, from where, and the outcome', async () => {
    const source = '203.0.113.77';
    const fleet = check(
      await apiFrom(server, source, 'POST', '/api/v1/fleets', {
        token: seed.people.alphaAdmin.token,
        body: { orgId: 1, name: 'audited-fleet' },
      }),
      201,
    );
    const { items } = await audit(`orgId=1&action=fleet.create&resourceId=${fleet.id}`);
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({
      orgId: 1,
      actor: { type: 'user', id: seed.people.alphaAdmin.userId, label: seed.people.alphaAdmin.email },
      action: 'fleet.create',
      resourceType: 'fleet',
      resourceId: String(fleet.id),
      sourceIp: source,
      outcome: 'success',
      details: { name: 'audited-fleet' },
    });
    expect(Number.isNaN(Date.parse(items[0]!.at))).toBe(false);
  });

  it("record the first start's setup once, as fleetgate's own write", async () => {
    const expected = {
      orgId: 1,
      actor: { type: 'system', id: null, label: 'fleetgate' },
      action: 'setup.first_owner',
      resourceType: 'user',
      sourceIp: null,
      outcome: 'success',
      details: { email: ADMIN_EMAIL },
    };
    expect((await audit('orgId=1&action=setup.first_owner')).items).toMatchObject([expected]);
    // A later start finds the owner and writes nothing.
    expect(await ensureFirstOwner(server.app.deps)).toBeUndefined();
    expect((await audit('orgId=1&action=setup.first_owner')).items).toMatchObject([expected]);
  });

  it('record device changes under the device uuid, with what changed', async () => {
    const device = check(
      await server.api('POST', '/api/v1/devices', {
        token: admin,
        body: { fleetId: seed.alpha.fleet.id, name: 'audited-device' },
      }),
      201,
    );
    check(
      await apiFrom(server, '198.51.100.88', 'PATCH', `/api/v1/devices/${device.id}`, {
        token: seed.people.alphaOperator.token,
        body: { name: 'renamed-device', fleetId: seed.alpha.fleet.id },
      }),
      200,
    );
    expect((await server.api('DELETE', `/api/v1/devices/${device.id}`, { token: admin })).status).toBe(204);

    const { items } = await audit(`orgId=1&resourceType=device&resourceId=${device.uuid}`);
    expect(items.map((e) => e.action)).toEqual(['device.delete', 'device.update', 'device.create']);
    expect(items[1]).toMatchObject({
      actor: { id: seed.people.alphaOperator.userId },
      sourceIp: '198.51.100.88',
      outcome: 'success',
      details: expect.objectContaining({ name: 'renamed-device' }),
    });
    expect(items[2]!.actor.label).toBe(ADMIN_EMAIL);
  });

  it("record a viewer's refused write as denied", async () => {
    const source = '192.0.2.99';
    const refused = await apiFrom(server, source, 'POST', '/api/v1/fleets', {
      token: seed.people.alphaViewer.token,
      body: { orgId: 1, name: 'viewer-fleet' },
    });
    expect(refused.status).toBe(403);
    const refusedTag = await apiFrom(
      server,
      source,
      'PUT',
      `/api/v1/devices/${seed.alpha.device.id}/tags/env`,
      {
        token: seed.people.alphaViewer.token,
        body: { value: 'prod' },
      },
    );
    expect(refusedTag.status).toBe(403);

    const { items } = await audit(`orgId=1&actor=${seed.people.alphaViewer.userId}`);
    const denied = items.filter((e) => e.outcome === 'denied');
    expect(denied.map((e) => e.action).sort()).toEqual(['device.tag.set', 'fleet.create']);
    for (const event of denied) {
      expect(event).toMatchObject({
        orgId: 1,
        actor: { type: 'user', id: seed.people.alphaViewer.userId },
        sourceIp: source,
      });
    }
    expect(
      (await audit('orgId=1&action=fleet.create')).items.some((e) => e.details?.name === 'viewer-fleet'),
    ).toBe(false);
  });

  it('record failed sign-ins, which the account owner sees in their own log', async () => {
    const source = '198.51.100.123';
    const failed = await apiFrom(server, source, 'POST', '/api/v1/auth/login', {
      body: { email: seed.people.alphaOperator.email, password: 'a wrong guess' },
    });
    expect(failed.status).toBe(401);
    const own = await audit('action=auth.login', seed.people.alphaOperator.token);
    expect(own.items).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          outcome: 'failure',
          sourceIp: source,
          resourceId: String(seed.people.alphaOperator.userId),
        }),
      ]),
    );
  });
});

describe('server-wide audit events (those of no organization)', () => {
  /** A wrong-password sign-in as alphaOperator and one for an account that does not exist, each from its own address. */
  async function failSignIns() {
    const wrongPassword = await apiFrom(server, '198.51.100.201', 'POST', '/api/v1/auth/login', {
      body: { email: seed.people.alphaOperator.email, password: 'not the password' },
    });
    const unknownAccount = await apiFrom(server, '198.51.100.202', 'POST', '/api/v1/auth/login', {
      body: { email: 'nobody-here@example.test', password: 'whatever it is' },
    });
    expect([wrongPassword.status, unknownAccount.status]).toEqual([401, 401]);
  }
  const isFailedSignIn = (event: AuditEvent, sourceIp: string) =>
    event.action === 'auth.login' && event.outcome === 'failure' && event.sourceIp === sourceIp;

  it("show a server administrator everyone's failed sign-ins, in the default list and with scope=server", async () => {
    await failSignIns();
    for (const query of ['action=auth.login', 'action=auth.login&scope=server']) {
      const { items } = await audit(query);
      const wrongPassword = items.find((e) => isFailedSignIn(e, '198.51.100.201'));
      expect(wrongPassword, query).toMatchObject({
        orgId: null,
        actor: { type: 'user', id: seed.people.alphaOperator.userId },
        resourceId: String(seed.people.alphaOperator.userId),
      });
      expect(
        items.find((e) => isFailedSignIn(e, '198.51.100.202')),
        query,
      ).toMatchObject({ orgId: null, actor: { type: 'anonymous', id: null }, resourceId: null });
    }
  });

  it('with scope=server, are the only events listed', async () => {
    const serverWide = await audit('scope=server');
    expect(serverWide.total).toBeGreaterThan(0);
    expect(serverWide.items.every((e) => e.orgId === null)).toBe(true);
    // The seed's user creation is one; the organization's fleets are not.
    expect(serverWide.items.some((e) => e.action === 'user.create')).toBe(true);
    expect(serverWide.items.some((e) => e.action === 'fleet.create')).toBe(false);
    // The default list holds them and the organizations' events; orgId narrows to one organization's.
    const everything = await audit('');
    const listed = new Set(everything.items.map((e) => e.id));
    expect(serverWide.items.filter((e) => !listed.has(e.id))).toEqual([]);
    expect(everything.items.some((e) => e.orgId === 1)).toBe(true);
    expect((await audit('orgId=1')).items.every((e) => e.orgId === 1)).toBe(true);
  });

  it("stay hidden from an organization's admin, who may not ask for them", async () => {
    await failSignIns();
    const theirs = await audit('action=auth.login', seed.people.alphaAdmin.token);
    expect(theirs.items.some((e) => isFailedSignIn(e, '198.51.100.201'))).toBe(false);
    expect(theirs.items.some((e) => isFailedSignIn(e, '198.51.100.202'))).toBe(false);
    expect(theirs.items.every((e) => e.actor.id === seed.people.alphaAdmin.userId)).toBe(true);

    const refused = await server.api('GET', '/api/v1/audit?scope=server', {
      token: seed.people.alphaAdmin.token,
    });
    expect(refused.status).toBe(403);
    expect(refused.body.error.message).toMatch(/server administrators/);
  });

  it('are not asked for together with an organization', async () => {
    const answer = await server.api('GET', '/api/v1/audit?scope=server&orgId=1', { token: admin });
    expect(answer.status).toBe(400);
    expect(answer.body.error.message).toMatch(/scope=server .*orgId/);
    expect((await server.api('GET', '/api/v1/audit?scope=everything', { token: admin })).status).toBe(400);
  });
});

describe('filtering the audit log', () => {
  it('by actor e-mail or id, action and resource type', async () => {
    const byEmail = await audit(
      `orgId=1&actor=${encodeURIComponent(seed.people.alphaAdmin.email.toUpperCase())}`,
    );
    expect(byEmail.total).toBeGreaterThan(0);
    expect(byEmail.items.every((e) => e.actor.label === seed.people.alphaAdmin.email)).toBe(true);
    const byId = await audit(`orgId=1&actor=${seed.people.alphaAdmin.userId}`);
    expect(byId.items.map((e) => e.id)).toEqual(byEmail.items.map((e) => e.id));

    const members = await audit('orgId=1&action=member.add');
    // The seed added four people to alpha.
    expect(members.total).toBeGreaterThanOrEqual(4);
    expect(members.items.every((e) => e.action === 'member.add' && e.resourceType === 'membership')).toBe(
      true,
    );

    const fleets = await audit('orgId=1&resourceType=fleet');
    expect(fleets.total).toBeGreaterThan(0);
    expect(fleets.items.every((e) => e.resourceType === 'fleet')).toBe(true);
    expect((await audit('orgId=1&action=no.such.action')).total).toBe(0);
  });

  it('by time: since is inclusive, until exclusive', async () => {
    const all = await audit('orgId=1');
    const pivot = all.items[Math.floor(all.items.length / 2)]!;
    const at = Date.parse(pivot.at);

    const since = await audit(`orgId=1&since=${encodeURIComponent(pivot.at)}`);
    expect(since.items.map((e) => e.id)).toContain(pivot.id);
    expect(since.items.every((e) => Date.parse(e.at) >= at)).toBe(true);

    const until = await audit(`orgId=1&until=${encodeURIComponent(pivot.at)}`);
    expect(until.items.map((e) => e.id)).not.toContain(pivot.id);
    expect(until.items.every((e) => Date.parse(e.at) < at)).toBe(true);
    expect(since.total + until.total).toBe(all.total);

    const future = new Date(Date.now() + 86_400_000).toISOString();
    expect((await audit(`orgId=1&since=${encodeURIComponent(future)}`)).total).toBe(0);
    expect((await server.api('GET', '/api/v1/audit?since=yesterday-ish', { token: admin })).status).toBe(400);
  });

  it('finds nothing, without a 5xx, for filters that match no event', async () => {
    for (const query of [
      'actor=99999999999999',
      `actor=${encodeURIComponent('nobody\u0000@example.test')}`,
      `resourceId=${encodeURIComponent('x\u0000y')}`,
      `action=${encodeURIComponent('fleet.create\u0000')}`,
    ]) {
      const answer = await server.api('GET', `/api/v1/audit?${query}`, { token: admin });
      expect([200, 400], `${query} → ${answer.status} ${JSON.stringify(answer.body)}`).toContain(
        answer.status,
      );
      if (answer.status === 200) expect(answer.body.total, query).toBe(0);
    }
  });

  it('answers newest first, in pages', async () => {
    const all = await audit('orgId=1');
    const ids = all.items.map((e) => e.id);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    const second = check(
      await server.api('GET', '/api/v1/audit?orgId=1&limit=3&page=2', { token: admin }),
      200,
    );
    expect(second.total).toBe(all.total);
    expect(second.items.map((e: AuditEvent) => e.id)).toEqual(ids.slice(3, 6));
  });
});

describe('reading the audit log', () => {
  it('is refused to viewers for the organization, who see only their own events', async () => {
    const orgLog = await server.api('GET', '/api/v1/audit?orgId=1', { token: seed.people.alphaViewer.token });
    expect(orgLog.status).toBe(403);

    const own = await audit('', seed.people.alphaViewer.token);
    expect(own.total).toBeGreaterThan(0);
    expect(own.items.every((e) => e.actor.id === seed.people.alphaViewer.userId)).toBe(true);
    expect(own.items.some((e) => e.outcome === 'denied')).toBe(true);
  });

  it('is refused to a fleet-narrowed operator for the organization', async () => {
    const answer = await server.api('GET', '/api/v1/audit?orgId=1', {
      token: seed.people.alphaFleetOperator.token,
    });
    expect(answer.status).toBe(403);
  });

  it("is open to the organization's admins, with everyone's events", async () => {
    const log = await audit('orgId=1', seed.people.alphaAdmin.token);
    const actors = new Set(log.items.map((e) => e.actor.label));
    expect(actors.has(ADMIN_EMAIL)).toBe(true);
    expect(actors.has(seed.people.alphaViewer.email)).toBe(true);
  });

  it("shows another organization's owner none of alpha's events", async () => {
    const beta = seed.people.betaOwner.token;
    const theirs = await audit('', beta);
    expect(theirs.total).toBeGreaterThan(0);
    expect(theirs.items.some((e) => e.orgId === 1)).toBe(false);
    const alphaActors = [ADMIN_EMAIL, seed.people.alphaAdmin.email, seed.people.alphaViewer.email];
    expect(theirs.items.some((e) => alphaActors.includes(e.actor.label))).toBe(false);
    expect(theirs.items.some((e) => e.orgId === seed.beta.orgId)).toBe(true);

    expect((await server.api('GET', '/api/v1/audit?orgId=1', { token: beta })).status).toBe(404);
    expect((await audit(`actor=${encodeURIComponent(ADMIN_EMAIL)}`, beta)).total).toBe(0);
    expect((await audit(`resourceId=${seed.alpha.device.uuid}`, beta)).total).toBe(0);
  });

  it('needs a signed-in user', async () => {
    expect((await server.api('GET', '/api/v1/audit')).status).toBe(401);
  });
});
