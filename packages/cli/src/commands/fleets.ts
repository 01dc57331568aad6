import { type Command, Option } from 'commander';
import { type Fleet, listSorts, type Page } from '../api.ts';
import { parseId, withPaging } from '../arguments.ts';
import { apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import type { Column } from '../output.ts';
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
  org?: number;
  search?: string;
  sort?: string;
  limit?: number;
  page?: number;
}

/** `fleets ls|show|create|rename|rm|tag`. */
export function registerFleetCommands(program: Command, io: CliIo): void {
  const fleets = program.command('fleets').description('fleets: groups of devices in an organization');

  withPaging(
    fleets
      .command('ls')
      .description('list the fleets I can see')
      .option('--org <orgId>', 'only this organization', parseId)
      .option('--search <text>', 'text in the name')
      .addOption(new Option('--sort <order>', 'order').choices(listSorts)),
  ).action(async (options: FleetListOptions, command: Command) => {
    const ctx = new CommandContext(io, command);
    const answer = await ctx.api<Page<Fleet>>('GET', '/fleets', {
      query: {
        orgId: options.org,
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
    .argument('<fleetId>', 'fleet id', parseId)
    .action(async (fleetId: number, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      ctx.out.record(await ctx.api<Fleet>('GET', apiPath`/fleets/${fleetId}`));
    });

  fleets
    .command('create')
    .description('create a fleet')
    .argument('<name>', 'fleet name')
    .requiredOption('--org <orgId>', 'organization id', parseId)
    .option('--description <text>', 'what the fleet is for')
    .option('--device-type <slug>', 'default device type of its devices, e.g. raspberrypi4-64')
    .action(
      async (
        name: string,
        options: { org: number; description?: string; deviceType?: string },
        command: Command,
      ) => {
        const ctx = new CommandContext(io, command);
        const fleet = await ctx.api<Fleet>('POST', '/fleets', {
          body: {
            orgId: options.org,
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
    .argument('<fleetId>', 'fleet id', parseId)
    .argument('<name>', 'new name')
    .action(async (fleetId: number, name: string, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      ctx.out.record(await ctx.api<Fleet>('PATCH', apiPath`/fleets/${fleetId}`, { body: { name } }));
    });

  fleets
    .command('rm')
    .description('delete an empty fleet')
    .argument('<fleetId>', 'fleet id', parseId)
    .action(async (fleetId: number, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      await ctx.api('DELETE', apiPath`/fleets/${fleetId}`);
      ctx.out.done(`deleted fleet ${fleetId}`);
    });

  registerTagCommand(fleets, io, {
    noun: 'fleet',
    argument: '<fleetId>',
    argumentHelp: 'fleet id',
    parse: parseId,
    path: (fleetId) => apiPath`/fleets/${fleetId}`,
  });
}
