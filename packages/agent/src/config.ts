/**
 * The agent's configuration file (JSON, default /etc/fleetgate/agent.json), parsed once at start.
 *
 * The file speaks in seconds, as people write it; `AgentConfig` (what the library core takes) speaks in
 * milliseconds with every default filled in. A wrong file stops the start with EVERY problem listed.
 *
 * Example:
 *
 *   {
 *     "server": "https://fleet.example.com:8080",
 *     "caFile": "/etc/fleetgate/ca.crt",
 *     "enrollment": { "provisioningKey": "…" },
 *     "allowedPorts": [22, 80],
 *     "variables": { "hook": "systemctl restart my-app" }
 *   }
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { LogLevel } from './log.ts';

/** Where the CLI looks for the configuration without `--config`. */
export const DEFAULT_CONFIG_FILE = '/etc/fleetgate/agent.json';
/** Where credentials and state live without `dataDir`. */
export const DEFAULT_DATA_DIR = '/var/lib/fleetgate-agent';

const seconds = (defaultValue: number, max = 86_400) => z.number().positive().max(max).default(defaultValue);
const port = z.number().int().min(1).max(65535);

/** How a device without credentials enrolls. */
const enrollmentSchema = z.union([
  z.strictObject({
    /** A fleet's provisioning key: the agent registers itself with a uuid and device key it generates. */
    provisioningKey: z.string().min(1).max(512).optional(),
    /** The same, read from a file (so the config may be world-readable and the key not). */
    provisioningKeyFile: z.string().min(1).optional(),
  }),
  z.strictObject({
    keyPair: z.strictObject({
      /** PEM private key (PKCS#8: Ed25519, ECDSA or RSA). Default: an Ed25519 key generated into the data dir. */
      privateKeyFile: z.string().min(1).optional(),
      /**
       * The identity attributes the auth set is matched by. Default `{"mac": <first network MAC>}`. `__proto__`
       * is refused, as the server refuses it: a JavaScript object cannot hold it as a plain key.
       */
      identity: z
        .preprocess(
          (value, ctx) => {
            // A record drops the key silently; the identity would then differ from what the file says.
            if (typeof value === 'object' && value !== null && Object.hasOwn(value, '__proto__'))
              ctx.addIssue({ code: 'custom', message: '"__proto__" is a reserved name: choose another' });
            return value;
          },
          z.record(z.string().min(1).max(128), z.string().max(1024)),
        )
        .optional(),
      /** A provisioning key of the fleet to land in (Mender's tenant token). Optional. */
      tenantToken: z.string().max(512).optional(),
    }),
  }),
  z.strictObject({
    /**
     * A balenaOS `config.json` (e.g. /mnt/boot/config.json): the device keeps its balena uuid and device API key
     * (`deviceApiKey`, or the first of `deviceApiKeys`), which the server knows from `fleetgate import
     * balena-config`. Nothing is registered.
     */
    balenaConfigFile: z.string().min(1),
  }),
]);

/** The file's schema. Every duration is in seconds. */
export const agentConfigFileSchema = z.strictObject({
  /** The server's base URL, `https://host:port` (or `http://` on a trusted network). */
  server: z.url({ protocol: /^https?$/ }),
  /** The CA that signed the server certificate (the server's `<data dir>/tls/ca.crt`). Default: the system CAs. */
  caFile: z.string().min(1).optional(),
  /** Credentials and state. Default /var/lib/fleetgate-agent. */
  dataDir: z.string().min(1).default(DEFAULT_DATA_DIR),
  /** The device type registered with a provisioning key. Default generic-amd64 / generic-aarch64 by CPU. */
  deviceType: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/)
    .optional(),
  /** The device name registered with a provisioning key. Default: the server picks one. */
  name: z.string().min(1).max(128).optional(),
  enrollment: enrollmentSchema.optional(),
  /** Shorthand for `"enrollment": {"provisioningKey": …}` (balena's config.json has it at the top level). */
  provisioningKey: z.string().min(1).max(512).optional(),
  /** Local TCP ports the server may open streams to. Default [22]. */
  allowedPorts: z.array(port).max(1024).default([22]),
  /** Hosts streams may reach (besides nothing else). Default ["127.0.0.1"]. */
  allowedHosts: z.array(z.string().min(1).max(253)).max(256).default(['127.0.0.1']),
  /** Local TCP connect timeout for a stream, in seconds. Default 10. */
  connectTimeout: seconds(10, 600),
  variables: z
    .strictObject({
      /** The env file written with the device's variables. Default `<dataDir>/variables.env`. */
      envFile: z.string().min(1).optional(),
      /** A shell command run after the env file changed, e.g. `systemctl restart my-app`. Default none. */
      hook: z.string().min(1).max(4096).optional(),
      /** The hook is killed after this many seconds. Default 60. */
      hookTimeout: seconds(60, 3600),
    })
    .default({ hookTimeout: 60 }),
  stateReport: z
    .strictObject({
      /** How often the state is checked for a change worth reporting, in seconds. Default 30. */
      checkInterval: seconds(30),
      /** A report is sent at least this often, in seconds. Default 300. */
      maxInterval: seconds(300),
    })
    .default({ checkInterval: 30, maxInterval: 300 }),
  backoff: z
    .strictObject({
      /** The first reconnect window, in seconds. Default 1. */
      base: seconds(1, 3600),
      /** The largest reconnect window, in seconds. Default 300. */
      cap: seconds(300),
      /** The largest window for 5 minutes after the server closed with "going away" (a restart). Default 10. */
      restartCap: seconds(10),
      /** A connection that stayed up this long resets the backoff, in seconds. Default 30. */
      stableAfter: seconds(30, 3600),
    })
    .default({ base: 1, cap: 300, restartCap: 10, stableAfter: 30 }),
  liveness: z
    .strictObject({
      /** Ping interval, in seconds. Default 30. */
      interval: seconds(30, 3600),
      /** No pong within this many seconds drops the connection. Default 10. */
      timeout: seconds(10, 3600),
    })
    .default({ interval: 30, timeout: 10 }),
  exec: z
    .strictObject({
      /** Whether the server may run commands and shells (the SSH gateway). Default true. */
      enabled: z.boolean().default(true),
    })
    .default({ enabled: true }),
  logLevel: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
});
export type AgentConfigFile = z.input<typeof agentConfigFileSchema>;

