import { describe, expect, it } from 'vitest';
import { authorize, authorizeRoute, type Principal, readScope, systemActor } from './index.ts';

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

describe('authorizeRoute', () => {
  const person: Principal = {
    type: 'user',
    userId: 2,
    email: 'viewer@example.test',
    serverAdmin: false,
    memberships: [{ orgId: 1, role: 'viewer', fleetIds: null }],
    credential: { type: 'api_key', id: 2 },
  };
  const device: Principal = {
    type: 'device',
    deviceId: 7,
    uuid: 'a'.repeat(32),
    orgId: 1,
    fleetId: 1,
    credential: { type: 'device_token', id: 'jti' },
  };
  const service: Principal = {
    type: 'service',
    service: 'openssh',
    keyId: 3,
    name: 'bastion',
    createdBy: { userId: 1, email: 'owner@example.test' },
  };
  const code = (c: string) => expect.objectContaining({ name: 'AppError', code: c });

  it('lets devices call only the routes made for devices (401 elsewhere), and people only the others', () => {
    expect(() => authorizeRoute(device, { forDevices: true })).not.toThrow();
    expect(() => authorizeRoute(device, {})).toThrow(code('unauthorized'));
    expect(() => authorizeRoute(device, { serves: 'ssh_key.lookup' })).toThrow(code('unauthorized'));
    expect(() => authorizeRoute(person, {})).not.toThrow();
    expect(() => authorizeRoute(person, { forDevices: true })).toThrow(code('unauthorized'));
  });

  it('lets a service credential call only the routes that serve what it is for (403 elsewhere)', () => {
    expect(() => authorizeRoute(service, { serves: 'ssh_key.lookup' })).not.toThrow();
    expect(() => authorizeRoute(service, {})).toThrow(code('forbidden'));
    expect(() => authorizeRoute(service, { forDevices: true })).toThrow(code('forbidden'));
  });
});
