import type { Command } from 'commander';
import type { Org, Page } from '../api.ts';
import { parseId, withPaging } from '../arguments.ts';
import { apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import type { Column } from '../output.ts';

const orgColumns: Column<Org>[] = [
  { header: 'ID', value: (org) => org.id },
  { header: 'SLUG', value: (org) => org.slug },
  { header: 'NAME', value: (org) => org.name },
  { header: 'CREATED', value: (org) => org.createdAt },
];

/** `orgs ls|show|create|rename|rm`. */
export function registerOrgCommands(program: Command, io: CliIo): void {
  const orgs = program.command('orgs').description('organizations');

  withPaging(orgs.command('ls').description('list my organizations')).action(
    async (options: { limit?: number; page?: number }, command: Command) => {
      const ctx = new CommandContext(io, command);
      const answer = await ctx.api<Page<Org>>('GET', '/orgs', { query: options });
      ctx.out.list(answer, orgColumns, 'organizations');
    },
  );

  orgs
    .command('show')
    .description('show one organization')
    .argument('<orgId>', 'organization id', parseId)
    .action(async (orgId: number, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      ctx.out.record(await ctx.api<Org>('GET', apiPath`/orgs/${orgId}`));
    });

  orgs
    .command('create')
    .description('create an organization; you become its owner')
    .argument('<name>', 'display name')
    .option('--slug <slug>', 'short name in URLs: lower-case letters, digits, dashes (default from the name)')
    .action(async (name: string, options: { slug?: string }, command: Command) => {
      const ctx = new CommandContext(io, command);
      const org = await ctx.api<Org>('POST', '/orgs', {
        body: { name, slug: options.slug },
      });
      ctx.out.record(org);
    });

  orgs
    .command('rename')
    .description('rename an organization')
    .argument('<orgId>', 'organization id', parseId)
    .argument('<name>', 'new display name')
    .action(async (orgId: number, name: string, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      ctx.out.record(await ctx.api<Org>('PATCH', apiPath`/orgs/${orgId}`, { body: { name } }));
    });

  orgs
    .command('rm')
    .description('delete an empty organization (owners)')
    .argument('<orgId>', 'organization id', parseId)
    .action(async (orgId: number, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      await ctx.api('DELETE', apiPath`/orgs/${orgId}`);
      ctx.out.done(`deleted organization ${orgId}`);
    });
}
