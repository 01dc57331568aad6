import { type Command, Option } from 'commander';
import { type Fleet, listSorts, type Page } from '../api.ts';
import { parseRef, withPaging } from '../arguments.ts';
import { apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import type { Column } from '../output.ts';
import { namedArgument } from './completion.ts';
import { registerPortsCommand } from './ports.ts';
import { registerTagCommand } from './tags.ts';

const fleetColumns: Column<Fleet>[] = [
  { header: 'ID', value: (fleet) => fleet.id },
  { header: 'ORG', value: (fleet) => fleet.orgId },
  { header: 'NAME', value: (fleet) => fleet.name },
  { header: 'DEVICE TYPE', value: (fleet) => fleet.defaultDeviceType },
  { header: 'DEVICES', value: (fleet) => fleet.deviceCount },
  { header: 'TAGS', value: (fleet) => fleet.tags },
  { header: 'CREATED', value: (fleet) => fleet.createdAt },
];

interface FleetListOptions {
  org?: string;
  search?: string;
  sort?: string;
  limit?: number;
  page?: number;
}

/** `<fleet>`, completed with the names of the person's fleets. */
const fleetArgument = () => namedArgument('<fleet>', 'fleet id or name', 'fleets').argParser(parseRef);

/** `fleets ls|show|create|rename|rm|tag`. */
export function registerFleetCommands(program: Command, io: CliIo): void {
  const fleets = program.command('fleets').description('fleets: groups of devices in an organization');

  withPaging(
    fleets
      .command('ls')
      .description('list the fleets I can see')
      .option('--org <org>', 'only this organization (id, slug or name)', parseRef)
      .option('--search <text>', 'text in the name')
      .addOption(new Option('--sort <order>', 'order').choices(listSorts)),
  ).action(async (options: FleetListOptions, command: Command) => {
    const ctx = new CommandContext(io, command);
    const answer = await ctx.api<Page<Fleet>>('GET', '/fleets', {
      query: {
        orgId: await ctx.optionalOrgId(options.org),
        q: options.search,
        sort: options.sort,
        limit: options.limit,
        page: options.page,
      },
    });
    ctx.out.list(answer, fleetColumns, 'fleets');
  });

  fleets
    .command('show')
    .description('show one fleet')
    .addArgument(fleetArgument())
    .action(async (fleet: string, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      ctx.out.record(await ctx.api<Fleet>('GET', apiPath`/fleets/${fleet}`));
    });

  fleets
    .command('create')
    .description('create a fleet')
    .argument('<name>', 'fleet name')
    .option('--org <org>', 'organization id, slug or name (default: `orgs use`, or your only one)', parseRef)
    .option('--description <text>', 'what the fleet is for')
    .option('--device-type <slug>', 'default device type of its devices, e.g. raspberrypi4-64')
    .action(
      async (
        name: string,
        options: { org?: string; description?: string; deviceType?: string },
        command: Command,
      ) => {
        const ctx = new CommandContext(io, command);
        const fleet = await ctx.api<Fleet>('POST', '/fleets', {
          body: {
            orgId: await ctx.orgId(options.org),
            name,
            description: options.description,
            defaultDeviceType: options.deviceType,
          },
        });
        ctx.out.record(fleet);
      },
    );

  fleets
    .command('rename')
    .description('rename a fleet')
    .addArgument(fleetArgument())
    .argument('<name>', 'new name')
    .action(async (fleet: string, name: string, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      ctx.out.record(await ctx.api<Fleet>('PATCH', apiPath`/fleets/${fleet}`, { body: { name } }));
    });

  fleets
    .command('rm')
    .description('delete an empty fleet')
    .addArgument(fleetArgument())
    .action(async (fleet: string, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      await ctx.api('DELETE', apiPath`/fleets/${fleet}`);
      ctx.out.done(`deleted fleet ${fleet}`);
    });

  registerPortsCommand(fleets, io, {
    noun: 'fleet',
    argument: fleetArgument,
    path: (fleet) => apiPath`/fleets/${fleet}`,
    inherits: 'the default (22)',
  });

  registerTagCommand(fleets, io, {
    noun: 'fleet',
    argument: '<fleet>',
    argumentHelp: 'fleet id or name',
    parse: parseRef,
    path: (fleet) => apiPath`/fleets/${fleet}`,
  });
}
