import type { Command } from 'commander';
import type { DeviceType, Items } from '../api.ts';
import { parseId, parseRef } from '../arguments.ts';
import { apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import type { Column } from '../output.ts';

const deviceTypeColumns: Column<DeviceType>[] = [
  { header: 'ID', value: (type) => type.id },
  { header: 'SLUG', value: (type) => type.slug },
  { header: 'NAME', value: (type) => type.name },
  { header: 'ARCH', value: (type) => type.arch },
  { header: 'ORG', value: (type) => (type.builtin ? 'built-in' : type.orgId) },
];

/** `device-types ls|create|rm`: the built-in types and each organization's own. */
export function registerDeviceTypeCommands(program: Command, io: CliIo): void {
  const deviceTypes = program.command('device-types').description('device types (hardware models)');

  deviceTypes
    .command('ls')
    .description('list the built-in device types and those of my organizations')
    .option('--org <org>', "only this organization's (and the built-in ones): id, slug or name", parseRef)
    .action(async (options: { org?: string }, command: Command) => {
      const ctx = new CommandContext(io, command);
      const answer = await ctx.api<Items<DeviceType>>('GET', '/device-types', {
        query: { orgId: await ctx.optionalOrgId(options.org) },
      });
      ctx.out.list(answer, deviceTypeColumns, 'device types');
    });

  deviceTypes
    .command('create')
    .description('add a custom device type to an organization')
    .argument('<slug>', 'short name used by devices and fleets, e.g. acme-gateway-v2')
    .option('--org <org>', 'organization id, slug or name (default: `orgs use`, or your only one)', parseRef)
    .requiredOption('--name <name>', 'display name')
    .requiredOption('--arch <arch>', 'CPU architecture: aarch64, armv7hf, amd64, …')
    .action(async (slug: string, options: { org?: string; name: string; arch: string }, command: Command) => {
      const ctx = new CommandContext(io, command);
      const type = await ctx.api<DeviceType>('POST', '/device-types', {
        body: { orgId: await ctx.orgId(options.org), slug, name: options.name, arch: options.arch },
      });
      ctx.out.record(type);
    });

  deviceTypes
    .command('rm')
    .description('remove an unused custom device type')
    .argument('<typeId>', 'device type id (built-in types cannot be removed)', parseId)
    .action(async (typeId: number, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      await ctx.api('DELETE', apiPath`/device-types/${typeId}`);
      ctx.out.done(`deleted device type ${typeId}`);
    });
}
