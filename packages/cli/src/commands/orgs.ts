import { Argument, type Command, InvalidArgumentError } from 'commander';
import type { DeviceLimit, Org, Page, RecordingSetting } from '../api.ts';
import { parseRef, withPaging } from '../arguments.ts';
import { apiPath } from '../client.ts';
import { saveCredentials } from '../config.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
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
    .argument('<org>', 'organization id, slug or name', parseRef)
    .action(async (org: string, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      ctx.out.record(await ctx.api<Org>('GET', apiPath`/orgs/${org}`));
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
    .argument('<org>', 'organization id, slug or name', parseRef)
    .argument('<name>', 'new display name')
    .action(async (org: string, name: string, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      ctx.out.record(await ctx.api<Org>('PATCH', apiPath`/orgs/${org}`, { body: { name } }));
    });

  orgs
    .command('rm')
    .description('delete an empty organization (owners)')
    .argument('<org>', 'organization id, slug or name', parseRef)
    .action(async (org: string, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      await ctx.api('DELETE', apiPath`/orgs/${org}`);
      ctx.out.done(`deleted organization ${org}`);
    });

  orgs
    .command('recording')
    .description("show, or turn on or off, the recording of an organization's shell sessions (admins)")
    .addArgument(new Argument('[state]', 'on or off (omit to show it)').choices(['on', 'off']))
    .option('--org <org>', 'organization id, slug or name (default: `orgs use`, or your only one)', parseRef)
    .action(async (state: 'on' | 'off' | undefined, options: { org?: string }, command: Command) => {
      const ctx = new CommandContext(io, command);
      const path = apiPath`/orgs/${await ctx.orgId(options.org)}/session-recording`;
      const answer =
        state === undefined
          ? await ctx.api<RecordingSetting>('GET', path)
          : await ctx.api<RecordingSetting>('PUT', path, { body: { enabled: state === 'on' } });
      ctx.out.result(answer, ({ orgId, enabled }) =>
        enabled
          ? `organization ${orgId} records its shell sessions (play them with \`fleetgate sessions play <id>\`)\n`
          : `organization ${orgId} does not record its shell sessions\n`,
      );
    });

  orgs
    .command('device-limit')
    .description('show or set how many devices an organization may have accepted (owners and admins)')
    .argument('[limit]', 'a count, or "unlimited" (omit to show it)', parseLimit)
    .option('--org <org>', 'organization id, slug or name (default: `orgs use`, or your only one)', parseRef)
    .action(async (limit: number | null | undefined, options: { org?: string }, command: Command) => {
      const ctx = new CommandContext(io, command);
      const path = apiPath`/orgs/${await ctx.orgId(options.org)}/device-limit`;
      const answer =
        limit === undefined
          ? await ctx.api<DeviceLimit>('GET', path)
          : await ctx.api<DeviceLimit>('PUT', path, { body: { limit } });
      ctx.out.result(
        answer,
        ({ orgId, limit: max, accepted }) =>
          `organization ${orgId}: ${accepted} devices accepted, limit ${max ?? 'unlimited'}\n`,
      );
    });

  orgs
    .command('use')
    .description('the organization commands act in when --org is left out (saved with the profile)')
    .argument('[org]', 'organization id, slug or name', parseRef)
    .option('--clear', 'forget the default: commands then need --org unless you are in one organization only')
    .action(async (org: string | undefined, options: { clear?: boolean }, command: Command) => {
      const ctx = new CommandContext(io, command);
      if (org === undefined && !options.clear) throw new CliError('which organization? pass one, or --clear');
      // Checked on the server first: a typo must not become the default of every later command.
      const found = org === undefined ? undefined : await ctx.api<Org>('GET', apiPath`/orgs/${org}`);
      await saveDefaultOrg(ctx, found?.slug);
      ctx.out.result({ org: found ?? null }, () =>
        found
          ? `commands act in ${found.name} (${found.slug}) when --org is left out\n`
          : 'no default organization\n',
      );
    });
}

/** Saves `org` (a slug; undefined forgets it) as the default organization of the command's profile. */
async function saveDefaultOrg(ctx: CommandContext, org: string | undefined): Promise<void> {
  const profile = await ctx.profileName();
  const login = (await ctx.profiles()).profiles[profile];
  if (!login)
    throw new CliError(`not logged in with profile "${profile}": run \`fleetgate login --server URL\``);
  const { org: _, ...rest } = login;
  await saveCredentials(ctx.io.env, org === undefined ? rest : { ...rest, org }, profile);
}

/** Commander parser for a device limit: a count from 0, or `unlimited` (null). */
function parseLimit(text: string): number | null {
  if (text.trim() === 'unlimited') return null;
  if (!/^\d{1,8}$/.test(text.trim()))
    throw new InvalidArgumentError('expected a count from 0, or "unlimited"');
  return Number(text.trim());
}
