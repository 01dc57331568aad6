import type { Command } from 'commander';
import type { Device, Page } from '../api.ts';
import { parseDeviceRef, parseId, parseRef, withPaging } from '../arguments.ts';
import { apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
import type { Column } from '../output.ts';
import { confirmDeviceCommand } from './devices.ts';

/** A device the server no longer knows that keeps presenting its uuid + key (after a database loss). */
export interface RecoveryCandidate {
  id: number;
  uuid: string;
  sourceIp: string | null;
  agentVersion: string | null;
  firstSeenAt: string;
  lastSeenAt: string;
  attempts: number;
}

interface AdoptAnswer {
  items: { id: number; uuid: string | null; outcome: string; deviceId?: number; reason?: string }[];
}

const candidateColumns: Column<RecoveryCandidate>[] = [
  { header: 'ID', value: (c) => c.id },
  { header: 'UUID', value: (c) => c.uuid },
  { header: 'FROM', value: (c) => c.sourceIp },
  { header: 'ATTEMPTS', value: (c) => c.attempts },
  { header: 'FIRST SEEN', value: (c) => c.firstSeenAt },
  { header: 'LAST SEEN', value: (c) => c.lastSeenAt },
];

const adoptColumns: Column<AdoptAnswer['items'][number]>[] = [
  { header: 'ID', value: (r) => r.id },
  { header: 'UUID', value: (r) => r.uuid },
  { header: 'OUTCOME', value: (r) => r.outcome },
  { header: 'DEVICE', value: (r) => r.deviceId },
  { header: 'REASON', value: (r) => r.reason },
];

/** `recovery ls|adopt|discard`: re-adopt devices after a database loss (server administrators). */
export function registerRecoveryCommands(program: Command, io: CliIo): void {
  const recovery = program
    .command('recovery')
    .description('unknown devices presenting uuid + key (after a database loss): adopt or discard them');

  withPaging(recovery.command('ls').description('list recovery candidates, most recently seen first')).action(
    async (options: { limit?: number; page?: number }, command: Command) => {
      const ctx = new CommandContext(io, command);
      const answer = await ctx.api<Page<RecoveryCandidate>>('GET', '/recovery-candidates', {
        query: { limit: options.limit, page: options.page },
      });
      ctx.out.list(answer, candidateColumns, 'recovery candidates');
    },
  );

  recovery
    .command('adopt')
    .description('recreate candidates as devices of a fleet; their own keys work again')
    .argument('<ids...>', 'candidate ids (from recovery ls)', collectIdArguments)
    .requiredOption('--fleet <fleet>', 'fleet to put them in (id or name)', parseRef)
    .option('--device-type <slug>', "device type (default: the fleet's default)")
    .action(async (ids: number[], options: { fleet: string; deviceType?: string }, command: Command) => {
      const ctx = new CommandContext(io, command);
      const answer = await ctx.api<AdoptAnswer>('POST', '/recovery-candidates/adopt', {
        body: { ids, fleetId: await ctx.fleetId(options.fleet), deviceType: options.deviceType },
      });
      ctx.out.list(answer, adoptColumns, 'candidates');
      const skipped = answer.items.filter((r) => r.outcome !== 'adopted').length;
      if (skipped > 0) throw new CliError(`${skipped} of ${answer.items.length} candidates were not adopted`);
    });

  recovery
    .command('discard')
    .description('remove candidates from the queue')
    .argument('<ids...>', 'candidate ids (from recovery ls)', collectIdArguments)
    .action(async (ids: number[], _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      const answer = await ctx.api<{ discarded: number }>('POST', '/recovery-candidates/discard', {
        body: { ids },
      });
      ctx.out.result(answer, () => `discarded ${answer.discarded} recovery candidates\n`);
    });
}

/** `devices decommission <device>`: added to the `devices` command registered before it. */
export function registerDecommissionCommand(program: Command, io: CliIo): void {
  const devices = program.commands.find((c) => c.name() === 'devices') ?? program.command('devices');
  devices
    .command('decommission')
    .description('decommission a device: every key and token it holds is refused at once')
    .argument('<device>', 'device name, uuid, unique uuid prefix or id', parseDeviceRef)
    .option('-y, --yes', 'do not ask for confirmation (required when standard input is not a terminal)')
    .action(async (device: string, options: { yes?: boolean }, command: Command) => {
      const ctx = new CommandContext(io, command);
      await confirmDeviceCommand(ctx, device, 'Decommission', options);
      const answer = await ctx.api<Device>('POST', apiPath`/devices/${device}/decommission`);
      ctx.out.result(answer, () => `decommissioned device ${answer.id} (${answer.uuid})\n`);
    });
}

function collectIdArguments(text: string, previous: number[] | undefined): number[] {
  return [...(previous ?? []), parseId(text)];
}
