import { type Command, Option } from 'commander';
import { type Member, type Page, roles, type WithOneTimePassword } from '../api.ts';
import { collectRefs, parseId, parseRef, withPaging } from '../arguments.ts';
import { apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
import type { Column } from '../output.ts';
import { printWithOneTimePassword } from './users.ts';

const memberColumns: Column<Member>[] = [
  { header: 'USER ID', value: (member) => member.userId },
  { header: 'EMAIL', value: (member) => member.email },
  { header: 'NAME', value: (member) => member.name },
  { header: 'ROLE', value: (member) => member.role },
  { header: 'FLEETS', value: (member) => member.fleetIds ?? 'all' },
  { header: 'ADDED', value: (member) => member.createdAt },
];

const fleetOption = () =>
  new Option(
    '--fleet <fleet>',
    'narrow the membership to this fleet, id or name (repeat for several)',
  ).argParser(collectRefs);

interface MemberOptions {
  role?: string;
  fleet?: string[];
  allFleets?: boolean;
}

/** `members ls|add|set|rm`: people of an organization and their roles. */
export function registerMemberCommands(program: Command, io: CliIo): void {
  const members = program.command('members').description("an organization's people and their roles");

  withPaging(
    members
      .command('ls')
      .description('list the people of an organization')
      .argument('<org>', 'organization id, slug or name', parseRef),
  ).action(async (orgId: string, options: { limit?: number; page?: number }, command: Command) => {
    const ctx = new CommandContext(io, command);
    const answer = await ctx.api<Page<Member>>('GET', apiPath`/orgs/${orgId}/members`, { query: options });
    ctx.out.list(answer, memberColumns, 'members');
  });

  members
    .command('add')
    .description('add a person; an unknown e-mail creates the user and shows a one-time password')
    .argument('<org>', 'organization id, slug or name', parseRef)
    .argument('<email>', "the person's e-mail")
    .addOption(new Option('--role <role>', 'their role').choices(roles).makeOptionMandatory())
    .addOption(fleetOption())
    .option('--name <name>', 'display name, when the user is created')
    .action(
      async (orgId: string, email: string, options: MemberOptions & { name?: string }, command: Command) => {
        const ctx = new CommandContext(io, command);
        const member = await ctx.api<Member & WithOneTimePassword>('POST', apiPath`/orgs/${orgId}/members`, {
          body: {
            email,
            role: options.role,
            fleetIds: await fleetIdsOf(ctx, options.fleet),
            name: options.name,
          },
        });
        printWithOneTimePassword(ctx.out, member, member.email);
      },
    );

  members
    .command('set')
    .description("change a person's role or fleets")
    .argument('<org>', 'organization id, slug or name', parseRef)
    .argument('<userId>', 'user id', parseId)
    .addOption(new Option('--role <role>', 'new role').choices(roles))
    .addOption(fleetOption())
    .addOption(
      new Option('--all-fleets', 'widen the membership to the whole organization').conflicts('fleet'),
    )
    .action(async (orgId: string, userId: number, options: MemberOptions, command: Command) => {
      const ctx = new CommandContext(io, command);
      const fleetIds = options.allFleets ? null : await fleetIdsOf(ctx, options.fleet);
      if (options.role === undefined && fleetIds === undefined) {
        throw new CliError('nothing to change: pass --role, --fleet or --all-fleets');
      }
      const member = await ctx.api<Member>('PATCH', apiPath`/orgs/${orgId}/members/${userId}`, {
        body: { role: options.role, fleetIds },
      });
      ctx.out.record(member);
    });

  members
    .command('rm')
    .description('remove a person from an organization')
    .argument('<org>', 'organization id, slug or name', parseRef)
    .argument('<userId>', 'user id', parseId)
    .action(async (orgId: string, userId: number, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      await ctx.api('DELETE', apiPath`/orgs/${orgId}/members/${userId}`);
      ctx.out.done(`removed user ${userId} from organization ${orgId}`);
    });
}

/** The ids of the fleets named with `--fleet` (ids or names), or undefined when none was. */
async function fleetIdsOf(ctx: CommandContext, fleets: string[] | undefined): Promise<number[] | undefined> {
  if (fleets === undefined) return undefined;
  const ids: number[] = [];
  for (const fleet of fleets) ids.push(await ctx.fleetId(fleet));
  return ids;
}
