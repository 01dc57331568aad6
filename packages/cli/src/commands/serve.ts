import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { type Command, Option } from 'commander';
import type { CliIo } from '../context.ts';
import { CliError } from '../errors.ts';

/** `fleetgate serve` flags, each with the server configuration key it sets. */
const serveFlags = [
  {
    flag: '--data-dir <dir>',
    key: 'dataDir',
    help: 'where the SQLite database and state live (default ./data)',
  },
  { flag: '--port <port>', key: 'httpPort', help: 'HTTP port; 0 picks a free one (default 8080)' },
  { flag: '--ssh-port <port>', key: 'sshPort', help: 'SSH gateway port; 0 picks a free one (default 2222)' },
  {
    flag: '--proxy-port <port>',
    key: 'proxyPort',
    help: 'HTTP CONNECT proxy port; 0 picks a free one (default 3128)',
  },
  { flag: '--listen <address>', key: 'listen', help: 'address to bind (default 127.0.0.1)' },
  { flag: '--vpn <on|off>', key: 'vpn', help: 'the OpenVPN backend for balenaOS devices (default off)' },
  {
    flag: '--vpn-port <port>',
    key: 'vpnPort',
    help: "OpenVPN devices' port; 0 picks a free one (default 1194)",
  },
  { flag: '--admin-email <email>', key: 'adminEmail', help: 'the first owner, created on the first start' },
  { flag: '--admin-password <password>', key: 'adminPassword', help: "the first owner's password" },
  { flag: '--database-url <url>', key: 'databaseUrl', help: 'PostgreSQL URL (default: SQLite)' },
  { flag: '--db-schema <schema>', key: 'dbSchema', help: 'PostgreSQL schema (default public)' },
  { flag: '--log-level <level>', key: 'logLevel', help: 'fatal, error, warn, info, debug, trace or silent' },
  {
    flag: '--tls-cert <file>',
    key: 'tlsCert',
    help: 'PEM certificate (chain) for HTTPS (default: <data dir>/tls/server.crt when it exists)',
  },
  {
    flag: '--tls-key <file>',
    key: 'tlsKey',
    help: 'PEM private key for HTTPS (default: <data dir>/tls/server.key when it exists)',
  },
] as const;

type ServeOptions = Record<string, string | undefined>;

/** Exit code of `serve` when the configuration is wrong (usage errors are 1). */
const configErrorExitCode = 2;

/** `serve`: runs the fleetgate server in this process until SIGINT or SIGTERM. */
export function registerServeCommand(program: Command, io: CliIo): void {
  const command = program
    .command('serve')
    .description('run the fleetgate server (each flag also has an environment variable; the flag wins)')
    .addHelpText(
      'after',
      '\nThe environment variables are listed in the README (FLEETGATE_HTTP_PORT, DATABASE_URL, …).',
    );
  const options = serveFlags.map(({ flag, key, help }) => ({ key, option: new Option(flag, help) }));
  for (const { option } of options) command.addOption(option);
  command.action(async (values: ServeOptions) => {
    // Loaded here, not at the top: the server's dependencies would slow every other command down.
    const { loadConfig, startServer } = await import('@fleetgate/server');
    // Unset flags stay out, so the environment and the defaults apply.
    const flags: Record<string, string> = {};
    for (const { key, option } of options) {
      const value = values[option.attributeName()];
      if (value !== undefined) flags[key] = value;
    }
    // A wrong setting stops the start before anything else happens (building the UI takes seconds).
    try {
      loadConfig(io.env, flags);
    } catch (error) {
      throw startFailure(error);
    }
    // The admin web UI: built on the first start (and after its sources change), then served at `/`.
    if (flags.webRoot === undefined && !io.env.FLEETGATE_WEB_ROOT) {
      const { distDir, webBuildIsStale } = await import('@fleetgate/web/build');
      if (webBuildIsStale()) await buildWebApart(io);
      flags.webRoot = distDir;
    }
    let server: Awaited<ReturnType<typeof startServer>>;
    try {
      server = await startServer({ flags, env: io.env, print: (text) => io.stdout.write(text) });
    } catch (error) {
      throw startFailure(error);
    }
    // Read by `fleetgate restore`, which refuses to run under a live server.
    const { markServerRunning } = await import('@fleetgate/server');
    const unmark = markServerRunning(server.config.dataDir);
    process.once('exit', unmark);
    const stop = (signal: NodeJS.Signals) => {
      // From here on a second signal gets Node's default: the process ends at once, without waiting.
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      io.stderr.write(`\n${signal}: stopping fleetgate…\n`);
      server.close().then(
        () => process.exit(0),
        (error: unknown) => {
          io.stderr.write(
            `fleetgate: error while stopping: ${error instanceof Error ? error.message : error}\n`,
          );
          process.exit(1);
        },
      );
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

/**
 * Builds the web UI in a process of its own, its lines on our standard error. Not in this one: Vite's bundler
 * (rolldown) keeps a dozen native threads and about 100 MB resident in the process that ran it, which would be
 * the server's, idle, for its whole life (RSS 236 MiB against 138 10 s after a first start here).
 */
async function buildWebApart(io: CliIo): Promise<void> {
  const script = fileURLToPath(import.meta.resolve('@fleetgate/web/build'));
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (chunk: Buffer) => io.stderr.write(chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => io.stderr.write(chunk.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0)
    throw new CliError(
      `could not build the web UI (${script} exited with ${code}; above); FLEETGATE_WEB_ROOT serves another build`,
    );
}

/** Turns what the server throws at start into the one-line reasons people can act on. */
function startFailure(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  if (error.name === 'ConfigError') {
    return new CliError(error.message, { exitCode: configErrorExitCode, cause: error });
  }
  if (error.name === 'SecretKeyError') {
    return new CliError(`cannot open the secret variables: ${error.message}`, {
      exitCode: configErrorExitCode,
      cause: error,
    });
  }
  if (error.name === 'TlsError') {
    return new CliError(`cannot serve HTTPS: ${error.message}`, {
      exitCode: configErrorExitCode,
      cause: error,
    });
  }
  // Says which listener, which port and which flag or variable moves it (the server's ListenError); an OpenVPN
  // instance that could not start says what OpenVPN said and what to change (VpnStartError); another fleetgate
  // serves the same SQLite file (SecondInstanceError).
  if (error.name === 'ListenError' || error.name === 'VpnStartError' || error.name === 'SecondInstanceError')
    return new CliError(error.message, { cause: error });
  return error;
}
