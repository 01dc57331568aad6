import { describe, expect, it } from 'vitest';
import { listenQueueCheck } from './doctor.ts';

describe('fleetgate doctor: the listen queue', () => {
  it('warns when the kernel caps the queue below what fleetgate asks for, with the command that raises it', () => {
    const old = listenQueueCheck(128);
    expect(old.level).toBe('warning');
    expect(old.message).toContain('net.core.somaxconn is 128');
    expect(old.message).toContain('sysctl -w net.core.somaxconn=4096');
  });

  it('is ok at the default of current kernels, and skipped where it cannot be read', () => {
    expect(listenQueueCheck(4096).level).toBe('ok');
    expect(listenQueueCheck(undefined).level).toBe('skipped');
  });
});
