/**
 * `fleetgate-agent run|enroll|status [--config FILE]` — also reachable as `fleetgate agent …`, which
 * delegates here. Exit codes: 0 done, 1 failed, 2 wrong usage or configuration, 3 the device was
 * decommissioned (a systemd unit should not restart it: `RestartPreventExitStatus=3`), 4 enrolled but
 * still pending acceptance (`enroll` without `--wait`).
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import packageJson from '../package.json' with { type: 'json' };
import { Agent, serverEndpointOf } from './agent.ts';
import { type AgentConfig, ConfigError, DEFAULT_CONFIG_FILE, loadConfigFile } from './config.ts';
import { credentialsFile, readCredentials } from './credentials.ts';
import { EnrollmentError, KeyPairAuthenticator } from './enroll.ts';
import { createLogger } from './log.ts';

/** The agent's version, as reported to the server. */
export const AGENT_VERSION: string = packageJson.version;

export interface AgentCliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  /** The process's environment: passed to exec'd processes and the variables hook. */
  env: NodeJS.ProcessEnv;
  /** Handles SIGINT/SIGTERM for `run` (default true; tests pass false and stop through `onAgent`). */
  handleSignals?: boolean;
  /** Sees the agent `run` created (tests stop it through this). */
  onAgent?: (agent: Agent) => void;
}

const usage = `usage: fleetgate-agent <command> [--config FILE]

commands:
  run      enroll if needed, then keep the tunnel to the server (the service's command)
  enroll   enroll only: register with the provisioning key, or send the signed auth request
           (--wait: wait until an admin accepts a pending device)
  status   show the configuration and the stored credentials (never the secrets)

--config FILE   the configuration (default ${DEFAULT_CONFIG_FILE})
`;

/** Runs the agent CLI with `args` (without node and the script) and answers the exit code. */
export async function runAgentCli(args: readonly string[], io: AgentCliIo): Promise<number> {
  let parsed: ReturnType<typeof parseCli>;
  try {
    parsed = parseCli(args);
  } catch (error) {
    io.stderr.write(`fleetgate-agent: ${(error as Error).message}\n${usage}`);
    return 2;
  }
  if (parsed.values.version) {
    io.stdout.write(`${AGENT_VERSION}\n`);
    return 0;
  }
  const command = parsed.positionals[0];
  if (parsed.values.help || !command) {
    (command || parsed.values.help ? io.stdout : io.stderr).write(usage);
    return parsed.values.help ? 0 : 2;
  }
  if (!['run', 'enroll', 'status'].includes(command) || parsed.positionals.length > 1) {
    io.stderr.write(`fleetgate-agent: unknown command ${parsed.positionals.join(' ')}\n${usage}`);
    return 2;
  }
  let config: AgentConfig;
  try {
    config = loadConfigFile(parsed.values.config ?? DEFAULT_CONFIG_FILE);
  } catch (error) {
    io.stderr.write(`fleetgate-agent: ${(error as Error).message}\n`);
    return 2;
  }
  try {
    switch (command) {
      case 'run':
        return await run(config, io);
      case 'enroll':
        return await enroll(config, io, parsed.values.wait ?? false);
      default:
        return status(config, io);
    }
  } catch (error) {
    if (error instanceof EnrollmentError) {
      io.stderr.write(`fleetgate-agent: ${error.message}\n`);
      return error.reason === 'decommissioned' ? 3 : error.reason === 'config' ? 2 : 1;
    }
    if (error instanceof ConfigError) {
      io.stderr.write(`fleetgate-agent: ${error.message}\n`);
      return 2;
    }
    io.stderr.write(`fleetgate-agent: ${(error as Error).message ?? String(error)}\n`);
    return 1;
  }
}

function parseCli(args: readonly string[]) {
  return parseArgs({
    args: [...args],
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      wait: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'V' },
    },
  });
}

function agentFor(config: AgentConfig, io: AgentCliIo): Agent {
  return new Agent({
    ...config,
    agentVersion: AGENT_VERSION,
    baseEnv: io.env,
    log: createLogger(config.logLevel, (line) => io.stderr.write(line)),
  });
}

async function run(config: AgentConfig, io: AgentCliIo): Promise<number> {
  const agent = agentFor(config, io);
  io.onAgent?.(agent);
  const stop = (signal: NodeJS.Signals) => {
    agent.log.info(`${signal}: stopping`);
    void agent.stop();
  };
  if (io.handleSignals !== false) {
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  }
  try {
    agent.log.info('fleetgate-agent starting', { version: AGENT_VERSION, server: config.serverUrl });
    const reason = await agent.run();
    return reason === 'decommissioned' ? 3 : 0;
  } catch (error) {
    // Stopped while enrolling: not a failure.
    if (error instanceof Error && /stopping/.test(error.message)) return 0;
    throw error;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

async function enroll(config: AgentConfig, io: AgentCliIo, wait: boolean): Promise<number> {
  const agent = agentFor(config, io);
  const credentials = await agent.enroll();
  if (credentials.type === 'device-key') {
    io.stdout.write(
      `enrolled: uuid ${credentials.uuid} (credentials in ${credentialsFile(config.dataDir)})\n`,
    );
    return 0;
  }
  const authenticator = new KeyPairAuthenticator({
    server: serverEndpointOf(config),
    credentials,
    backoff: config.backoff,
    log: agent.log,
  });
  if (wait) {
    await authenticator.authorization();
    io.stdout.write(`accepted: ${authenticator.label}\n`);
    return 0;
  }
  const outcome = await authenticator.requestOnce();
  if ('token' in outcome) {
    io.stdout.write(`accepted: ${authenticator.label}\n`);
    return 0;
  }
  if (outcome.reason === 'pending') {
    io.stdout.write(
      `pending: an admin must accept ${authenticator.label} (the admin UI's Pending devices page, or: fleetgate devices pending && fleetgate devices accept <id> --fleet <fleet>)\n`,
    );
    return 4;
  }
  io.stderr.write(
    `fleetgate-agent: the server refused the auth request (${outcome.status} ${outcome.reason}): ${outcome.message}\n`,
  );
  return outcome.reason === 'decommissioned' ? 3 : 1;
}

function status(config: AgentConfig, io: AgentCliIo): number {
  const out = (label: string, value: string) => io.stdout.write(`${`${label}:`.padEnd(16)}${value}\n`);
  out('server', config.serverUrl);
  out('data dir', config.dataDir);
  out('allowed ports', config.allowedPorts.join(', '));
  out('env file', config.variables.envFile);
  const credentials = readCredentials(config.dataDir);
  if (!credentials) {
    out('credentials', `none yet (enrollment: ${config.enrollment?.method ?? 'not configured'})`);
    return 1;
  }
  const mode = (fs.statSync(credentialsFile(config.dataDir)).mode & 0o777).toString(8).padStart(4, '0');
  if (credentials.type === 'device-key') {
    out(
      'credentials',
      `uuid ${credentials.uuid}, device key${credentials.registered ? '' : ' (not registered yet)'}`,
    );
  } else {
    out(
      'credentials',
      `key pair ${credentials.privateKeyFile}, identity ${JSON.stringify(credentials.identity)}`,
    );
  }
  out('file mode', mode);
  return 0;
}
