import { type Command, Option } from 'commander';
import type { AuditEvent, Page } from '../api.ts';
import { parseRef, parseTime, withPaging } from '../arguments.ts';
import { type CliIo, CommandContext } from '../context.ts';
import type { Column } from '../output.ts';

const auditColumns: Column<AuditEvent>[] = [
  { header: 'AT', value: (event) => event.at },
  { header: 'ACTOR', value: (event) => event.actor.label },
  { header: 'ACTION', value: (event) => event.action },
  {
    header: 'RESOURCE',
    value: (event) =>
      event.resourceId === null ? event.resourceType : `${event.resourceType} ${event.resourceId}`,
  },
  { header: 'OUTCOME', value: (event) => event.outcome },
  { header: 'FROM', value: (event) => event.sourceIp },
];

interface AuditOptions {
  org?: string;
  serverWide?: boolean;
  actor?: string;
  action?: string;
  resourceType?: string;
  resourceId?: string;
  since?: string;
  until?: string;
  limit?: number;
  page?: number;
}

/** `audit`: who did what, to which resource, from where (newest first). */
export function registerAuditCommand(program: Command, io: CliIo): void {
  withPaging(
    program
      .command('audit')
      .description(
        "the audit log, newest first: my organizations' as admin or owner, my own actions, and for server " +
          'administrators the server-wide events (sign-ins, users, keys); --json has the details',
      )
      .option('--org <org>', 'only this organization (id, slug or name)', parseRef)
      .addOption(
        new Option(
          '--server-wide',
          'only the server-wide events, of no organization: failed sign-ins too (server administrators)',
        ).conflicts('org'),
      )
      .option('--actor <who>', 'e-mail or user id of who acted')
      .option('--action <action>', 'e.g. device.update')
      .option('--resource-type <type>', 'e.g. device, fleet, user')
      .option('--resource-id <id>', 'id of the resource')
      .option('--since <time>', 'from this time on (ISO 8601, e.g. 2025-01-31T00:00:00Z)', parseTime)
      .option('--until <time>', 'up to this time (ISO 8601)', parseTime),
  ).action(async (options: AuditOptions, command: Command) => {
    const ctx = new CommandContext(io, command);
    const answer = await ctx.api<Page<AuditEvent>>('GET', '/audit', {
      query: {
        orgId: await ctx.optionalOrgId(options.org),
        scope: options.serverWide ? 'server' : undefined,
        actor: options.actor,
        action: options.action,
        resourceType: options.resourceType,
        resourceId: options.resourceId,
        since: options.since,
        until: options.until,
        limit: options.limit,
        page: options.page,
      },
    });
    ctx.out.list(answer, auditColumns, 'audit events');
  });
}
