import { type Command, Option } from 'commander';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';

/** Flags that say where the data is, as `fleetgate serve` takes them (each also has its environment variable). */
const whereFlags = [
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
] as const;

type WhereOptions = Record<string, string | undefined>;

async function targetOf(io: CliIo, values: WhereOptions) {
  const { loadConfig } = await import('@fleetgate/server');
  const flags: Record<string, string> = {};
  for (const { key } of whereFlags) if (values[key] !== undefined) flags[key] = values[key]!;
  try {
    const config = loadConfig(io.env, flags);
    return {
      dataDir: config.dataDir,
      databaseUrl: config.databaseUrl,
      dbSchema: config.dbSchema,
      ...(config.backupDir ? { backupDir: config.backupDir } : {}),
    };
  } catch (error) {
    throw new CliError(error instanceof Error ? error.message : String(error), { exitCode: 2, cause: error });
  }
}

/** A progress line on standard error: rewritten in place on a terminal, a line per tenth otherwise; quiet with --json off a terminal. */
function progressLine(io: CliIo, json: boolean) {
  const tty = (io.stderr as { isTTY?: boolean }).isTTY === true;
  let lastStep = '';
  let lastTenth = -1;
  return {
    update(step: string, done: number, total: number) {
      if (json && !tty) return;
      const share = total > 0 ? Math.min(1, done / total) : 1;
      const tenth = Math.floor(share * 10);
      if (!tty && step === lastStep && tenth === lastTenth) return;
      if (tty && lastStep && step !== lastStep) io.stderr.write('\n');
      lastStep = step;
      lastTenth = tenth;
      const width = 30;
      const filled = Math.round(share * width);
      const text = `${step} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round(share * 100)}%`;
      io.stderr.write(tty ? `\r${text}` : `${text}\n`);
    },
    done() {
      if (tty && lastStep) io.stderr.write('\n');
    },
  };
}

function megabytes(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** `backup` and `restore`: a consistent copy of a fleetgate (database, keys, certificates) and putting one back. */
export function registerBackupCommands(program: Command, io: CliIo): void {
  const backup = program
    .command('backup')
    .description('copy the database, keys and certificates into one file; the server may keep running')
    .option(
      '--to <file>',
      'the backup file, or a folder for it (default: FLEETGATE_BACKUP_DIR, else <data dir>/backups; named fleetgate-<time>.tar.gz)',
    );
  for (const { flag, help } of whereFlags) backup.addOption(new Option(flag, help));
  backup.addHelpText(
    'after',
    '\nThe file holds private keys (TLS, SSH host keys, token signing keys): it is made 0600; keep it as safe as the server.',
  );
  backup.action(async (values: WhereOptions & { to?: string }, command: Command) => {
    const ctx = new CommandContext(io, command);
    const target = await targetOf(io, values);
    const { createBackup, BackupError } = await import('@fleetgate/server');
    const progress = progressLine(io, ctx.out.json);
    try {
      const result = await createBackup(target, {
        ...(values.to ? { file: values.to } : {}),
        progress: progress.update,
      });
      progress.done();
      ctx.out.result(
        { file: result.file, bytes: result.bytes, manifest: result.manifest },
        () =>
          `backup written to ${result.file} (${megabytes(result.bytes)}, ${result.manifest.entries.length} entries, ` +
          `schema ${result.manifest.schemaVersion})\n` +
          'it holds private keys (mode 0600): copy it off this machine, somewhere as safe as the server\n',
      );
    } catch (error) {
      progress.done();
      if (error instanceof BackupError) throw new CliError(error.message, { cause: error });
      throw error;
    }
  });

  const restore = program
    .command('restore')
    .description('put a backup back (stop the server first); what was there is kept aside, not deleted')
    .argument('<file>', 'a backup made by fleetgate backup');
  for (const { flag, help } of whereFlags) restore.addOption(new Option(flag, help));
  restore.action(async (file: string, values: WhereOptions, command: Command) => {
    const ctx = new CommandContext(io, command);
    const target = await targetOf(io, values);
    const { restoreBackup, BackupError } = await import('@fleetgate/server');
    const progress = progressLine(io, ctx.out.json);
    try {
      const result = await restoreBackup(target, file, { progress: progress.update });
      progress.done();
      ctx.out.result(result, () => {
        const lines = [
          `restored ${file} (made ${result.manifest.createdAt} by fleetgate ${result.manifest.fleetgateVersion}, ` +
            `schema ${result.manifest.schemaVersion}) into ${target.dataDir}` +
            (target.databaseUrl ? ` and the PostgreSQL schema "${target.dbSchema}"` : ''),
          `  files        ${result.restoredFiles.join(', ')}`,
        ];
        if (result.keptAside.files)
          lines.push(`  kept aside   the previous files, in ${result.keptAside.files}`);
        if (result.keptAside.postgresSchema)
          lines.push(
            `  kept aside   the previous database, as the PostgreSQL schema "${result.keptAside.postgresSchema}"`,
          );
        lines.push(
          'next: start the server (fleetgate serve with the same settings); it brings an older schema up to date as it starts.',
          '      Once it works, remove what was kept aside.',
          '',
        );
        return lines.join('\n');
      });
    } catch (error) {
      progress.done();
      if (error instanceof BackupError) throw new CliError(error.message, { cause: error });
      throw error;
    }
  });
}