/** How a device without credentials enrolls, resolved. */
export type EnrollmentConfig =
  | { method: 'provisioning-key'; provisioningKey: string }
  | { method: 'balena-config'; file: string; uuid: string; deviceKey: string }
  | {
      method: 'key-pair';
      privateKeyFile: string;
      identity: Record<string, string>;
      tenantToken?: string;
    };

/** The agent's settings with defaults applied; durations in milliseconds. */
export interface AgentConfig {
  serverUrl: string;
  /** The CA file's path, or undefined for the system CAs. */
  caFile?: string;
  dataDir: string;
  deviceType: string;
  name?: string;
  /** Undefined: the device must already have credentials in the data dir. */
  enrollment?: EnrollmentConfig;
  allowedPorts: number[];
  allowedHosts: string[];
  connectTimeoutMs: number;
  variables: { envFile: string; hook?: string; hookTimeoutMs: number };
  stateReport: { checkIntervalMs: number; maxIntervalMs: number };
  backoff: { baseMs: number; capMs: number; restartCapMs: number; stableAfterMs: number };
  liveness: { intervalMs: number; timeoutMs: number };
  exec: { enabled: boolean };
  logLevel: LogLevel;
}

/** The configuration is wrong; `problems` lists every one, `path: message`. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    message: string,
    readonly problems: string[] = [],
  ) {
    super(problems.length > 0 ? `${message}:\n  ${problems.join('\n  ')}` : message);
  }
}

/** Reads and checks the configuration file. Throws `ConfigError`. */
export function loadConfigFile(file: string): AgentConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read the configuration ${file}: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`the configuration ${file} is not JSON: ${(error as Error).message}`);
  }
  return parseConfig(value, { source: file });
}

/**
 * Checks a configuration object and applies defaults. Relative paths are taken from the directory of
 * `source` (the config file), so a config and its CA may sit side by side.
 */
