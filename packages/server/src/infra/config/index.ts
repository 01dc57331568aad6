import path from 'node:path';
import { z } from 'zod';

/**
 * fleetgate's configuration, parsed once at start from the environment and `fleetgate serve` flags
 * (flags win). A wrong value stops the start with every problem listed.
 */
const configSchema = z.object({
  /** Where fleetgate keeps its SQLite database and other state. Default `./data`. (`FLEETGATE_DATA_DIR`) */
  dataDir: z.string().min(1).default('./data'),
  /** TCP port of the HTTP listener (API, docs, metrics). Default 8080; 0 picks a free port. (`FLEETGATE_HTTP_PORT`) */
  httpPort: z.coerce.number().int().min(0).max(65535).default(8080),
  /** TCP port of the SSH gateway. Default 2222; 0 picks a free port. (`FLEETGATE_SSH_PORT`) */
  sshPort: z.coerce.number().int().min(0).max(65535).default(2222),
  /** TCP port of the HTTP CONNECT proxy to devices. Default 3128; 0 picks a free port. (`FLEETGATE_PROXY_PORT`) */
  proxyPort: z.coerce.number().int().min(0).max(65535).default(3128),
  /** How long the CONNECT proxy waits for a request's headers before answering 408 and closing, in milliseconds. Default 10 000. (`FLEETGATE_PROXY_HEADER_TIMEOUT_MS`) */
  proxyHeaderTimeoutMs: z.coerce.number().int().min(100).max(300_000).default(10_000),
  /** Connections to the CONNECT proxy one source address (IPv6: /64) may hold at once. Default 128. (`FLEETGATE_PROXY_MAX_CONNECTIONS_PER_SOURCE`) */
  proxyMaxConnectionsPerSource: z.coerce.number().int().min(1).max(100_000).default(128),
  /** Sessions one person may hold open through the CONNECT proxy at once. Default 64. (`FLEETGATE_PROXY_MAX_SESSIONS_PER_USER`) */
  proxyMaxSessionsPerUser: z.coerce.number().int().min(1).max(100_000).default(64),
  /** Host name suffix that names a device, as in `<uuid>.devices`, `<name>.devices` or `<uuid prefix>.devices`. Default `devices`. (`FLEETGATE_DEVICE_SUFFIX`) */
  deviceSuffix: z
    .string()
    .regex(/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/, 'must be a lower-case host name')
    .default('devices'),
  /**
   * Host name suffix of device web pages: the page of port P of device U is served from its own origin,
   * `http(s)://<P>-<U>.<suffix>:<HTTP port>` (`<P>s-<U>` for HTTPS on the device). Default `localhost`, which
   * Chromium and Firefox resolve to loopback without DNS; a real deployment sets a name with a wildcard DNS
   * record and certificate (`*.<suffix>`). (`FLEETGATE_DEVICE_WEB_SUFFIX`)
   */
  deviceWebSuffix: z
    .string()
    .regex(/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/, 'must be a lower-case host name')
    .default('localhost'),
  /** Address every listener binds to. Default `127.0.0.1`. (`FLEETGATE_LISTEN`) */
  listen: z.string().min(1).default('127.0.0.1'),
  /** E-mail of the first owner, created on first start. Default `admin@fleetgate.local`. (`FLEETGATE_ADMIN_EMAIL`) */
  adminEmail: z.email().default('admin@fleetgate.local'),
  /** Password of the first owner; unset = a random one printed once. (`FLEETGATE_ADMIN_PASSWORD`) */
  adminPassword: z.string().min(8, 'must be at least 8 characters').optional(),
  /** PostgreSQL connection string; unset = SQLite file `<dataDir>/fleetgate.db`. (`DATABASE_URL`) */
  databaseUrl: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must start with postgres:// or postgresql://')
    .optional(),
  /** PostgreSQL schema to use (created if missing). Default `public`. (`FLEETGATE_DB_SCHEMA`) */
  dbSchema: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case SQL identifier')
    .default('public'),
  /** Log level: fatal, error, warn, info, debug, trace or silent. Default `info`. (`FLEETGATE_LOG_LEVEL`) */
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Lifetime of a login session token, in hours. Default 24. (`FLEETGATE_SESSION_TTL_HOURS`) */
  sessionTtlHours: z.coerce
    .number()
    .positive()
    .max(24 * 365)
    .default(24),
  /** Largest accepted request body, in bytes. Default 1 MiB. (`FLEETGATE_BODY_LIMIT`) */
  bodyLimit: z.coerce
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(1024 * 1024),
  /**
   * Largest file a person may upload to a device or download from one (file transfer), in bytes. Default 1 GiB.
   * (`FLEETGATE_FILE_TRANSFER_MAX_BYTES`)
   */
  fileTransferMaxBytes: z.coerce
    .number()
    .int()
    .min(1)
    .max(Number.MAX_SAFE_INTEGER)
    .default(1024 * 1024 * 1024),
  /** Failed sign-ins allowed per (account, source address) in 15 minutes, ten times as many per source. Default 10. (`FLEETGATE_LOGIN_ATTEMPTS`) */
  loginAttempts: z.coerce.number().int().min(1).max(10_000).default(10),
  /** Lifetime of a device token (JWT), in seconds. Default 3600. (`FLEETGATE_DEVICE_TOKEN_TTL`) */
  deviceTokenTtl: z.coerce
    .number()
    .int()
    .min(60)
    .max(7 * 24 * 3600)
    .default(3600),
  /** PEM certificate (chain) file for HTTPS; unset = `<dataDir>/tls/server.crt` when it exists, else plain HTTP. (`FLEETGATE_TLS_CERT`) */
  tlsCert: z.string().min(1).optional(),
  /** PEM private key file for HTTPS, paired with `tlsCert`; unset = `<dataDir>/tls/server.key`. (`FLEETGATE_TLS_KEY`) */
  tlsKey: z.string().min(1).optional(),
  /**
   * How often the server pings each tunnel, in milliseconds (±10 % jitter); mender-connect links too, closed after
   * twice this without a sign of life. Default 30 000. (`FLEETGATE_TUNNEL_PING_INTERVAL_MS`)
   */
  tunnelPingIntervalMs: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
  /** How long a tunnel may leave a ping unanswered before it is closed, in milliseconds. Default 10 000. (`FLEETGATE_TUNNEL_PING_TIMEOUT_MS`) */
  tunnelPingTimeoutMs: z.coerce.number().int().min(100).max(600_000).default(10_000),
  /** How often presence, state reports and connection history are written, in milliseconds. Default 1000. (`FLEETGATE_PRESENCE_FLUSH_MS`) */
  presenceFlushMs: z.coerce.number().int().min(10).max(60_000).default(1000),
  /** How long an SSH gateway connection has to sign in before it is cut, in milliseconds. Default 30 000. (`FLEETGATE_SSH_AUTH_TIMEOUT_MS`) */
  sshAuthTimeoutMs: z.coerce.number().int().min(100).max(600_000).default(30_000),
  /** Connections the process holds at most over all its ports; unset = its open-files limit (`ulimit -n`) less a reserve. (`FLEETGATE_MAX_CONNECTIONS`) */
  maxConnections: z.coerce.number().int().min(16).max(10_000_000).optional(),
  /**
   * Time between two backups the server makes by itself, as a number and a unit (`s`, `m`, `h`, `d`: `24h`),
   * in milliseconds once parsed; `off` (the default) makes none. (`FLEETGATE_BACKUP_INTERVAL`)
   */
  backupInterval: z
    .string()
    .regex(/^(off|\d+(s|m|h|d))$/, 'must be off or a number and a unit: 30m, 24h, 7d')
    .default('off')
    .transform((text) => {
      if (text === 'off') return undefined;
      const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
        text.slice(-1) as 's' | 'm' | 'h' | 'd'
      ];
      return Number(text.slice(0, -1)) * unit;
    })
    .refine((ms) => ms === undefined || ms >= 1000, 'must be at least 1s'),
  /** Scheduled backups kept: older ones are deleted after each new one. Default 7. (`FLEETGATE_BACKUP_KEEP`) */
  backupKeep: z.coerce.number().int().min(1).max(10_000).default(7),
  /** Folder of scheduled backups (and of `fleetgate backup` without --to); unset = `<dataDir>/backups`. (`FLEETGATE_BACKUP_DIR`) */
  backupDir: z.string().min(1).optional(),
  /** The built admin web UI (a folder with `index.html`); unset = `fleetgate serve` builds and serves its own. (`FLEETGATE_WEB_ROOT`) */
  webRoot: z.string().min(1).optional(),
  /**
   * Keys that seal secret variables at rest: base64 keys of 32 bytes (`openssl rand -base64 32`), comma
   * separated; the first seals, the others still open what they sealed (rotation). Unset = the key file
   * `<dataDir>/keys/secrets.json`, made on first start. (`FLEETGATE_SECRETS_KEY`)
   */
  secretsKey: z
    .string()
    .regex(
      /^\s*[A-Za-z0-9+/]{43}=\s*(,\s*[A-Za-z0-9+/]{43}=\s*)*$/,
      'must be base64 keys of 32 bytes, comma separated (openssl rand -base64 32)',
    )
    .optional(),
  /**
   * The OpenVPN backend for balenaOS devices (DESIGN section 8): `on` starts `vpnInstances` OpenVPN server
   * processes that devices reach at `vpnPort`. Default `off`. (`FLEETGATE_VPN`)
   */
  vpn: z
    .enum(['on', 'off'])
    .default('off')
    .transform((v) => v === 'on'),
  /** Public TCP port devices' OpenVPN clients connect to (balena's is 443). Default 1194. (`FLEETGATE_VPN_PORT`) */
  vpnPort: z.coerce.number().int().min(0).max(65535).default(1194),
  /**
   * Host name written in the devices' OpenVPN configuration (`remote`); unset = the host name the device used to
   * fetch it (`GET /os/v1/config`). (`FLEETGATE_VPN_HOST`)
   */
  vpnHost: z
    .string()
    .regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/, 'must be a host name or an IPv4 address')
    .optional(),
  /** OpenVPN server processes; unset = one per CPU, as open-balena-vpn runs. (`FLEETGATE_VPN_INSTANCES`) */
  vpnInstances: z.coerce.number().int().min(1).max(4096).optional(),
  /** The subnet all instances share, split between them (seed 003's `VPN_BASE_SUBNET`). Default `10.240.0.0/12`. (`FLEETGATE_VPN_BASE_SUBNET`) */
  vpnBaseSubnet: z
    .string()
    .regex(/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/, 'must be an IPv4 subnet in CIDR notation: 10.240.0.0/12')
    .default('10.240.0.0/12'),
  /** Prefix length of each instance's slice of the base subnet (`VPN_INSTANCE_SUBNET_BITMASK`). Default 20. (`FLEETGATE_VPN_INSTANCE_SUBNET_BITMASK`) */
  vpnInstanceSubnetBitmask: z.coerce.number().int().min(1).max(30).default(20),
  /** Server end of every instance's point-to-point link (`BALENA_VPN_GATEWAY`); unset = each slice's first usable address. (`FLEETGATE_VPN_GATEWAY`) */
  vpnGateway: z.ipv4().optional(),
  /** Instance n (from 1) listens on 127.0.0.1 port base + n (`VPN_BASE_PORT`). Default 10000. (`FLEETGATE_VPN_BASE_PORT`) */
  vpnBasePort: z.coerce.number().int().min(1).max(65000).default(10_000),
  /** The OpenVPN 2.6 program. Default `openvpn` (Debian's package). (`FLEETGATE_VPN_OPENVPN`) */
  vpnOpenvpn: z.string().min(1).default('openvpn'),
  /**
   * TCP port of the internal link between instances sharing one PostgreSQL database: an instance reaches a device
   * whose tunnel another instance holds through this port of the holder. Unset = off (one instance). Needs
   * `FLEETGATE_CLUSTER_SECRET`. (`FLEETGATE_INTERNAL_PORT`)
   */
  internalPort: z.coerce.number().int().min(0).max(65535).optional(),
  /** Address the internal link binds to. Default `127.0.0.1`. (`FLEETGATE_INTERNAL_HOST`) */
  internalHost: z.string().min(1).default('127.0.0.1'),
  /**
   * How the other instances reach this one's internal link, as `http://host:port`; unset =
   * `http://<FLEETGATE_INTERNAL_HOST>:<port>`. (`FLEETGATE_INTERNAL_URL`)
   */
  internalUrl: z
    .string()
    .regex(/^http:\/\/[^/\s]+:\d+$/, 'must be http://host:port')
    .optional(),
  /**
   * The secret every instance of one installation shares: internal-link requests are signed with it (HMAC-SHA256),
   * and one without a valid signature is refused. At least 32 characters. (`FLEETGATE_CLUSTER_SECRET`)
   */
  clusterSecret: z.string().min(32, 'must be at least 32 characters').optional(),
});

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = { [K in keyof Config]?: string | number | undefined };

