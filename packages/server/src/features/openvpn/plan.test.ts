import { describe, expect, it } from 'vitest';
import { instancesAvailable, planVpn, VpnPlanError } from './plan.ts';

describe('planVpn', () => {
  it('splits 10.240.0.0/12 in /20 slices as seed 003 describes: 256 instances of 4,094 clients', () => {
    const plans = planVpn({
      baseSubnet: '10.240.0.0/12',
      instanceBitmask: 20,
      instances: 256,
      basePort: 10000,
    });
    expect(plans).toHaveLength(256);
    expect(plans[0]).toEqual({
      id: 1,
      subnet: '10.240.0.0/20',
      network: '10.240.0.0',
      netmask: '255.255.240.0',
      gateway: '10.240.0.1',
      peer: '10.240.0.2',
      poolStart: '10.240.0.3',
      poolEnd: '10.240.15.254',
      maxClients: 4092,
      port: 10001,
    });
    expect(plans[1]?.subnet).toBe('10.240.16.0/20');
    expect(plans[1]?.port).toBe(10002);
    expect(plans[255]?.subnet).toBe('10.255.240.0/20');
    expect(plans[255]?.poolEnd).toBe('10.255.255.254');
    expect(instancesAvailable('10.240.0.0/12', 20)).toBe(256);
  });

  it('puts every instance on the given gateway, keeping peer and pool in its slice', () => {
    const [first, second] = planVpn({
      baseSubnet: '10.96.0.0/16',
      instanceBitmask: 24,
      instances: 2,
      gateway: '10.95.0.1',
      basePort: 20000,
    });
    expect(first).toMatchObject({
      gateway: '10.95.0.1',
      peer: '10.96.0.2',
      poolStart: '10.96.0.3',
      poolEnd: '10.96.0.254',
    });
    expect(second).toMatchObject({ gateway: '10.95.0.1', peer: '10.96.1.2', port: 20002 });
  });

  it('says what to change when the instances do not fit, the subnet is malformed or has host bits', () => {
    expect(() =>
      planVpn({ baseSubnet: '10.240.0.0/12', instanceBitmask: 20, instances: 257, basePort: 1 }),
    ).toThrow(/257 instances do not fit in 10.240.0.0\/12 split in \/20 slices \(256 do\)/);
    expect(() =>
      planVpn({ baseSubnet: '10.240.0.0/20', instanceBitmask: 12, instances: 1, basePort: 1 }),
    ).toThrow(/FLEETGATE_VPN_INSTANCE_SUBNET_BITMASK to 20 or more/);
    expect(() =>
      planVpn({ baseSubnet: '10.240.1.0/12', instanceBitmask: 20, instances: 1, basePort: 1 }),
    ).toThrow(/host bits set \(did you mean 10.240.0.0\/12\?\)/);
    expect(() =>
      planVpn({ baseSubnet: '10.240.0.300/12', instanceBitmask: 20, instances: 1, basePort: 1 }),
    ).toThrow(VpnPlanError);
    expect(() =>
      planVpn({ baseSubnet: '10.0.0.0/8', instanceBitmask: 30, instances: 1, basePort: 1 }),
    ).toThrow(/no room for a pool/);
  });
});
