import type { Command } from 'commander';
import type { Device, Page, RemoteSession } from '../api.ts';
import { parseRef, withPaging } from '../arguments.ts';
import { apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
import type { Column } from '../output.ts';

const sessionColumns: Column<RemoteSession>[] = [
  { header: 'ID', value: (session) => session.id },
  { header: 'STARTED', value: (session) => session.startedAt },
  { header: 'USER', value: (session) => session.user.label },
  { header: 'DEVICE', value: (session) => session.device.name },
  { header: 'VIA', value: (session) => session.surface },
  { header: 'TARGET', value: (session) => session.target },
  { header: 'FROM', value: (session) => session.clientAddress },
  {
    header: 'IN/OUT',
    value: (session) => `${bytes(session.bytesToDevice)}/${bytes(session.bytesFromDevice)}`,
  },
  { header: 'STATE', value: (session) => (session.live ? 'live' : (session.outcome ?? 'ended')) },
];

/** The order of `sessions show`'s fields. */
const sessionFields = [
  'id',
  'live',
  'surface',
  'target',
  'device',
  'user',
  'clientAddress',
  'startedAt',
  'endedAt',
  'bytesToDevice',
  'bytesFromDevice',
  'outcome',
  'terminatedBy',
];

function bytes(count: number): string {
  if (count < 1024) return `${count} B`;
  if (count < 1024 * 1024) return `${(count / 1024).toFixed(1)} KiB`;
  if (count < 1024 ** 3) return `${(count / 1024 / 1024).toFixed(1)} MiB`;
  return `${(count / 1024 ** 3).toFixed(1)} GiB`;
}

function parseSessionId(text: string): string {
  const id = text.trim().toLowerCase();
  if (!/^[0-9a-f]{16,32}$/.test(id))
    throw new CliError(`not a session id: ${text} (see fleetgate sessions ls)`);
  return id;
}

interface ListOptions {
  live?: boolean;
  org?: string;
  device?: string;
  surface?: string;
  user?: string;
  limit?: number;
  page?: number;
}

/**
 * `sessions ls|show|kill`: people's sessions to devices (tunnel, SSH, CONNECT), live and ended. Answers the
 * `sessions` command so others can add subcommands to it.
 */
export function registerSessionCommands(program: Command, io: CliIo): Command {
  const sessions = program
    .command('sessions')
    .description("people's sessions to devices (fleetgate tunnel, SSH, the CONNECT proxy), live and ended");

  withPaging(
    sessions
      .command('ls')
      .description('list sessions, newest first (viewers and above of their organization)')
      .option('--live', 'only live sessions')
      .option('--org <org>', 'only this organization (id, slug or name)', parseRef)
      .option('--device <device>', 'only sessions to this device (name, uuid or id)', parseRef)
      .option(
        '--surface <surface>',
        'only sessions that came this way: tunnel, connect, ssh, openssh, terminal, web, vnc, files, diagnostics',
      )
      .option('--user <email>', 'only sessions of this person'),
  ).action(async (options: ListOptions, command: Command) => {
    const ctx = new CommandContext(io, command);
    const answer = await ctx.api<Page<RemoteSession>>('GET', '/sessions', {
      query: {
        live: options.live ? 'true' : undefined,
        orgId: await ctx.optionalOrgId(options.org),
        device: options.device === undefined ? undefined : await deviceUuid(ctx, options.device),
        surface: options.surface,
        user: options.user,
        limit: options.limit,
        page: options.page,
      },
    });
    ctx.out.list(answer, sessionColumns, options.live ? 'live sessions' : 'sessions');
  });

  sessions
    .command('show')
    .description('one session: who, which device and port, from where, bytes each way, how it ended')
    .argument('<id>', 'session id (from sessions ls)', parseSessionId)
    .action(async (id: string, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      const session = await ctx.api<RemoteSession>('GET', apiPath`/sessions/${id}`);
      if (ctx.out.json) ctx.out.record(session);
      else
        ctx.out.record(
          {
            ...session,
            device: `${session.device.name} (${session.device.uuid})`,
            user: session.user.label,
            terminatedBy: session.terminatedBy?.label ?? null,
          },
          sessionFields,
        );
    });

  sessions
    .command('kill')
    .description('end a live session at once: the person and the device see the connection reset (admins)')
    .argument('<id>', 'session id (from sessions ls --live)', parseSessionId)
    .action(async (id: string, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      const session = await ctx.api<RemoteSession>('POST', apiPath`/sessions/${id}/terminate`);
      if (ctx.out.json) ctx.out.record(session);
      else
        ctx.out.done(
          `ended session ${id} (${session.user.label} to ${session.device.name}, ${session.target})`,
        );
    });
  return sessions;
}

/** The uuid of the device a person named: the sessions list filters by uuid; the server resolves names. */
async function deviceUuid(ctx: CommandContext, device: string): Promise<string> {
  if (/^[0-9a-fA-F]{32}$/.test(device)) return device.toLowerCase();
  return (await ctx.api<Device>('GET', apiPath`/devices/${device}`)).uuid;
}
