import { describe, expect, it } from 'vitest';
import { DeviceOrigins } from './origins.ts';

const uuid = '0123456789abcdef0123456789abcdef';

describe('device origins', () => {
  const origins = new DeviceOrigins('localhost');

  it('name a device port as <port>-<uuid>.<suffix>, and <port>s-… for HTTPS on the device', () => {
    expect(origins.hostOf({ uuid, port: 8080, tls: false })).toBe(`8080-${uuid}.localhost`);
    expect(origins.hostOf({ uuid, port: 443, tls: true })).toBe(`443s-${uuid}.localhost`);
    expect(origins.parse(`8080-${uuid}.localhost:8081`)).toEqual({ uuid, port: 8080, tls: false });
    expect(origins.parse(`443S-${uuid.toUpperCase()}.LOCALHOST`)).toEqual({ uuid, port: 443, tls: true });
  });

  it('claim every host that looks like one, and parse only well-formed ones', () => {
    for (const host of [
      `0-${uuid}.localhost`,
      `65536-${uuid}.localhost:80`,
      `08-${uuid}.localhost`,
      '80-x.localhost',
    ])
      expect([origins.claims(host), origins.parse(host)], host).toEqual([true, undefined]);
  });

  it("leave fleetgate's own hosts and other names alone", () => {
    for (const host of [
      'localhost:8080',
      '127.0.0.1:8080',
      'fleetgate.localhost',
      `8080-${uuid}.localhost.example.com`,
      `a.8080-${uuid}.localhost`,
      '[::1]:8080',
    ])
      expect(origins.claims(host), host).toBe(false);
    expect(new DeviceOrigins('devices.example.com').claims(`80-${uuid}.devices.example.com:443`)).toBe(true);
  });
});