/** Environment variable of each setting. */
export const envNames: Record<keyof Config, string> = {
  dataDir: 'FLEETGATE_DATA_DIR',
  httpPort: 'FLEETGATE_HTTP_PORT',
  sshPort: 'FLEETGATE_SSH_PORT',
  proxyPort: 'FLEETGATE_PROXY_PORT',
  proxyHeaderTimeoutMs: 'FLEETGATE_PROXY_HEADER_TIMEOUT_MS',
  proxyMaxConnectionsPerSource: 'FLEETGATE_PROXY_MAX_CONNECTIONS_PER_SOURCE',
  proxyMaxSessionsPerUser: 'FLEETGATE_PROXY_MAX_SESSIONS_PER_USER',
  deviceSuffix: 'FLEETGATE_DEVICE_SUFFIX',
  deviceWebSuffix: 'FLEETGATE_DEVICE_WEB_SUFFIX',
  listen: 'FLEETGATE_LISTEN',
  adminEmail: 'FLEETGATE_ADMIN_EMAIL',
  adminPassword: 'FLEETGATE_ADMIN_PASSWORD',
  databaseUrl: 'DATABASE_URL',
  dbSchema: 'FLEETGATE_DB_SCHEMA',
  logLevel: 'FLEETGATE_LOG_LEVEL',
  sessionTtlHours: 'FLEETGATE_SESSION_TTL_HOURS',
  bodyLimit: 'FLEETGATE_BODY_LIMIT',
  fileTransferMaxBytes: 'FLEETGATE_FILE_TRANSFER_MAX_BYTES',
  loginAttempts: 'FLEETGATE_LOGIN_ATTEMPTS',
  deviceTokenTtl: 'FLEETGATE_DEVICE_TOKEN_TTL',
  tlsCert: 'FLEETGATE_TLS_CERT',
  tlsKey: 'FLEETGATE_TLS_KEY',
  tunnelPingIntervalMs: 'FLEETGATE_TUNNEL_PING_INTERVAL_MS',
  tunnelPingTimeoutMs: 'FLEETGATE_TUNNEL_PING_TIMEOUT_MS',
  presenceFlushMs: 'FLEETGATE_PRESENCE_FLUSH_MS',
  sshAuthTimeoutMs: 'FLEETGATE_SSH_AUTH_TIMEOUT_MS',
  maxConnections: 'FLEETGATE_MAX_CONNECTIONS',
  webRoot: 'FLEETGATE_WEB_ROOT',
  secretsKey: 'FLEETGATE_SECRETS_KEY',
  backupInterval: 'FLEETGATE_BACKUP_INTERVAL',
  backupKeep: 'FLEETGATE_BACKUP_KEEP',
  backupDir: 'FLEETGATE_BACKUP_DIR',
  vpn: 'FLEETGATE_VPN',
  vpnPort: 'FLEETGATE_VPN_PORT',
  vpnHost: 'FLEETGATE_VPN_HOST',
  vpnInstances: 'FLEETGATE_VPN_INSTANCES',
  vpnBaseSubnet: 'FLEETGATE_VPN_BASE_SUBNET',
  vpnInstanceSubnetBitmask: 'FLEETGATE_VPN_INSTANCE_SUBNET_BITMASK',
  vpnGateway: 'FLEETGATE_VPN_GATEWAY',
  vpnBasePort: 'FLEETGATE_VPN_BASE_PORT',
  vpnOpenvpn: 'FLEETGATE_VPN_OPENVPN',
  internalPort: 'FLEETGATE_INTERNAL_PORT',
  internalHost: 'FLEETGATE_INTERNAL_HOST',
  internalUrl: 'FLEETGATE_INTERNAL_URL',
  clusterSecret: 'FLEETGATE_CLUSTER_SECRET',
};

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Builds the configuration from environment variables and flags (flags win). Empty strings count as unset.
 * Throws `ConfigError` listing every problem.
 */
