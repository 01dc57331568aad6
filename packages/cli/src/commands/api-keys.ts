import type { Command } from 'commander';
import type { ApiKey, Items } from '../api.ts';
import { parseCount, parseId } from '../arguments.ts';
import { apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import type { Column } from '../output.ts';

const apiKeyColumns: Column<ApiKey>[] = [
  { header: 'ID', value: (key) => key.id },
  { header: 'NAME', value: (key) => key.name },
  { header: 'PREFIX', value: (key) => key.prefix },
  { header: 'CREATED', value: (key) => key.createdAt },
  { header: 'EXPIRES', value: (key) => key.expiresAt ?? 'never' },
  { header: 'LAST USED', value: (key) => key.lastUsedAt ?? 'never' },
  { header: 'REVOKED', value: (key) => key.revokedAt },
];

/** `api-keys ls|create|revoke`: my keys for scripts and CI. */
export function registerApiKeyCommands(program: Command, io: CliIo): void {
  const apiKeys = program.command('api-keys').description('my API keys, for scripts (FLEETGATE_TOKEN)');

  apiKeys
    .command('ls')
    .description('list my API keys (the keys themselves are never shown again)')
    .action(async (_options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      ctx.out.list(await ctx.api<Items<ApiKey>>('GET', '/api-keys'), apiKeyColumns, 'API keys');
    });

  apiKeys
    .command('create')
    .description('create an API key; it is shown once')
    .argument('<name>', 'what it is for, e.g. ci-pipeline')
    .option('--expires-in-days <days>', 'lifetime in days (default: no expiry)', parseCount)
    .action(async (name: string, options: { expiresInDays?: number }, command: Command) => {
      const ctx = new CommandContext(io, command);
      const created = await ctx.api<ApiKey & { key: string }>('POST', '/api-keys', {
        body: { name, expiresInDays: options.expiresInDays },
      });
      ctx.out.result(created, () =>
        [
          `created API key ${created.id} "${created.name}" (expires ${created.expiresAt ?? 'never'})`,
          '',
          `  ${created.key}`,
          '',
          'Copy it now: it cannot be shown again. Use it as FLEETGATE_TOKEN or --token.',
          '',
        ].join('\n'),
      );
    });

  apiKeys
    .command('revoke')
    .description('revoke one of my API keys')
    .argument('<keyId>', 'API key id (from api-keys ls)', parseId)
    .action(async (keyId: number, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      await ctx.api('DELETE', apiPath`/api-keys/${keyId}`);
      ctx.out.done(`revoked API key ${keyId}`);
    });
}
