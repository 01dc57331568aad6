import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedTwoOrgs, startTestServer, type TestServer } from '../harness.ts';
import { check, createUser } from './helpers.ts';

/** Organizations, their members and roles, and memberships narrowed to some fleets. */
let server: TestServer;
let seed: Awaited<ReturnType<typeof seedTwoOrgs>>;

beforeAll(async () => {
  server = await startTestServer();
  seed = await seedTwoOrgs(server);
});

afterAll(async () => {
  await server?.close();
});

/** A fresh user who signs in and creates an organization of their own. */
async function founderWithOrg(email: string, orgName: string) {
  await createUser(server, email, `${email} password`);
  const token = await server.login(email, `${email} password`);
  const org = check(await server.api('POST', '/api/v1/orgs', { token, body: { name: orgName } }), 201);
  return { token, org };
}

async function membersOf(orgId: number, token = server.adminToken) {
  return check(await server.api('GET', `/api/v1/orgs/${orgId}/members`, { token }), 200).items as {
    userId: number;
    email: string;
    role: string;
    fleetIds: number[] | null;
  }[];
}

describe('organizations', () => {
  it('makes the creator its owner', async () => {
    const { token, org } = await founderWithOrg('founder@example.test', 'Acme Robotics, Inc.');
    expect(org.name).toBe('Acme Robotics, Inc.');
    expect(org.slug).toBe('acme-robotics-inc');

    const members = await membersOf(org.id, token);
    expect(members).toEqual([expect.objectContaining({ email: 'founder@example.test', role: 'owner' })]);
    const me = check(await server.api('GET', '/api/v1/me', { token }), 200);
    expect(me.memberships).toEqual([
      expect.objectContaining({ orgId: org.id, role: 'owner', orgSlug: 'acme-robotics-inc', fleetIds: null }),
    ]);
    const listed = check(await server.api('GET', '/api/v1/orgs', { token }), 200);
    expect(listed.items.map((o: { id: number }) => o.id)).toEqual([org.id]);
    expect(listed.total).toBe(1);
  });

  it('gives a derived slug that is taken a numeric suffix, and refuses a chosen slug that is taken', async () => {
    const token = server.adminToken;
    const second = check(
      await server.api('POST', '/api/v1/orgs', { token, body: { name: 'Acme Robotics Inc' } }),
      201,
    );
    const third = check(
      await server.api('POST', '/api/v1/orgs', { token, body: { name: 'ACME robotics -- inc.' } }),
      201,
    );
    expect(second.slug).toBe('acme-robotics-inc-2');
    expect(third.slug).toBe('acme-robotics-inc-3');

    const chosen = await server.api('POST', '/api/v1/orgs', {
      token,
      body: { name: 'Someone Else', slug: 'acme-robotics-inc' },
    });
    expect(chosen.status).toBe(409);
    expect(chosen.body.error.code).toBe('conflict');
    const custom = check(
      await server.api('POST', '/api/v1/orgs', { token, body: { name: 'Other', slug: 'other-co' } }),
      201,
    );
    expect(custom.slug).toBe('other-co');
    expect(
      (await server.api('POST', '/api/v1/orgs', { token, body: { name: 'Bad', slug: 'Not A Slug' } })).status,
    ).toBe(400);
  });

  it('folds accented letters into plain ones when deriving a slug', async () => {
    const org = check(
      await server.api('POST', '/api/v1/orgs', { token: server.adminToken, body: { name: 'Café Zürich' } }),
      201,
    );
    expect(org.slug).toBe('cafe-zurich');
  });

  it('answers 404, not 403, to people outside the organization', async () => {
    const outsider = seed.people.betaOwner.token;
    expect((await server.api('GET', '/api/v1/orgs/1', { token: outsider })).status).toBe(404);
    expect((await server.api('GET', '/api/v1/orgs/1/members', { token: outsider })).status).toBe(404);
    expect(
      (await server.api('PATCH', '/api/v1/orgs/1', { token: outsider, body: { name: 'Mine now' } })).status,
    ).toBe(404);
    expect(check(await server.api('GET', '/api/v1/orgs/1', { token: server.adminToken }), 200).name).toBe(
      'Default',
    );
  });

  it('lets admins rename it but not viewers', async () => {
    const refused = await server.api('PATCH', '/api/v1/orgs/1', {
      token: seed.people.alphaViewer.token,
      body: { name: 'Renamed by a viewer' },
    });
    expect(refused.status).toBe(403);
    const renamed = check(
      await server.api('PATCH', '/api/v1/orgs/1', {
        token: seed.people.alphaAdmin.token,
        body: { name: 'Alpha Ltd' },
      }),
      200,
    );
    expect(renamed.name).toBe('Alpha Ltd');
    expect(check(await server.api('GET', '/api/v1/orgs/1', { token: server.adminToken }), 200).name).toBe(
      'Alpha Ltd',
    );
  });
});