export function loadConfig(env: NodeJS.ProcessEnv = {}, flags: ConfigInput = {}): Config {
  const raw: Record<string, unknown> = {};
  for (const [key, envName] of Object.entries(envNames) as [keyof Config, string][]) {
    const flag = flags[key] === '' ? undefined : flags[key];
    const value = flag ?? env[envName];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const key = issue.path[0] as keyof Config;
        return `${envNames[key] ?? key}: ${issue.message}`;
      }),
    );
  }
  const dataDir = path.resolve(parsed.data.dataDir);
  const problems: string[] = [];
  if (parsed.data.internalPort !== undefined && !parsed.data.clusterSecret)
    problems.push(
      'FLEETGATE_INTERNAL_PORT: needs FLEETGATE_CLUSTER_SECRET (the secret every instance shares)',
    );
  if (parsed.data.internalPort !== undefined && !parsed.data.databaseUrl)
    problems.push(
      'FLEETGATE_INTERNAL_PORT: several instances share one PostgreSQL database (DATABASE_URL); SQLite serves one instance',
    );
  if (problems.length) throw new ConfigError(problems);
  return {
    ...parsed.data,
    dataDir,
    backupDir: path.resolve(parsed.data.backupDir ?? path.join(dataDir, 'backups')),
  };
}
