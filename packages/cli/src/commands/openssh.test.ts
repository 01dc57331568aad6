import { describe, expect, it } from 'vitest';
import { clientAddressOf, parseOriginalCommand, proxyRequestOf } from './openssh.ts';

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

describe('proxyRequestOf', () => {
  it('names the device with the first word when FLEETGATE_DEVICE is not set', () => {
    expect(proxyRequestOf('kiosk-17 uptime', undefined)).toEqual({ device: 'kiosk-17', command: 'uptime' });
    expect(proxyRequestOf('kiosk-17', '')).toEqual({ device: 'kiosk-17', command: undefined });
  });

  it('takes the whole command as the command when FLEETGATE_DEVICE names the device', () => {
    expect(proxyRequestOf('scp -t -- /tmp/x', 'kiosk-17')).toEqual({
      device: 'kiosk-17',
      command: 'scp -t -- /tmp/x',
    });
    expect(proxyRequestOf('', ' kiosk-17 ')).toEqual({ device: 'kiosk-17', command: undefined });
  });

  it("turns sshd's sftp subsystem command, whatever the bastion configured, into the device's sftp-server", () => {
    for (const subsystem of [
      '/usr/lib/openssh/sftp-server',
      '/usr/lib/openssh/sftp-server -l INFO',
      '/usr/libexec/openssh/sftp-server',
      'sftp-server',
      'internal-sftp',
      'internal-sftp -u 0022',
    ]) {
      expect(proxyRequestOf(subsystem, 'kiosk-17'), subsystem).toEqual({ device: 'kiosk-17', sftp: true });
    }
    expect(proxyRequestOf('internal-sftpx', 'kiosk-17')).toEqual({
      device: 'kiosk-17',
      command: 'internal-sftpx',
    });
    expect(proxyRequestOf('/usr/bin/not-sftp-server', 'kiosk-17')).toEqual({
      device: 'kiosk-17',
      command: '/usr/bin/not-sftp-server',
    });
  });

  it('says how to name the device for scp and sftp, and for nothing at all', () => {
    expect(() => proxyRequestOf('/usr/lib/openssh/sftp-server', undefined)).toThrow(
      /SetEnv=FLEETGATE_DEVICE=<device>/,
    );
    expect(() => proxyRequestOf('scp -t /tmp/x', undefined)).toThrow(/SetEnv=FLEETGATE_DEVICE=<device>/);
    expect(() => proxyRequestOf('  ', undefined)).toThrow(/name a device/);
  });
});

describe('clientAddressOf', () => {
  it("takes the person's address from SSH_CONNECTION, else SSH_CLIENT", () => {
    expect(clientAddressOf({ SSH_CONNECTION: '198.51.100.7 51234 10.0.0.2 22' })).toBe('198.51.100.7');
    expect(clientAddressOf({ SSH_CLIENT: '2001:db8::7 51234 22' })).toBe('2001:db8::7');
    expect(
      clientAddressOf({ SSH_CONNECTION: '198.51.100.7 1 10.0.0.2 22', SSH_CLIENT: '192.0.2.1 1 22' }),
    ).toBe('198.51.100.7');
  });

  it('sends nothing when sshd set neither, or set something that is not an address', () => {
    expect(clientAddressOf({})).toBeUndefined();
    expect(clientAddressOf({ SSH_CONNECTION: 'not-an-address 1 2 3' })).toBeUndefined();
  });
});