describe('members', () => {
  it('adds an existing user without making them a new password', async () => {
    const userId = await createUser(server, 'existing@example.test', 'existing password');
    const added = check(
      await server.api('POST', '/api/v1/orgs/1/members', {
        token: server.adminToken,
        body: { email: 'Existing@Example.test', role: 'viewer' },
      }),
      201,
    );
    expect(added).toMatchObject({ userId, email: 'existing@example.test', role: 'viewer', fleetIds: null });
    expect(added).not.toHaveProperty('password');

    const token = await server.login('existing@example.test', 'existing password');
    const me = check(await server.api('GET', '/api/v1/me', { token }), 200);
    expect(me.memberships).toEqual([expect.objectContaining({ orgId: 1, role: 'viewer' })]);

    const again = await server.api('POST', '/api/v1/orgs/1/members', {
      token: server.adminToken,
      body: { email: 'existing@example.test', role: 'admin' },
    });
    expect(again.status).toBe(409);
    expect((await membersOf(1)).find((m) => m.userId === userId)?.role).toBe('viewer');
  });

  it('creates an unknown e-mail as a user with a one-time password that signs in', async () => {
    const added = check(
      await server.api('POST', '/api/v1/orgs/1/members', {
        token: seed.people.alphaAdmin.token,
        body: { email: 'newcomer@example.test', role: 'operator', name: 'New Comer' },
      }),
      201,
    );
    expect(added).toMatchObject({ email: 'newcomer@example.test', role: 'operator', name: 'New Comer' });
    expect(typeof added.password).toBe('string');
    expect(added.password.length).toBeGreaterThanOrEqual(12);

    const token = await server.login('newcomer@example.test', added.password);
    const me = check(await server.api('GET', '/api/v1/me', { token }), 200);
    expect(me.id).toBe(added.userId);
    expect(me.memberships).toEqual([expect.objectContaining({ orgId: 1, role: 'operator' })]);
    // The one-time password is never shown again.
    expect(JSON.stringify(await membersOf(1))).not.toContain(added.password);
  });

  it('refuses fleets of another organization in a membership', async () => {
    const answer = await server.api('POST', '/api/v1/orgs/1/members', {
      token: server.adminToken,
      body: { email: 'scoped@example.test', role: 'operator', fleetIds: [seed.beta.fleet.id] },
    });
    expect(answer.status).toBe(400);
    expect((await membersOf(1)).some((m) => m.email === 'scoped@example.test')).toBe(false);
  });

  it('never widens an empty fleet list to the whole organization', async () => {
    // `fleetIds: null` means the whole organization; an empty list names no fleet. Turning one into the other
    // would hand a person every fleet when they were meant to have none.
    const answer = await server.api('POST', '/api/v1/orgs/1/members', {
      token: server.adminToken,
      body: { email: 'nofleets@example.test', role: 'operator', fleetIds: [] },
    });
    if (answer.status === 201) {
      expect(answer.body.fleetIds).toEqual([]);
      const token = await server.login('nofleets@example.test', answer.body.password);
      const devices = check(await server.api('GET', '/api/v1/devices', { token }), 200);
      expect(devices.total).toBe(0);
    } else {
      expect(answer.status).toBe(400);
    }
  });

  it('does not let viewers or operators manage members', async () => {
    for (const person of [seed.people.alphaViewer, seed.people.alphaOperator]) {
      const answer = await server.api('POST', '/api/v1/orgs/1/members', {
        token: person.token,
        body: { email: 'sneaky@example.test', role: 'viewer' },
      });
      expect(answer.status).toBe(403);
    }
    const demote = await server.api('PATCH', `/api/v1/orgs/1/members/${seed.people.alphaAdmin.userId}`, {
      token: seed.people.alphaOperator.token,
      body: { role: 'viewer' },
    });
    expect(demote.status).toBe(403);
    expect((await membersOf(1)).some((m) => m.email === 'sneaky@example.test')).toBe(false);
    expect((await membersOf(1)).find((m) => m.userId === seed.people.alphaAdmin.userId)?.role).toBe('admin');
  });

  it('does not let admins grant, change or remove the owner role', async () => {
    const admin = seed.people.alphaAdmin.token;
    const grantNew = await server.api('POST', '/api/v1/orgs/1/members', {
      token: admin,
      body: { email: 'wannabe-owner@example.test', role: 'owner' },
    });
    expect(grantNew.status).toBe(403);
    const promote = await server.api('PATCH', `/api/v1/orgs/1/members/${seed.people.alphaViewer.userId}`, {
      token: admin,
      body: { role: 'owner' },
    });
    expect(promote.status).toBe(403);
    const demoteOwner = await server.api('PATCH', '/api/v1/orgs/1/members/1', {
      token: admin,
      body: { role: 'viewer' },
    });
    expect(demoteOwner.status).toBe(403);
    const removeOwner = await server.api('DELETE', '/api/v1/orgs/1/members/1', { token: admin });
    expect(removeOwner.status).toBe(403);

    const members = await membersOf(1);
    expect(members.find((m) => m.userId === 1)?.role).toBe('owner');
    expect(members.find((m) => m.userId === seed.people.alphaViewer.userId)?.role).toBe('viewer');
    expect(members.some((m) => m.email === 'wannabe-owner@example.test')).toBe(false);

    // Admins do manage the other roles.
    const changed = check(
      await server.api('PATCH', `/api/v1/orgs/1/members/${seed.people.alphaOperator.userId}`, {
        token: admin,
        body: { role: 'viewer' },
      }),
      200,
    );
    expect(changed.role).toBe('viewer');
    check(
      await server.api('PATCH', `/api/v1/orgs/1/members/${seed.people.alphaOperator.userId}`, {
        token: admin,
        body: { role: 'operator' },
      }),
      200,
    );
  });

  it('keeps at least one owner: the last owner can neither step down nor leave', async () => {
    const { token, org } = await founderWithOrg('solo@example.test', 'Solo Works');
    const me = check(await server.api('GET', '/api/v1/me', { token }), 200);

    const stepDown = await server.api('PATCH', `/api/v1/orgs/${org.id}/members/${me.id}`, {
      token,
      body: { role: 'admin' },
    });
    expect(stepDown.status).toBe(409);
    const leave = await server.api('DELETE', `/api/v1/orgs/${org.id}/members/${me.id}`, { token });
    expect(leave.status).toBe(409);
    expect(await membersOf(org.id, token)).toEqual([
      expect.objectContaining({ userId: me.id, role: 'owner' }),
    ]);

    // With a second owner, the first may go; then the second is the last one.
    const coOwner = check(
      await server.api('POST', `/api/v1/orgs/${org.id}/members`, {
        token,
        body: { email: 'co-owner@example.test', role: 'owner' },
      }),
      201,
    );
    expect((await server.api('DELETE', `/api/v1/orgs/${org.id}/members/${me.id}`, { token })).status).toBe(
      204,
    );
    const coToken = await server.login('co-owner@example.test', coOwner.password);
    expect(
      (await server.api('DELETE', `/api/v1/orgs/${org.id}/members/${coOwner.userId}`, { token: coToken }))
        .status,
    ).toBe(409);
    expect((await server.api('GET', `/api/v1/orgs/${org.id}`, { token })).status).toBe(404);
  });

  it('keeps a whole-organization owner: the last one cannot narrow themselves to some fleets', async () => {
    const { token, org } = await founderWithOrg('narrowing@example.test', 'Narrowing Works');
    const me = check(await server.api('GET', '/api/v1/me', { token }), 200);
    const fleet = check(
      await server.api('POST', '/api/v1/fleets', { token, body: { orgId: org.id, name: 'one-fleet' } }),
      201,
    );
    // An owner narrowed to one fleet may no longer manage members or delete the organization: with no other
    // owner, nobody could ever again.
    const narrow = await server.api('PATCH', `/api/v1/orgs/${org.id}/members/${me.id}`, {
      token,
      body: { fleetIds: [fleet.id] },
    });
    expect(narrow.status).toBe(409);
    const stillManages = await server.api('POST', `/api/v1/orgs/${org.id}/members`, {
      token,
      body: { email: 'helper@example.test', role: 'viewer' },
    });
    expect(stillManages.status).toBe(201);
  });

  it('keeps one owner when two owners leave at the same moment', async () => {
    // Five organizations with two owners each; both owners of each leave concurrently.
    const races = await Promise.all(
      [1, 2, 3, 4, 5].map(async (n) => {
        const first = await founderWithOrg(`racer-a${n}@example.test`, `Race ${n}`);
        const firstId = check(await server.api('GET', '/api/v1/me', { token: first.token }), 200)
          .id as number;
        const second = check(
          await server.api('POST', `/api/v1/orgs/${first.org.id}/members`, {
            token: first.token,
            body: { email: `racer-b${n}@example.test`, role: 'owner' },
          }),
          201,
        );
        const secondToken = await server.login(`racer-b${n}@example.test`, second.password);
        return {
          orgId: first.org.id as number,
          firstId,
          firstToken: first.token,
          secondId: second.userId,
          secondToken,
        };
      }),
    );
    await Promise.all(
      races.flatMap((r) => [
        server.api('DELETE', `/api/v1/orgs/${r.orgId}/members/${r.firstId}`, { token: r.firstToken }),
        server.api('DELETE', `/api/v1/orgs/${r.orgId}/members/${r.secondId}`, { token: r.secondToken }),
      ]),
    );
    for (const r of races) {
      const owners = await server.database.db
        .selectFrom('memberships')
        .select('user_id')
        .where('org_id', '=', r.orgId)
        .where('role', '=', 'owner')
        .execute();
      expect(owners.length, `organization ${r.orgId}`).toBe(1);
    }
  });

  it('lets a member leave, after which the organization is out of sight', async () => {
    const added = check(
      await server.api('POST', '/api/v1/orgs/1/members', {
        token: server.adminToken,
        body: { email: 'leaver@example.test', role: 'operator' },
      }),
      201,
    );
    const token = await server.login('leaver@example.test', added.password);
    check(await server.api('GET', '/api/v1/orgs/1', { token }), 200);

    expect((await server.api('DELETE', `/api/v1/orgs/1/members/${added.userId}`, { token })).status).toBe(
      204,
    );
    expect((await server.api('GET', '/api/v1/orgs/1', { token })).status).toBe(404);
    expect(check(await server.api('GET', '/api/v1/devices', { token }), 200).total).toBe(0);
    expect(check(await server.api('GET', '/api/v1/me', { token }), 200).memberships).toEqual([]);
    expect((await membersOf(1)).some((m) => m.userId === added.userId)).toBe(false);
  });

  it('lets an admin remove a member, and answers 404 for someone who is not one', async () => {
    const added = check(
      await server.api('POST', '/api/v1/orgs/1/members', {
        token: server.adminToken,
        body: { email: 'removed@example.test', role: 'viewer' },
      }),
      201,
    );
    const token = await server.login('removed@example.test', added.password);
    expect(
      (
        await server.api('DELETE', `/api/v1/orgs/1/members/${added.userId}`, {
          token: seed.people.alphaAdmin.token,
        })
      ).status,
    ).toBe(204);
    expect((await server.api('GET', '/api/v1/orgs/1', { token })).status).toBe(404);
    expect(
      (
        await server.api('DELETE', `/api/v1/orgs/1/members/${seed.people.betaOwner.userId}`, {
          token: server.adminToken,
        })
      ).status,
    ).toBe(404);
  });
});

