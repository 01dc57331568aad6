import type { Command } from 'commander';
import type { Page } from '../api.ts';
import { parseId, parseRef, withPaging } from '../arguments.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
import type { Column } from '../output.ts';

/** A device's identity + public key waiting for (or holding) an admin's decision. */
export interface AuthSet {
  id: number;
  orgId: number;
  deviceId: number | null;
  deviceUuid: string | null;
  fleetId: number | null;
  identity: Record<string, string | string[]>;
  keyType: string;
  status: string;
  sourceIp: string | null;
  createdAt: string;
  lastRequestAt: string | null;
  requestCount: number;
}

interface BulkAnswer {
  items: { id: number; outcome: string; deviceId?: number; reason?: string }[];
}

const authSetColumns: Column<AuthSet>[] = [
  { header: 'ID', value: (s) => s.id },
  { header: 'IDENTITY', value: (s) => JSON.stringify(s.identity) },
  { header: 'KEY', value: (s) => s.keyType },
  { header: 'STATUS', value: (s) => s.status },
  { header: 'ORG', value: (s) => s.orgId },
  { header: 'FLEET', value: (s) => s.fleetId },
  { header: 'DEVICE', value: (s) => s.deviceUuid },
  { header: 'FROM', value: (s) => s.sourceIp },
  { header: 'REQUESTS', value: (s) => s.requestCount },
  { header: 'LAST REQUEST', value: (s) => s.lastRequestAt },
];

const bulkColumns: Column<BulkAnswer['items'][number]>[] = [
  { header: 'ID', value: (r) => r.id },
  { header: 'OUTCOME', value: (r) => r.outcome },
  { header: 'DEVICE', value: (r) => r.deviceId },
  { header: 'REASON', value: (r) => r.reason },
];

function collectIdArguments(text: string, previous: number[] | undefined): number[] {
  return [...(previous ?? []), parseId(text)];
}

/** `devices pending|accept|reject`: the queue of devices asking to join (Mender-style auth sets). */
export function registerPendingCommands(devices: Command, io: CliIo): void {
  withPaging(
    devices
      .command('pending')
      .description('devices waiting to be accepted (signed auth requests from unknown identities or keys)')
      .option('--org <org>', 'only this organization (id, slug or name)', parseRef)
      .option('--status <status>', 'pending (default), accepted, rejected or preauthorized', 'pending'),
  ).action(
    async (options: { org?: string; status: string; limit?: number; page?: number }, command: Command) => {
      const ctx = new CommandContext(io, command);
      if (!['pending', 'accepted', 'rejected', 'preauthorized'].includes(options.status))
        throw new CliError('--status must be pending, accepted, rejected or preauthorized');
      const answer = await ctx.api<Page<AuthSet>>('GET', '/auth-sets', {
        query: {
          status: options.status,
          orgId: await ctx.optionalOrgId(options.org),
          limit: options.limit,
          page: options.page,
        },
      });
      ctx.out.list(answer, authSetColumns, `${options.status} devices`);
    },
  );

  devices
    .command('accept')
    .description(
      'accept pending auth sets (ids from `devices pending`): each device gets a token on its next request',
    )
    .argument('<ids...>', 'auth set ids', collectIdArguments)
    .option(
      '--fleet <fleet>',
      "fleet for new devices, id or name (default: the proposed fleet, else the organization's oldest)",
      parseRef,
    )
    .action(async (ids: number[], options: { fleet?: string }, command: Command) => {
      const ctx = new CommandContext(io, command);
      const answer = await ctx.api<BulkAnswer>('POST', '/auth-sets/accept', {
        body: { ids, ...(options.fleet ? { fleetId: await ctx.fleetId(options.fleet) } : {}) },
      });
      report(ctx, answer);
    });

  devices
    .command('reject')
    .description('reject auth sets: their devices are refused from now on')
    .argument('<ids...>', 'auth set ids', collectIdArguments)
    .action(async (ids: number[], _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      report(ctx, await ctx.api<BulkAnswer>('POST', '/auth-sets/reject', { body: { ids } }));
    });
}

/** Prints per-id outcomes; any failed id makes the command fail after printing them all. */
function report(ctx: CommandContext, answer: BulkAnswer): void {
  ctx.out.list({ items: answer.items }, bulkColumns, 'auth sets');
  const failed = answer.items.filter((i) => i.outcome === 'error');
  if (failed.length) throw new CliError(`${failed.length} of ${answer.items.length} failed`);
}
