import { type Command, Option } from 'commander';
import type { ApiKey, Items } from '../api.ts';
import { parseCount, parseId } from '../arguments.ts';
import { apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import type { Column } from '../output.ts';

const apiKeyColumns: Column<ApiKey>[] = [
  { header: 'ID', value: (key) => key.id },
  { header: 'NAME', value: (key) => key.name },
  { header: 'SERVICE', value: (key) => key.service ?? null },
  { header: 'PREFIX', value: (key) => key.prefix },
  { header: 'CREATED', value: (key) => key.createdAt },
  { header: 'EXPIRES', value: (key) => key.expiresAt ?? 'never' },
  { header: 'LAST USED', value: (key) => key.lastUsedAt ?? 'never' },
  { header: 'REVOKED', value: (key) => key.revokedAt },
];

/** The services a service credential can be made for (the server's `serviceKinds`). */
const services = ['openssh'] as const;

/** `api-keys ls|create|revoke`: my keys for scripts and CI, and service credentials. */
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
    .addOption(
      new Option(
        '--service <service>',
        'a service credential instead (server administrators): openssh = the OpenSSH bastion, which may only ' +
          'look up SSH keys and open sessions as their owners',
      ).choices(services),
    )
    .action(
      async (
        name: string,
        options: { expiresInDays?: number; service?: (typeof services)[number] },
        command: Command,
      ) => {
        const ctx = new CommandContext(io, command);
        const created = await ctx.api<ApiKey & { key: string }>('POST', '/api-keys', {
          body: { name, expiresInDays: options.expiresInDays, service: options.service },
        });
        const kind = created.service ? `${created.service} service key` : 'API key';
        ctx.out.result(created, () =>
          [
            `created ${kind} ${created.id} "${created.name}" (expires ${created.expiresAt ?? 'never'})`,
            '',
            `  ${created.key}`,
            '',
            created.service
              ? 'Copy it now: it cannot be shown again. Put it in the file given to --token-file (root-only).'
              : 'Copy it now: it cannot be shown again. Use it as FLEETGATE_TOKEN or --token.',
            '',
          ].join('\n'),
        );
      },
    );

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