describe('a membership narrowed to one fleet', () => {
  it("lists only that fleet's devices and answers 404 for another fleet's device", async () => {
    const { token } = seed.people.alphaFleetOperator;
    const devices = check(await server.api('GET', '/api/v1/devices', { token }), 200);
    expect(devices.items.map((d: { name: string }) => d.name)).toEqual(['alpha-device']);
    expect(devices.total).toBe(1);

    expect((await server.api('GET', `/api/v1/devices/${seed.alpha.device2.id}`, { token })).status).toBe(404);
    expect((await server.api('GET', `/api/v1/devices/${seed.alpha.device2.uuid}`, { token })).status).toBe(
      404,
    );
    const otherFleet = check(
      await server.api('GET', `/api/v1/devices?fleetId=${seed.alpha.fleet2.id}`, { token }),
      200,
    );
    expect(otherFleet.total).toBe(0);
    expect(otherFleet.items).toEqual([]);
    const patchOther = await server.api('PATCH', `/api/v1/devices/${seed.alpha.device2.id}`, {
      token,
      body: { notes: 'not mine' },
    });
    expect(patchOther.status).toBe(404);

    const fleets = check(await server.api('GET', '/api/v1/fleets', { token }), 200);
    expect(fleets.items.map((f: { id: number }) => f.id)).toEqual([seed.alpha.fleet.id]);
    expect((await server.api('GET', `/api/v1/fleets/${seed.alpha.fleet2.id}`, { token })).status).toBe(404);
  });

  it("lets the operator work on their own fleet's devices but not on the organization", async () => {
    const { token } = seed.people.alphaFleetOperator;
    const patched = check(
      await server.api('PATCH', `/api/v1/devices/${seed.alpha.device.id}`, {
        token,
        body: { notes: 'checked the antenna' },
      }),
      200,
    );
    expect(patched.notes).toBe('checked the antenna');
    const addMember = await server.api('POST', '/api/v1/orgs/1/members', {
      token,
      body: { email: 'friend@example.test', role: 'viewer' },
    });
    expect(addMember.status).toBe(403);
  });
});