export function parseConfig(value: unknown, options: { source?: string } = {}): AgentConfig {
  const parsed = agentConfigFileSchema.safeParse(value);
  const where = options.source ? `the configuration ${options.source}` : 'the configuration';
  if (!parsed.success) {
    throw new ConfigError(
      `${where} is not valid`,
      parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`),
    );
  }
  const file = parsed.data;
  const base = options.source ? path.dirname(path.resolve(options.source)) : process.cwd();
  const resolve = (p: string) => path.resolve(base, p);
  const dataDir = resolve(file.dataDir);
  const problems: string[] = [];

  const deviceType = file.deviceType ?? defaultDeviceType();
  if (!deviceType) problems.push(`deviceType: required on this CPU (${os.arch()})`);
  if (file.provisioningKey && file.enrollment) {
    problems.push('provisioningKey: give it or "enrollment", not both');
  }
  const enrollment = resolveEnrollment(
    file.provisioningKey ? { provisioningKey: file.provisioningKey } : file.enrollment,
    dataDir,
    resolve,
    problems,
  );
  if (file.stateReport.maxInterval < file.stateReport.checkInterval) {
    problems.push('stateReport.maxInterval: must not be shorter than stateReport.checkInterval');
  }
  if (file.backoff.cap < file.backoff.base)
    problems.push('backoff.cap: must not be smaller than backoff.base');
  if (problems.length > 0) throw new ConfigError(`${where} is not valid`, problems);

  const ms = (s: number) => Math.round(s * 1000);
  return {
    serverUrl: file.server.replace(/\/+$/, ''),
    ...(file.caFile ? { caFile: resolve(file.caFile) } : {}),
    dataDir,
    deviceType: deviceType!,
    ...(file.name ? { name: file.name } : {}),
    ...(enrollment ? { enrollment } : {}),
    allowedPorts: [...new Set(file.allowedPorts)],
    allowedHosts: [...new Set(file.allowedHosts)],
    connectTimeoutMs: ms(file.connectTimeout),
    variables: {
      envFile: file.variables.envFile ? resolve(file.variables.envFile) : path.join(dataDir, 'variables.env'),
      ...(file.variables.hook ? { hook: file.variables.hook } : {}),
      hookTimeoutMs: ms(file.variables.hookTimeout),
    },
    stateReport: {
      checkIntervalMs: ms(file.stateReport.checkInterval),
      maxIntervalMs: ms(file.stateReport.maxInterval),
    },
    backoff: {
      baseMs: ms(file.backoff.base),
      capMs: ms(file.backoff.cap),
      restartCapMs: ms(file.backoff.restartCap),
      stableAfterMs: ms(file.backoff.stableAfter),
    },
    liveness: { intervalMs: ms(file.liveness.interval), timeoutMs: ms(file.liveness.timeout) },
    exec: { enabled: file.exec.enabled },
    logLevel: file.logLevel,
  };
}

function resolveEnrollment(
  enrollment: z.output<typeof enrollmentSchema> | undefined,
  dataDir: string,
  resolve: (p: string) => string,
  problems: string[],
): EnrollmentConfig | undefined {
  if (!enrollment) return undefined;
  if ('keyPair' in enrollment) {
    const identity = enrollment.keyPair.identity ?? defaultIdentity();
    if (!identity) {
      problems.push('enrollment.keyPair.identity: required (this machine has no network MAC address to use)');
      return undefined;
    }
    return {
      method: 'key-pair',
      privateKeyFile: enrollment.keyPair.privateKeyFile
        ? resolve(enrollment.keyPair.privateKeyFile)
        : path.join(dataDir, 'device-key.pem'),
      identity,
      ...(enrollment.keyPair.tenantToken ? { tenantToken: enrollment.keyPair.tenantToken } : {}),
    };
  }
  if ('balenaConfigFile' in enrollment) {
    const file = resolve(enrollment.balenaConfigFile);
    const identity = readBalenaConfig(file);
    if (typeof identity === 'string') {
      problems.push(`enrollment.balenaConfigFile: ${identity}`);
      return undefined;
    }
    return { method: 'balena-config', file, ...identity };
  }
  if (enrollment.provisioningKey && enrollment.provisioningKeyFile) {
    problems.push('enrollment: give provisioningKey or provisioningKeyFile, not both');
    return undefined;
  }
  if (enrollment.provisioningKeyFile) {
    try {
      const key = fs.readFileSync(resolve(enrollment.provisioningKeyFile), 'utf8').trim();
      if (key) return { method: 'provisioning-key', provisioningKey: key };
      problems.push(`enrollment.provisioningKeyFile: ${enrollment.provisioningKeyFile} is empty`);
    } catch (error) {
      problems.push(`enrollment.provisioningKeyFile: ${(error as Error).message}`);
    }
    return undefined;
  }
  if (enrollment.provisioningKey)
    return { method: 'provisioning-key', provisioningKey: enrollment.provisioningKey };
  problems.push('enrollment: give provisioningKey, provisioningKeyFile, keyPair or balenaConfigFile');
  return undefined;
}

/** The uuid and device API key of a balenaOS `config.json`, or why it has none. */
function readBalenaConfig(file: string): { uuid: string; deviceKey: string } | string {
  let config: Record<string, unknown>;
  try {
    const value: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      return `${file} is not a JSON object`;
    config = value as Record<string, unknown>;
  } catch (error) {
    return (error as Error).message;
  }
  const { uuid } = config;
  if (typeof uuid !== 'string' || !/^[0-9a-fA-F]{32}$/.test(uuid))
    return `${file} has no uuid of 32 hexadecimal characters`;
  // Newer balenaOS keeps the key per API host in `deviceApiKeys`; older ones in `deviceApiKey`.
  const perHost = config.deviceApiKeys;
  const keys = typeof perHost === 'object' && perHost !== null ? Object.values(perHost) : [];
  const deviceKey = [config.deviceApiKey, ...keys].find(
    (k): k is string => typeof k === 'string' && k !== '',
  );
  if (!deviceKey) return `${file} has no deviceApiKey`;
  if (!/^[\x21-\x7e]{16,512}$/.test(deviceKey))
    return `the deviceApiKey in ${file} is not 16-512 printable characters without spaces`;
  return { uuid: uuid.toLowerCase(), deviceKey };
}

function defaultDeviceType(): string | undefined {
  switch (os.arch()) {
    case 'x64':
      return 'generic-amd64';
    case 'arm64':
      return 'generic-aarch64';
    default:
      return undefined;
  }
}

/** Mender's default identity: the MAC of the first network interface that has a real one. */
function defaultIdentity(): Record<string, string> | undefined {
  const names = Object.keys(os.networkInterfaces()).sort();
  for (const name of names) {
    for (const address of os.networkInterfaces()[name] ?? []) {
      if (!address.internal && address.mac && address.mac !== '00:00:00:00:00:00')
        return { mac: address.mac };
    }
  }
  return undefined;
}
