import { describe, expect, it } from 'vitest';
import { AppError } from '../errors/index.ts';
import { authorize, type Principal, readScope, systemActor } from './index.ts';

function refusal(act: () => void): AppError {
  try {
    act();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('allowed');
}

describe('authorize', () => {
  const owner: Principal = {
    type: 'user',
    userId: 1,
    email: 'owner@example.test',
    serverAdmin: true,
    memberships: [{ orgId: 1, role: 'owner', fleetIds: null }],
    credential: { type: 'session', id: 1 },
  };

  it("gives fleetgate's own system actor no role: every action is refused, and it reads nothing", () => {
    const system = systemActor.principal;
    // What an owner and server administrator may do, the system actor may not.
    authorize(owner, 'org.delete', { orgId: 1 });
    authorize(owner, 'service_key.create');
    expect(refusal(() => authorize(system, 'org.delete', { orgId: 1 })).code).toBe('forbidden');
    expect(refusal(() => authorize(system, 'device.read', { orgId: 1, fleetId: 1 })).code).toBe('forbidden');
    expect(refusal(() => authorize(system, 'service_key.create')).code).toBe('forbidden');
    expect(readScope(system, 'device.read')).toEqual([]);
  });
});
