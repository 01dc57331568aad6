import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, envNames, loadConfig } from './index.ts';

/** Runs `fn` and answers the ConfigError it throws (fails when it throws nothing or something else). */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

/** Two sealing keys (32 bytes each, base64), as `openssl rand -base64 32` prints them. */
const KEY_A = Buffer.alloc(32, 1).toString('base64');
const KEY_B = Buffer.alloc(32, 2).toString('base64');

describe('loadConfig', () => {
  it('has a default for everything but the optional secrets', () => {
    const config = loadConfig({}, {});
    expect(config).toEqual({
      dataDir: path.resolve('./data'),
      httpPort: 8080,
      listen: '127.0.0.1',
      adminEmail: 'admin@fleetgate.local',
      dbSchema: 'public',
      logLevel: 'info',
      sessionTtlHours: 24,
      bodyLimit: 1024 * 1024,
      loginAttempts: 10,
      deviceTokenTtl: 3600,
      tunnelPingIntervalMs: 30_000,
      tunnelPingTimeoutMs: 10_000,
      presenceFlushMs: 1000,
      sshPort: 2222,
      proxyPort: 3128,
      deviceSuffix: 'devices',
      deviceWebSuffix: 'localhost',
      fileTransferMaxBytes: 1024 ** 3,
      proxyHeaderTimeoutMs: 10_000,
      proxyMaxConnectionsPerSource: 128,
      proxyMaxSessionsPerUser: 64,
      sshAuthTimeoutMs: 30_000,
      backupKeep: 7,
      backupDir: path.resolve('./data/backups'),
      vpn: false,
      vpnPort: 1194,
      vpnBaseSubnet: '10.240.0.0/12',
      vpnInstanceSubnetBitmask: 20,
      vpnBasePort: 10_000,
      vpnOpenvpn: 'openvpn',
      internalHost: '127.0.0.1',
    });
    expect(config.backupInterval).toBeUndefined();
    expect(config.adminPassword).toBeUndefined();
    expect(config.databaseUrl).toBeUndefined();
    expect(config.tlsCert).toBeUndefined();
    expect(config.tlsKey).toBeUndefined();
    expect(config.secretsKey).toBeUndefined();
  });

  it('reads every setting from its environment variable, numbers included', () => {
    const config = loadConfig({
      FLEETGATE_DATA_DIR: '/var/lib/fleetgate',
      FLEETGATE_HTTP_PORT: '9090',
      FLEETGATE_LISTEN: '0.0.0.0',
      FLEETGATE_ADMIN_EMAIL: 'ops@example.test',
      FLEETGATE_ADMIN_PASSWORD: 'long enough',
      DATABASE_URL: 'postgres://fleet@db.example.test/fleet',
      FLEETGATE_DB_SCHEMA: 'tenant_a',
      FLEETGATE_LOG_LEVEL: 'warn',
      FLEETGATE_SESSION_TTL_HOURS: '1.5',
      FLEETGATE_BODY_LIMIT: '2048',
      FLEETGATE_LOGIN_ATTEMPTS: '3',
      FLEETGATE_DEVICE_TOKEN_TTL: '600',
      FLEETGATE_TLS_CERT: '/etc/fleetgate/server.crt',
      FLEETGATE_TLS_KEY: '/etc/fleetgate/server.key',
      FLEETGATE_TUNNEL_PING_INTERVAL_MS: '15000',
      FLEETGATE_TUNNEL_PING_TIMEOUT_MS: '5000',
      FLEETGATE_PRESENCE_FLUSH_MS: '250',
      FLEETGATE_SSH_PORT: '2022',
      FLEETGATE_PROXY_PORT: '8128',
      FLEETGATE_DEVICE_SUFFIX: 'fleet.example',
      FLEETGATE_DEVICE_WEB_SUFFIX: 'web.fleet.example',
      FLEETGATE_FILE_TRANSFER_MAX_BYTES: '5000000',
      FLEETGATE_PROXY_HEADER_TIMEOUT_MS: '2000',
      FLEETGATE_PROXY_MAX_CONNECTIONS_PER_SOURCE: '16',
      FLEETGATE_PROXY_MAX_SESSIONS_PER_USER: '4',
      FLEETGATE_SSH_AUTH_TIMEOUT_MS: '5000',
      FLEETGATE_MAX_CONNECTIONS: '4096',
      FLEETGATE_BACKUP_INTERVAL: '24h',
      FLEETGATE_BACKUP_KEEP: '3',
      FLEETGATE_BACKUP_DIR: '/srv/fleetgate-backups',
      FLEETGATE_VPN: 'on',
      FLEETGATE_VPN_PORT: '443',
      FLEETGATE_VPN_HOST: 'vpn.example.test',
      FLEETGATE_VPN_INSTANCES: '4',
      FLEETGATE_VPN_BASE_SUBNET: '10.96.0.0/16',
      FLEETGATE_VPN_INSTANCE_SUBNET_BITMASK: '24',
      FLEETGATE_VPN_GATEWAY: '10.95.0.1',
      FLEETGATE_VPN_BASE_PORT: '20000',
      FLEETGATE_VPN_OPENVPN: '/usr/local/sbin/openvpn',
      FLEETGATE_INTERNAL_PORT: '7000',
      FLEETGATE_INTERNAL_HOST: '10.0.0.5',
      FLEETGATE_INTERNAL_URL: 'http://fleetgate-2.internal:7000',
      FLEETGATE_CLUSTER_SECRET: 's'.repeat(32),
    });
    expect(config).toEqual({
      dataDir: '/var/lib/fleetgate',
      httpPort: 9090,
      listen: '0.0.0.0',
      adminEmail: 'ops@example.test',
      adminPassword: 'long enough',
      databaseUrl: 'postgres://fleet@db.example.test/fleet',
      dbSchema: 'tenant_a',
      logLevel: 'warn',
      sessionTtlHours: 1.5,
      bodyLimit: 2048,
      loginAttempts: 3,
      deviceTokenTtl: 600,
      tlsCert: '/etc/fleetgate/server.crt',
      tlsKey: '/etc/fleetgate/server.key',
      tunnelPingIntervalMs: 15_000,
      tunnelPingTimeoutMs: 5000,
      presenceFlushMs: 250,
      sshPort: 2022,
      proxyPort: 8128,
      deviceSuffix: 'fleet.example',
      deviceWebSuffix: 'web.fleet.example',
      fileTransferMaxBytes: 5_000_000,
      proxyHeaderTimeoutMs: 2000,
      proxyMaxConnectionsPerSource: 16,
      proxyMaxSessionsPerUser: 4,
      sshAuthTimeoutMs: 5000,
      maxConnections: 4096,
      backupInterval: 24 * 3600 * 1000,
      backupKeep: 3,
      backupDir: '/srv/fleetgate-backups',
      vpn: true,
      vpnPort: 443,
      vpnHost: 'vpn.example.test',
      vpnInstances: 4,
      vpnBaseSubnet: '10.96.0.0/16',
      vpnInstanceSubnetBitmask: 24,
      vpnGateway: '10.95.0.1',
      vpnBasePort: 20_000,
      vpnOpenvpn: '/usr/local/sbin/openvpn',
      internalPort: 7000,
      internalHost: '10.0.0.5',
      internalUrl: 'http://fleetgate-2.internal:7000',
      clusterSecret: 's'.repeat(32),
    });
  });

  it('refuses an internal link without the cluster secret or without PostgreSQL, naming what is missing', () => {
    expect(configError(() => loadConfig({ FLEETGATE_INTERNAL_PORT: '7000' })).problems).toEqual([
      'FLEETGATE_INTERNAL_PORT: needs FLEETGATE_CLUSTER_SECRET (the secret every instance shares)',
      'FLEETGATE_INTERNAL_PORT: several instances share one PostgreSQL database (DATABASE_URL); SQLite serves one instance',
    ]);
    expect(configError(() => loadConfig({ FLEETGATE_CLUSTER_SECRET: 'short' })).problems).toEqual([
      'FLEETGATE_CLUSTER_SECRET: must be at least 32 characters',
    ]);
  });

  it('reads the backup interval in seconds, minutes, hours or days and refuses anything else', () => {
    expect(loadConfig({ FLEETGATE_BACKUP_INTERVAL: '30m' }).backupInterval).toBe(30 * 60_000);
    expect(loadConfig({ FLEETGATE_BACKUP_INTERVAL: '7d' }).backupInterval).toBe(7 * 86_400_000);
    expect(loadConfig({ FLEETGATE_BACKUP_INTERVAL: 'off' }).backupInterval).toBeUndefined();
    const error = configError(() =>
      loadConfig({ FLEETGATE_BACKUP_INTERVAL: 'daily', FLEETGATE_BACKUP_KEEP: '0' }),
    );
    expect(error.problems).toEqual([
      expect.stringMatching(/^FLEETGATE_BACKUP_INTERVAL: must be off or a number and a unit/),
      expect.stringMatching(/^FLEETGATE_BACKUP_KEEP: /),
    ]);
  });

  it('lets a flag win over the environment variable', () => {
    const config = loadConfig(
      { FLEETGATE_HTTP_PORT: '9090', FLEETGATE_LOG_LEVEL: 'warn', FLEETGATE_LISTEN: '0.0.0.0' },
      { httpPort: 7070, logLevel: 'debug' },
    );
    expect(config.httpPort).toBe(7070);
    expect(config.logLevel).toBe('debug');
    // Settings without a flag still come from the environment.
    expect(config.listen).toBe('0.0.0.0');
  });

  it('treats an empty environment variable as unset', () => {
    expect(loadConfig({ FLEETGATE_HTTP_PORT: '' }).httpPort).toBe(8080);
    expect(loadConfig({ DATABASE_URL: '' }).databaseUrl).toBeUndefined();
  });

  it('treats an empty flag as unset, so the environment variable still applies', () => {
    // `fleetgate serve --data-dir "$DIR"` with DIR unset must not throw away FLEETGATE_DATA_DIR for ./data.
    expect(loadConfig({ FLEETGATE_HTTP_PORT: '9090' }, { httpPort: '' }).httpPort).toBe(9090);
    expect(loadConfig({ FLEETGATE_DATA_DIR: '/srv/fleetgate' }, { dataDir: '' }).dataDir).toBe(
      '/srv/fleetgate',
    );
  });

  it('makes the data directory absolute', () => {
    expect(loadConfig({ FLEETGATE_DATA_DIR: 'relative/dir' }).dataDir).toBe(path.resolve('relative/dir'));
  });

  it('accepts port 0 (any free port) and postgresql:// URLs', () => {
    expect(loadConfig({}, { httpPort: 0 }).httpPort).toBe(0);
    expect(loadConfig({ DATABASE_URL: 'postgresql://u@h/db' }).databaseUrl).toBe('postgresql://u@h/db');
  });

  it('lists every problem at once, each under its environment variable', () => {
    const error = configError(() =>
      loadConfig({
        FLEETGATE_HTTP_PORT: '70000',
        FLEETGATE_ADMIN_EMAIL: 'not-an-email',
        FLEETGATE_ADMIN_PASSWORD: 'short',
        DATABASE_URL: 'mysql://db/fleet',
        FLEETGATE_DB_SCHEMA: 'Bad-Schema',
        FLEETGATE_LOG_LEVEL: 'loud',
        FLEETGATE_SESSION_TTL_HOURS: '-1',
        FLEETGATE_BODY_LIMIT: '12',
        FLEETGATE_LOGIN_ATTEMPTS: 'many',
      }),
    );
    const named = [
      'FLEETGATE_HTTP_PORT',
      'FLEETGATE_ADMIN_EMAIL',
      'FLEETGATE_ADMIN_PASSWORD',
      'DATABASE_URL',
      'FLEETGATE_DB_SCHEMA',
      'FLEETGATE_LOG_LEVEL',
      'FLEETGATE_SESSION_TTL_HOURS',
      'FLEETGATE_BODY_LIMIT',
      'FLEETGATE_LOGIN_ATTEMPTS',
    ];
    expect(error.problems).toHaveLength(named.length);
    for (const name of named) {
      expect(
        error.problems.some((p) => p.startsWith(`${name}: `)),
        name,
      ).toBe(true);
      expect(error.message).toContain(name);
    }
    expect(error.problems.find((p) => p.startsWith('FLEETGATE_ADMIN_PASSWORD'))).toMatch(/at least 8/);
    expect(error.problems.find((p) => p.startsWith('DATABASE_URL'))).toMatch(/postgres:\/\//);
  });

  it('names the environment variable even when the bad value came from a flag', () => {
    const error = configError(() => loadConfig({}, { httpPort: 'eighty' }));
    expect(error.problems).toEqual([expect.stringMatching(/^FLEETGATE_HTTP_PORT: /)]);
  });

  it('refuses fractional ports and a zero login allowance', () => {
    const error = configError(() =>
      loadConfig({ FLEETGATE_HTTP_PORT: '80.5', FLEETGATE_LOGIN_ATTEMPTS: '0' }),
    );
    expect(error.problems).toHaveLength(2);
  });

  it('takes secrets keys as base64 keys of 32 bytes, comma separated, and refuses anything else', () => {
    expect(loadConfig({ FLEETGATE_SECRETS_KEY: `${KEY_A},${KEY_B}` }).secretsKey).toBe(`${KEY_A},${KEY_B}`);
    for (const bad of ['short', `${KEY_A},`, KEY_A.slice(1), `${KEY_A};${KEY_B}`]) {
      const error = configError(() => loadConfig({ FLEETGATE_SECRETS_KEY: bad }));
      expect(error.problems, bad).toEqual([
        expect.stringMatching(/^FLEETGATE_SECRETS_KEY: must be base64 keys of 32 bytes/),
      ]);
    }
  });

  it('refuses a VPN subnet, gateway or switch it cannot use, naming each variable', () => {
    const error = configError(() =>
      loadConfig({
        FLEETGATE_VPN: 'yes',
        FLEETGATE_VPN_BASE_SUBNET: '10.240.0.0',
        FLEETGATE_VPN_GATEWAY: '10.240.0.300',
      }),
    );
    expect(error.problems).toEqual([
      expect.stringMatching(/^FLEETGATE_VPN: /),
      expect.stringMatching(/^FLEETGATE_VPN_BASE_SUBNET: must be an IPv4 subnet in CIDR notation/),
      expect.stringMatching(/^FLEETGATE_VPN_GATEWAY: /),
    ]);
  });

  it('has an environment variable for every setting', () => {
    const config = loadConfig({
      FLEETGATE_ADMIN_PASSWORD: 'long enough',
      DATABASE_URL: 'postgres://h/db',
      FLEETGATE_TLS_CERT: 'server.crt',
      FLEETGATE_TLS_KEY: 'server.key',
      FLEETGATE_WEB_ROOT: 'packages/web/dist',
      FLEETGATE_MAX_CONNECTIONS: '4096',
      FLEETGATE_SECRETS_KEY: KEY_A,
      FLEETGATE_BACKUP_INTERVAL: '1h',
      FLEETGATE_VPN_HOST: 'vpn.example.test',
      FLEETGATE_VPN_INSTANCES: '2',
      FLEETGATE_VPN_GATEWAY: '10.95.0.1',
      FLEETGATE_INTERNAL_PORT: '7000',
      FLEETGATE_INTERNAL_URL: 'http://fleetgate-2.internal:7000',
      FLEETGATE_CLUSTER_SECRET: 's'.repeat(32),
    });
    expect(Object.keys(envNames).sort()).toEqual(Object.keys(config).sort());
  });
});
