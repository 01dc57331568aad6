import { type Command, Option } from 'commander';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';

/** The `fleetgate serve` settings that doctor reads, each with its configuration key (each also has its variable). */
const doctorFlags = [
  {
    flag: '--data-dir <dir>',
    key: 'dataDir',
    help: "the server's data directory (default FLEETGATE_DATA_DIR, then ./data)",
  },
  {
    flag: '--database-url <url>',
    key: 'databaseUrl',
    help: 'PostgreSQL URL (default DATABASE_URL; unset: SQLite)',
  },
  {
    flag: '--db-schema <schema>',
    key: 'dbSchema',
    help: 'PostgreSQL schema (default FLEETGATE_DB_SCHEMA, then public)',
  },
  { flag: '--port <port>', key: 'httpPort', help: 'HTTP port (default FLEETGATE_HTTP_PORT, then 8080)' },
  {
    flag: '--ssh-port <port>',
    key: 'sshPort',
    help: 'SSH gateway port (default FLEETGATE_SSH_PORT, then 2222)',
  },
  {
    flag: '--proxy-port <port>',
    key: 'proxyPort',
    help: 'CONNECT proxy port (default FLEETGATE_PROXY_PORT, then 3128)',
  },
  {
    flag: '--listen <address>',
    key: 'listen',
    help: 'address to bind (default FLEETGATE_LISTEN, then 127.0.0.1)',
  },
  {
    flag: '--tls-cert <file>',
    key: 'tlsCert',
    help: 'PEM certificate for HTTPS (default FLEETGATE_TLS_CERT)',
  },
  { flag: '--tls-key <file>', key: 'tlsKey', help: 'PEM private key for HTTPS (default FLEETGATE_TLS_KEY)' },
] as const;

/** How each level is shown, padded so that the messages line up. */
const levelText = { ok: 'ok     ', warning: 'warning', problem: 'problem', skipped: 'skipped' } as const;

/** `doctor`: checks the install on this machine with the settings `serve` uses; exit 1 when a check finds a problem. */
export function registerDoctorCommand(program: Command, io: CliIo): void {
  const command = program
    .command('doctor')
    .description(
      "check this machine's install with the settings serve uses (configuration, data directory, database, ports, disk, certificates, clock, backups); exit 1 on a problem",
    );
  const options = doctorFlags.map(({ flag, key, help }) => ({ key, option: new Option(flag, help) }));
  for (const { option } of options) command.addOption(option);
  command.action(async (values: Record<string, string | undefined>, cmd: Command) => {
    const ctx = new CommandContext(io, cmd);
    const { runDoctor } = await import('@fleetgate/server');
    const flags: Record<string, string> = {};
    for (const { key, option } of options) {
      const value = values[option.attributeName()];
      if (value !== undefined) flags[key] = value;
    }
    const report = await runDoctor({ env: io.env, flags });
    ctx.out.result(report, ({ checks, ok }) => {
      const width = Math.max(...checks.map((entry) => entry.check.length));
      const lines = checks.map(
        (entry) => `${levelText[entry.level]}  ${entry.check.padEnd(width)}  ${entry.message}`,
      );
      const count = (level: string) => checks.filter((entry) => entry.level === level).length;
      const warnings = count('warning');
      lines.push(
        '',
        ok
          ? `no problem found${warnings ? ` (${warnings} warning(s))` : ''}`
          : `${count('problem')} problem(s): fix them, then run fleetgate doctor again`,
        '',
      );
      return lines.join('\n');
    });
    // The report is the whole message: the exit status alone says there was a problem.
    if (!report.ok) throw new CliError('', { exitCode: 1 });
  });
}
