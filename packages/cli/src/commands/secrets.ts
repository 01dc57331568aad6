import { type Command, Option } from 'commander';
import type { CliIo } from '../context.ts';
import { CliError } from '../errors.ts';

/**
 * `fleetgate secrets rotate`: re-seals every secret variable with a new key (it reads the same data directory,
 * database and FLEETGATE_SECRETS_KEY as `serve`; a server on the key file may keep running).
 */
export function registerSecretsCommands(program: Command, io: CliIo): void {
  const secrets = program.command('secrets').description('the keys that seal secret variables at rest');
  secrets
    .command('rotate')
    .description(
      're-seal every secret variable with a new key (added to <data dir>/keys/secrets.json, older keys kept; ' +
        'with FLEETGATE_SECRETS_KEY, put the new key first, <new>,<old>, and restart the servers with it first)',
    )
    .addOption(new Option('--data-dir <dir>', 'the data directory of the server (default ./data)'))
    .addOption(new Option('--database-url <url>', 'PostgreSQL URL (default: SQLite in the data directory)'))
    .addOption(new Option('--db-schema <schema>', 'PostgreSQL schema (default public)'))
    .action(async (values: { dataDir?: string; databaseUrl?: string; dbSchema?: string }) => {
      const { rotateSecretKeys } = await import('@fleetgate/server');
      const flags: Record<string, string> = {};
      if (values.dataDir !== undefined) flags.dataDir = values.dataDir;
      if (values.databaseUrl !== undefined) flags.databaseUrl = values.databaseUrl;
      if (values.dbSchema !== undefined) flags.dbSchema = values.dbSchema;
      try {
        const rotated = await rotateSecretKeys({ env: io.env, flags });
        io.stdout.write(
          `re-sealed ${rotated.resealed} secret value${rotated.resealed === 1 ? '' : 's'} with key ${rotated.keyId} (${rotated.source})\n`,
        );
      } catch (error) {
        if (error instanceof Error && (error.name === 'SecretKeyError' || error.name === 'ConfigError'))
          throw new CliError(error.message, { exitCode: 2, cause: error });
        throw error;
      }
    });
}
