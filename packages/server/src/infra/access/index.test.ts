import { describe, expect, it } from 'vitest';
import { authorize, type Principal, readScope, systemActor } from './index.ts';

describe('authorize', () => {
  const owner: Principal = {
    type: 'user',
    userId: 1,
    email: 'owner@example.test',
    serverAdmin: true,
    memberships: [{ orgId: 1, role: 'owner', fleetIds: null }],
    credential: { type: 'session', id: 1 },
  };
  const forbidden = expect.objectContaining({ name: 'AppError', code: 'forbidden' });

  it("gives fleetgate's own system actor no role: every action is refused, and it reads nothing", () => {
    const system = systemActor.principal;
    // What an owner and server administrator may do, the system actor may not.
    expect(() => authorize(owner, 'org.delete', { orgId: 1 })).not.toThrow();
    expect(() => authorize(owner, 'service_key.create')).not.toThrow();
    expect(() => authorize(system, 'org.delete', { orgId: 1 })).toThrow(forbidden);
    expect(() => authorize(system, 'device.read', { orgId: 1, fleetId: 1 })).toThrow(forbidden);
    expect(() => authorize(system, 'service_key.create')).toThrow(forbidden);
    expect(readScope(system, 'device.read')).toEqual([]);
  });
});
