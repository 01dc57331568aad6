import type { Command } from 'commander';
import type { DiagnosticsRun, DiagnosticsRunSummary, Page } from '../api.ts';
import { parseId, withPaging } from '../arguments.ts';
import { apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { type Column, formatTable } from '../output.ts';
import { namedArgument } from './completion.ts';
import { resolveDevice } from './tunnel.ts';

const runColumns: Column<DiagnosticsRunSummary>[] = [
  { header: 'RUN', value: (run) => run.id },
  { header: 'STARTED', value: (run) => run.startedAt },
  { header: 'BY', value: (run) => run.requestedBy.label },
  { header: 'STATUS', value: (run) => run.status },
  { header: 'CHECKS', value: (run) => countsText(run.counts) },
  { header: 'AGENT', value: (run) => run.agentVersion },
];

const checkColumns: Column<DiagnosticsRun['checks'][number]>[] = [
  { header: 'CHECK', value: (check) => check.id },
  { header: 'STATUS', value: (check) => check.status },
  { header: 'SUMMARY', value: (check) => check.summary },
];

/** `8 ok, 1 warning, 1 unavailable`: the statuses that occur. */
function countsText(counts: DiagnosticsRunSummary['counts']): string {
  return Object.entries(counts)
    .filter(([, count]) => count > 0)
    .map(([status, count]) => `${count} ${status.replace('_', ' ')}`)
    .join(', ');
}

/** A run for people: one line about it, then its checks as a table. */
function renderRun(run: DiagnosticsRun, deviceLabel: string): string {
  const seconds = (run.durationMs / 1000).toFixed(1);
  const head =
    `${deviceLabel}: ${run.status} — ${countsText(run.counts)} ` +
    `(run ${run.id}, ${run.startedAt}, ${seconds} s, agent ${run.agentVersion}, checks v${run.version})\n`;
  return head + formatTable(run.checks, checkColumns);
}

interface DiagnoseOptions {
  history?: boolean;
  run?: number;
  limit?: number;
  page?: number;
}

/**
 * `diagnose <device>`: runs the device's remote diagnostics now (operators and above; no shell rights needed) and
 * prints each check's status and summary; `--history` lists the stored runs, `--run <id>` shows one of them.
 */
export function registerDiagnoseCommand(program: Command, io: CliIo): void {
  withPaging(
    program
      .command('diagnose')
      .description(
        "run a device's remote diagnostics (disk, memory, load, time sync, the server's DNS and TCP, the agent, " +
          'network interfaces, failed systemd units, kernel messages) and show the results',
      )
      .addArgument(namedArgument('<device>', 'device uuid, id or name', 'devices'))
      .option('--history', 'list the stored runs instead, newest first (the device keeps its last 50)')
      .option('--run <id>', 'show a stored run (from --history) instead of running them', parseId)
      .addHelpText(
        'after',
        '\nThe device must be online; the run takes at most 20 s. The report is stored: see --history.\n' +
          'With --json: the API answer (POST/GET /api/v1/devices/<device>/diagnostics).',
      ),
  ).action(async (deviceText: string, options: DiagnoseOptions, command: Command) => {
    const ctx = new CommandContext(io, command);
    const device = await resolveDevice(ctx, deviceText);
    const label = `${device.name} (${device.uuid})`;
    if (options.history) {
      const page = await ctx.api<Page<DiagnosticsRunSummary>>(
        'GET',
        apiPath`/devices/${device.uuid}/diagnostics`,
        { query: { limit: options.limit, page: options.page } },
      );
      ctx.out.list(page, runColumns, `diagnostics runs of ${label}`);
      return;
    }
    const run =
      options.run === undefined
        ? await ctx.api<DiagnosticsRun>('POST', apiPath`/devices/${device.uuid}/diagnostics`)
        : await ctx.api<DiagnosticsRun>(
            'GET',
            apiPath`/devices/${device.uuid}/diagnostics/${String(options.run)}`,
          );
    ctx.out.result(run, (answer) => renderRun(answer, label));
  });
}
