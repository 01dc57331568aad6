import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { agentMessageSchema } from '@fleetgate/protocol';
import { describe, expect, it } from 'vitest';
import { StateCollector, type StateReport, stateChanged } from './state.ts';

describe('state reports', () => {
  it('collects a report the protocol accepts', () => {
    const report = new StateCollector('1.2.3').collect();
    expect(agentMessageSchema.safeParse(report).success).toBe(true);
    expect(report.agentVersion).toBe('1.2.3');
    expect(report.memory!.usedBytes).toBeLessThanOrEqual(report.memory!.totalBytes);
  });

  it('reads the OS name and the hottest thermal zone from the machine', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-agent-root-'));
    try {
      fs.mkdirSync(path.join(root, 'etc'));
      fs.writeFileSync(path.join(root, 'etc/os-release'), 'NAME="X"\nPRETTY_NAME="Example Linux 9 (test)"\n');
      for (const [zone, milli] of [
        ['thermal_zone0', '41500'],
        ['thermal_zone1', '57250'],
        ['cooling_device0', '9'],
      ]) {
        fs.mkdirSync(path.join(root, 'sys/class/thermal', zone!), { recursive: true });
        fs.writeFileSync(path.join(root, 'sys/class/thermal', zone!, 'temp'), `${milli}\n`);
      }
      const report = new StateCollector('1', root).collect();
      expect(report.os).toBe('Example Linux 9 (test)');
      expect(report.temperatureCelsius).toBe(57.3);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('calls a change what a person would notice, not CPU or memory noise', () => {
    const base: StateReport = {
      type: 'state-report',
      hostname: 'a',
      os: 'x',
      kernel: 'k',
      agentVersion: '1',
      uptimeSeconds: 100,
      cpuPercent: 5,
      memory: { totalBytes: 100, usedBytes: 10 },
      disk: { totalBytes: 1000, usedBytes: 100 },
      ipAddresses: ['10.0.0.2'],
    };
    expect(stateChanged(null, base)).toBe(true);
    expect(
      stateChanged(base, {
        ...base,
        uptimeSeconds: 130,
        cpuPercent: 90,
        memory: { totalBytes: 100, usedBytes: 80 },
      }),
    ).toBe(false);
    expect(stateChanged(base, { ...base, ipAddresses: ['10.0.0.3'] })).toBe(true);
    expect(stateChanged(base, { ...base, hostname: 'b' })).toBe(true);
    expect(stateChanged(base, { ...base, uptimeSeconds: 5 })).toBe(true);
    expect(stateChanged(base, { ...base, disk: { totalBytes: 1000, usedBytes: 200 } })).toBe(true);
  });
});
