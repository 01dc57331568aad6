import { describe, expect, it } from 'vitest';
import { parseAbsoluteUrl, parseConnectAuthority, proxyCredentialsOf, TargetError } from './target.ts';

const uuid = '0123456789abcdef0123456789abcdef';

describe('proxy targets', () => {
  it('reads <uuid>.<suffix>:<port> and a bare uuid, in any case, with a trailing dot', () => {
    expect(parseConnectAuthority(`${uuid}.devices:22`, 'devices')).toEqual({ uuid, port: 22 });
    expect(parseConnectAuthority(`${uuid.toUpperCase()}.DEVICES.:8080`, 'devices')).toEqual({
      uuid,
      port: 8080,
    });
    expect(parseConnectAuthority(`${uuid}:443`, 'devices')).toEqual({ uuid, port: 443 });
    expect(parseConnectAuthority(`${uuid}.fleet.example:1`, 'fleet.example')).toEqual({ uuid, port: 1 });
  });

  it('refuses other hosts, missing and impossible ports, and junk', () => {
    for (const authority of [
      `${uuid}.devices`,
      `${uuid}.devices:0`,
      `${uuid}.devices:65536`,
      `${uuid}.other:22`,
      'example.com:443',
      `[::1]:22`,
      `${uuid.slice(1)}.devices:22`,
      '',
      `${uuid}.devices:22 extra`,
    ]) {
      expect(() => parseConnectAuthority(authority, 'devices'), authority).toThrow(TargetError);
    }
  });

  it('reads absolute-form URLs: port 80 by default, the path and query kept', () => {
    expect(parseAbsoluteUrl(`http://${uuid}.devices/a/b?c=d`, 'devices')).toEqual({
      uuid,
      port: 80,
      path: '/a/b?c=d',
    });
    expect(parseAbsoluteUrl(`http://${uuid}.devices:8080`, 'devices')).toEqual({
      uuid,
      port: 8080,
      path: '/',
    });
    for (const url of [
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