describe('deleting an organization', () => {
  it('is refused while it has fleets and works once it is empty', async () => {
    const { token, org } = await founderWithOrg('shortlived@example.test', 'Short Lived');
    const fleet = check(
      await server.api('POST', '/api/v1/fleets', { token, body: { orgId: org.id, name: 'only-fleet' } }),
      201,
    );
    const refused = await server.api('DELETE', `/api/v1/orgs/${org.id}`, { token });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('conflict');
    check(await server.api('GET', `/api/v1/orgs/${org.id}`, { token }), 200);

    expect((await server.api('DELETE', `/api/v1/fleets/${fleet.id}`, { token })).status).toBe(204);
    expect((await server.api('DELETE', `/api/v1/orgs/${org.id}`, { token })).status).toBe(204);
    expect((await server.api('GET', `/api/v1/orgs/${org.id}`, { token })).status).toBe(404);
    expect(check(await server.api('GET', '/api/v1/me', { token }), 200).memberships).toEqual([]);
  });

  it('is refused for beta, which has a fleet', async () => {
    const answer = await server.api('DELETE', `/api/v1/orgs/${seed.beta.orgId}`, {
      token: seed.people.betaOwner.token,
    });
    expect(answer.status).toBe(409);
    check(
      await server.api('GET', `/api/v1/orgs/${seed.beta.orgId}`, { token: seed.people.betaOwner.token }),
      200,
    );
  });

  it('is for owners only', async () => {
    const { token, org: orgTwo } = await founderWithOrg('owner-two@example.test', 'Owner Two');
    const added = check(
      await server.api('POST', `/api/v1/orgs/${orgTwo.id}/members`, {
        token,
        body: { email: 'org-two-admin@example.test', role: 'admin' },
      }),
      201,
    );
    const adminToken = await server.login('org-two-admin@example.test', added.password);
    expect((await server.api('DELETE', `/api/v1/orgs/${orgTwo.id}`, { token: adminToken })).status).toBe(403);
    check(await server.api('GET', `/api/v1/orgs/${orgTwo.id}`, { token }), 200);
  });
});
