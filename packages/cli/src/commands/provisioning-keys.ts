import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { Items } from '../api.ts';
import { parseCount, parseId, parseRef } from '../arguments.ts';
import { apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
import type { Column } from '../output.ts';

/** A fleet's provisioning key as `GET /fleets/:fleetId/provisioning-keys` lists it (never the key itself). */
export interface ProvisioningKey {
  id: number;
  orgId: number;
  fleetId: number;
  name: string;
  prefix: string;
  maxUses: number | null;
  uses: number;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

const provisioningKeyColumns: Column<ProvisioningKey>[] = [
  { header: 'ID', value: (key) => key.id },
  { header: 'NAME', value: (key) => key.name },
  { header: 'PREFIX', value: (key) => key.prefix },
  { header: 'USES', value: (key) => (key.maxUses === null ? `${key.uses}` : `${key.uses}/${key.maxUses}`) },
  { header: 'EXPIRES', value: (key) => key.expiresAt ?? 'never' },
  { header: 'LAST USED', value: (key) => key.lastUsedAt ?? 'never' },
  { header: 'REVOKED', value: (key) => key.revokedAt },
];

/** `provisioning-keys create|ls|rm`: fleet secrets with which devices register themselves. */
export function registerProvisioningKeyCommands(program: Command, io: CliIo): void {
  const keys = program
    .command('provisioning-keys')
    .description('provisioning keys: devices register into a fleet with one (POST /devices/register)');

  keys
    .command('create')
    .description('create a provisioning key for a fleet; it is shown once')
    .argument('<name>', 'what it is for, e.g. factory-line-1')
    .requiredOption('--fleet <fleet>', 'fleet id or name', parseRef)
    .option('--expires-in-days <days>', 'lifetime in days (default: no expiry)', parseCount)
    .option('--max-uses <n>', 'devices it may register at most (default: unlimited)', parseCount)
    .action(
      async (
        name: string,
        options: { fleet: string; expiresInDays?: number; maxUses?: number },
        command: Command,
      ) => {
        const ctx = new CommandContext(io, command);
        const created = await ctx.api<ProvisioningKey & { key: string }>(
          'POST',
          apiPath`/fleets/${options.fleet}/provisioning-keys`,
          { body: { name, expiresInDays: options.expiresInDays, maxUses: options.maxUses } },
        );
        ctx.out.result(created, () =>
          [
            `created provisioning key ${created.id} "${created.name}" for fleet ${created.fleetId}` +
              ` (max uses ${created.maxUses ?? 'unlimited'}, expires ${created.expiresAt ?? 'never'})`,
            '',
            `  ${created.key}`,
            '',
            'Copy it now: it cannot be shown again. Devices send it as Authorization: Bearer to POST /api/v1/devices/register.',
            '',
          ].join('\n'),
        );
      },
    );

  keys
    .command('restore')
    .description(
      'after a database loss: give a fleet back a provisioning key that devices still hold (in their OS image, agent.json or mender.conf TenantToken)',
    )
    .argument('<name>', 'what it is for, e.g. factory-line-1')
    .requiredOption('--fleet <fleet>', 'fleet id or name', parseRef)
    .requiredOption(
      '--key-file <file>',
      'a file holding the key (kept off the command line, where ps would show it)',
    )
    .option('--expires-in-days <days>', 'lifetime in days (default: no expiry)', parseCount)
    .option('--max-uses <n>', 'devices it may register at most (default: unlimited)', parseCount)
    .action(
      async (
        name: string,
        options: { fleet: string; keyFile: string; expiresInDays?: number; maxUses?: number },
        command: Command,
      ) => {
        const ctx = new CommandContext(io, command);
        let key: string;
        try {
          key = (await readFile(options.keyFile, 'utf8')).trim();
        } catch (error) {
          throw new CliError(`cannot read ${options.keyFile}: ${(error as Error).message}`);
        }
        const { key: _sent, ...restored } = await ctx.api<ProvisioningKey & { key: string }>(
          'POST',
          apiPath`/fleets/${options.fleet}/provisioning-keys`,
          { body: { name, key, expiresInDays: options.expiresInDays, maxUses: options.maxUses } },
        );
        ctx.out.result(
          restored,
          () =>
            `restored provisioning key ${restored.id} "${restored.name}" (${restored.prefix}…) for fleet ${restored.fleetId}` +
            ` (max uses ${restored.maxUses ?? 'unlimited'}, expires ${restored.expiresAt ?? 'never'})\n`,
        );
      },
    );

  keys
    .command('ls')
    .description("list a fleet's provisioning keys (the keys themselves are never shown again)")
    .requiredOption('--fleet <fleet>', 'fleet id or name', parseRef)
    .action(async (options: { fleet: string }, command: Command) => {
      const ctx = new CommandContext(io, command);
      const answer = await ctx.api<Items<ProvisioningKey>>(
        'GET',
        apiPath`/fleets/${options.fleet}/provisioning-keys`,
      );
      ctx.out.list(answer, provisioningKeyColumns, 'provisioning keys');
    });

  keys
    .command('rm')
    .description('revoke a provisioning key (devices it registered keep working)')
    .argument('<keyId>', 'provisioning key id (from provisioning-keys ls)', parseId)
    .action(async (keyId: number, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      await ctx.api('DELETE', apiPath`/provisioning-keys/${keyId}`);
      ctx.out.done(`revoked provisioning key ${keyId}`);
    });
}
