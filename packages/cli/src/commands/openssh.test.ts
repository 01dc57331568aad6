import { describe, expect, it } from 'vitest';
import { parseOriginalCommand } from './openssh.ts';

describe('parseOriginalCommand', () => {
  it('takes the first word as the device and the rest, as typed, as the command', () => {
    expect(parseOriginalCommand('kiosk-17 echo hi; exit 3')).toEqual({
      device: 'kiosk-17',
      command: 'echo hi; exit 3',
    });
    expect(parseOriginalCommand('  7f3c9a1  ls   -l "a b"  ')).toEqual({
      device: '7f3c9a1',
      command: 'ls   -l "a b"',
    });
  });

  it('means a shell when only the device is named, and nothing when nothing is', () => {
    expect(parseOriginalCommand('kiosk-17')).toEqual({ device: 'kiosk-17', command: undefined });
    expect(parseOriginalCommand('kiosk-17   ')).toEqual({ device: 'kiosk-17', command: undefined });
    expect(parseOriginalCommand('')).toBeUndefined();
    expect(parseOriginalCommand(' \n ')).toBeUndefined();
  });
});
