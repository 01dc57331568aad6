import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfigFile, parseConfig } from './config.ts';

describe('agent configuration', () => {
  it('fills in the defaults, in milliseconds', () => {
    const config = parseConfig({ server: 'https://fleet.example.com:8080/', deviceType: 'generic-amd64' });
    expect(config).toMatchObject({
      serverUrl: 'https://fleet.example.com:8080',
      dataDir: '/var/lib/fleetgate-agent',
      allowedPorts: [22],
      allowedHosts: ['127.0.0.1'],
      connectTimeoutMs: 10_000,
      variables: { envFile: '/var/lib/fleetgate-agent/variables.env', hookTimeoutMs: 60_000 },
      stateReport: { checkIntervalMs: 30_000, maxIntervalMs: 300_000 },
      backoff: { baseMs: 1000, capMs: 300_000, restartCapMs: 10_000, stableAfterMs: 30_000 },
      liveness: { intervalMs: 30_000, timeoutMs: 10_000 },
      exec: { enabled: true },
      logLevel: 'info',
    });
    expect(config.enrollment).toBeUndefined();
  });

  it('lists every problem at once', () => {
    let error: unknown;
    try {
      parseConfig({
        server: 'ftp://nope',
        allowedPorts: [0, 22],
        backoff: { base: -1 },
        enrollment: { provisioningKey: 'a', keyPair: {} },
        surprise: true,
      });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    expect(problems).toMatch(/^server:/m);
    expect(problems).toMatch(/^allowedPorts\.0:/m);
    expect(problems).toMatch(/^backoff\.base:/m);
    expect(problems).toMatch(/^enrollment:/m);
    expect(problems).toMatch(/surprise/);
  });

  it('checks settings that only make sense together', () => {
    expect(() =>
      parseConfig({ server: 'http://x', deviceType: 'a', backoff: { base: 10, cap: 5 }, enrollment: {} }),
    ).toThrow(/enrollment: give provisioningKey[\s\S]*backoff\.cap: must not be smaller/);
  });

  it('reads a file, resolving relative paths next to it, and a provisioning key from its own file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-agent-config-'));
    try {
      fs.writeFileSync(path.join(dir, 'key'), 'secret-provisioning-key\n');
      fs.writeFileSync(
        path.join(dir, 'agent.json'),
        JSON.stringify({
          server: 'https://fleet.example.com',
          caFile: 'ca.crt',
          dataDir: 'data',
          deviceType: 'raspberrypi4-64',
          enrollment: { provisioningKeyFile: 'key' },
          variables: { envFile: '/etc/app.env', hook: 'systemctl restart app', hookTimeout: 5 },
        }),
      );
      const config = loadConfigFile(path.join(dir, 'agent.json'));
      expect(config.caFile).toBe(path.join(dir, 'ca.crt'));
      expect(config.dataDir).toBe(path.join(dir, 'data'));
      expect(config.enrollment).toEqual({
        method: 'provisioning-key',
        provisioningKey: 'secret-provisioning-key',
      });
      expect(config.variables).toEqual({
        envFile: '/etc/app.env',
        hook: 'systemctl restart app',
        hookTimeoutMs: 5000,
      });
      fs.writeFileSync(path.join(dir, 'bad.json'), '{ not json');
      expect(() => loadConfigFile(path.join(dir, 'bad.json'))).toThrow(/is not JSON/);
      expect(() => loadConfigFile(path.join(dir, 'missing.json'))).toThrow(/cannot read the configuration/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes a provisioning key at the top level too, but not twice', () => {
    const config = parseConfig({ server: 'https://x', deviceType: 'a', provisioningKey: 'k' });
    expect(config.enrollment).toEqual({ method: 'provisioning-key', provisioningKey: 'k' });
    expect(() =>
      parseConfig({
        server: 'https://x',
        deviceType: 'a',
        provisioningKey: 'k',
        enrollment: { provisioningKey: 'k' },
      }),
    ).toThrow(/provisioningKey: give it or "enrollment", not both/);
  });

  it('refuses an identity attribute named __proto__ instead of leaving it out', () => {
    // As read from the file: JSON.parse keeps "__proto__" as an ordinary key.
    const text = (identity: string) =>
      `{"server":"https://x","deviceType":"a","enrollment":{"keyPair":{"identity":${identity}}}}`;
    expect(() => parseConfig(JSON.parse(text('{"__proto__":"x","mac":"m"}')))).toThrow(ConfigError);
    expect(parseConfig(JSON.parse(text('{"constructor":"x","mac":"m"}'))).enrollment).toMatchObject({
      identity: { constructor: 'x', mac: 'm' },
    });
  });

  it('defaults a key pair to a key in the data dir', () => {
    const config = parseConfig({
      server: 'https://x',
      deviceType: 'a',
      dataDir: '/data',
      enrollment: { keyPair: { identity: { mac: '02:00:00:00:00:01' }, tenantToken: 't' } },
    });
    expect(config.enrollment).toEqual({
      method: 'key-pair',
      privateKeyFile: '/data/device-key.pem',
      identity: { mac: '02:00:00:00:00:01' },
      tenantToken: 't',
    });
  });

  it("takes a balenaOS config.json's uuid and device API key, and says what is missing from one", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-agent-balena-'));
    try {
      const uuid = 'A1'.repeat(16);
      fs.writeFileSync(
        path.join(dir, 'config.json'),
        JSON.stringify({
          uuid,
          deviceApiKeys: { 'api.balena-cloud.com': 'k'.repeat(32) },
          applicationName: 'x',
        }),
      );
      fs.writeFileSync(path.join(dir, 'nokey.json'), JSON.stringify({ uuid }));
      const config = (file: string) =>
        parseConfig(
          { server: 'https://x', deviceType: 'a', enrollment: { balenaConfigFile: file } },
          { source: path.join(dir, 'agent.json') },
        );
      expect(config('config.json').enrollment).toEqual({
        method: 'balena-config',
        file: path.join(dir, 'config.json'),
        uuid: uuid.toLowerCase(),
        deviceKey: 'k'.repeat(32),
      });
      expect(() => config('nokey.json')).toThrow(
        /enrollment\.balenaConfigFile: .*nokey\.json has no deviceApiKey/,
      );
      expect(() => config('missing.json')).toThrow(/enrollment\.balenaConfigFile: ENOENT/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
