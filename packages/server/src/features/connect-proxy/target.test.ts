import { describe, expect, it } from 'vitest';
import { parseAbsoluteUrl, parseConnectAuthority, proxyCredentialsOf, TargetError } from './target.ts';

const uuid = '0123456789abcdef0123456789abcdef';

describe('proxy targets', () => {
  it('reads <uuid>.<suffix>:<port> and a bare uuid, in any case, with a trailing dot', () => {
    expect(parseConnectAuthority(`${uuid}.devices:22`, 'devices')).toEqual({
      device: uuid,
      host: `${uuid}.devices`,
      port: 22,
    });
    expect(parseConnectAuthority(`${uuid.toUpperCase()}.DEVICES.:8080`, 'devices')).toMatchObject({
      device: uuid,
      port: 8080,
    });
    expect(parseConnectAuthority(`${uuid}:443`, 'devices')).toMatchObject({ device: uuid, port: 443 });
    expect(parseConnectAuthority(`${uuid}.fleet.example:1`, 'fleet.example')).toMatchObject({
      device: uuid,
      port: 1,
    });
  });

  it("reads openBalena's <uuid>.balena, for a full uuid only", () => {
    expect(parseConnectAuthority(`${uuid}.balena:80`, 'devices')).toMatchObject({ device: uuid, port: 80 });
    expect(parseAbsoluteUrl(`http://${uuid.toUpperCase()}.BALENA/x`, 'devices')).toMatchObject({
      device: uuid,
    });
    expect(() => parseConnectAuthority('kiosk-17.balena:80', 'devices')).toThrow(TargetError);
    expect(() => parseConnectAuthority('0123abc.balena:80', 'devices')).toThrow(TargetError);
  });

  it('reads names and uuid prefixes before the suffix, lower-cased, punycode decoded', () => {
    const device = (authority: string) => parseConnectAuthority(authority, 'devices').device;
    expect(device('Kiosk-17.devices:80')).toBe('kiosk-17');
    expect(device('kiosk.lobby.devices:80')).toBe('kiosk.lobby');
    expect(device('my_pi.devices:80')).toBe('my_pi');
    expect(device('0123abc.devices:22')).toBe('0123abc');
    // A uuid prefix of digits alone, or one like a hexadecimal number, stays as typed (never read as an IPv4
    // address: CI once drew a uuid beginning 95536080, and the proxy looked up 5.177.195.208).
    expect(device('95536080.devices:80')).toBe('95536080');
    expect(device('0x1f.devices:80')).toBe('0x1f');
    expect(device('xn--kche-0ra.devices:80')).toBe('küche');
    // Punycode that does not decode is looked up as written (and names no device).
    expect(device('xn--zz.devices:80')).toBe('xn--zz');
    expect(parseAbsoluteUrl('http://KÜCHE.devices/', 'devices').device).toBe('küche');
  });

  it('refuses other hosts, bare names and prefixes, missing and impossible ports, and junk', () => {
    for (const authority of [
      'kiosk-17:80',
      '0123abc:22',
      '.devices:22',
      'a b.devices:22',
      `${uuid}.devices`,
      `${uuid}.devices:0`,
      `${uuid}.devices:65536`,
      `${uuid}.other:22`,
      'example.com:443',
      `[::1]:22`,
      `${uuid.slice(1)}:22`,
      '',
      `${uuid}.devices:22 extra`,
    ]) {
      expect(() => parseConnectAuthority(authority, 'devices'), authority).toThrow(TargetError);
    }
  });

  it('reads absolute-form URLs: port 80 by default, the path and query kept', () => {
    expect(parseAbsoluteUrl(`http://${uuid}.devices/a/b?c=d`, 'devices')).toEqual({
      device: uuid,
      host: `${uuid}.devices`,
      port: 80,
      path: '/a/b?c=d',
    });
    expect(parseAbsoluteUrl('http://kiosk-17.devices:8080', 'devices')).toEqual({
      device: 'kiosk-17',
      host: 'kiosk-17.devices',
      port: 8080,
      path: '/',
    });
    for (const url of [
      'http://kiosk-17/',
      '/relative',
      `https://${uuid}.devices/`,
      'http://example.com/',
      `http://u:p@${uuid}.devices/`,
    ]) {
      expect(() => parseAbsoluteUrl(url, 'devices'), url).toThrow(TargetError);
    }
  });

  it('reads Basic proxy credentials, the key may hold colons', () => {
    const header = `Basic ${Buffer.from('a@b.c:fgk_x:y').toString('base64')}`;
    expect(proxyCredentialsOf(header)).toEqual({ login: 'a@b.c', key: 'fgk_x:y' });
    expect(proxyCredentialsOf(undefined)).toBeUndefined();
    expect(proxyCredentialsOf('Bearer abc')).toBeUndefined();
    expect(proxyCredentialsOf(`Basic ${Buffer.from('no-colon').toString('base64')}`)).toBeUndefined();
  });
});
