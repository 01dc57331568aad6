import { describe, expect, it } from 'vitest';
import { runCli } from '../index.ts';
import { memoryIo } from '../memory-io.ts';

async function vpnPlan(args: string[], env: NodeJS.ProcessEnv = {}) {
  const memory = memoryIo({ env });
  const code = await runCli(['vpn', 'plan', ...args], memory.io);
  return { code, stdout: memory.stdout(), stderr: memory.stderr() };
}

describe('fleetgate vpn plan', () => {
  it("shows each instance's slice, link, pool and port, from the environment with flags winning", async () => {
    const { code, stdout } = await vpnPlan(['--instances', '2'], {
      FLEETGATE_VPN_BASE_SUBNET: '10.96.0.0/16',
      FLEETGATE_VPN_INSTANCE_SUBNET_BITMASK: '24',
      FLEETGATE_VPN_INSTANCES: '7',
    });
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^INSTANCE\s+SUBNET\s+GATEWAY\s+PEER\s+POOL\s+CLIENTS\s+PORT$/);
    expect(lines[1]?.split(/\s{2,}/)).toEqual([
      '1',
      '10.96.0.0/24',
      '10.96.0.1',
      '10.96.0.2',
      '10.96.0.3 - 10.96.0.254',
      '252',
      '10001',
    ]);
    expect(lines[2]?.split(/\s{2,}/)[1]).toBe('10.96.1.0/24');
    expect(lines[3]).toBe('2 instance(s), 504 devices at most');
  });

  it('answers JSON with --json, and says what to change when the instances do not fit', async () => {
    const json = await vpnPlan(['--instances', '1', '--base-port', '20000', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({
      instances: [{ id: 1, subnet: '10.240.0.0/20', port: 20001 }],
      maxClients: 4092,
    });
    const tooMany = await vpnPlan(['--instances', '300']);
    expect(tooMany.code).toBe(2);
    expect(tooMany.stderr).toContain(
      '300 instances do not fit in 10.240.0.0/12 split in /20 slices (256 do)',
    );
    const malformed = await vpnPlan(['--base-subnet', '10.240.0.0']);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain('FLEETGATE_VPN_BASE_SUBNET: must be an IPv4 subnet in CIDR notation');
  });
});
