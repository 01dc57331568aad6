import fs from 'node:fs/promises';
import { CsvError, type PreauthCsvRow, preauthRows as readPreauthRows } from '@fleetgate/protocol';
import type { Command } from 'commander';
import { parseRef } from '../arguments.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
import { type Column, formatTable } from '../output.ts';
import { progressBar } from './keygen.ts';

/** Rows sent per request. */
const BATCH = 100;

interface PreauthItem {
  index: number;
  outcome: 'created' | 'conflict' | 'invalid';
  authSetId?: number;
  device?: { id: number; uuid: string; name: string; fleetId: number };
  reason?: string;
}

/**
 * The rows of a `keygen` CSV (header `identity,public_key[,name]`, identity as a JSON object), read by the parser
 * the web UI uses too (@fleetgate/protocol); the first row that cannot be sent stops the command.
 */
export function preauthRows(text: string): PreauthCsvRow[] {
  let rows: PreauthCsvRow[];
  try {
    rows = readPreauthRows(text);
  } catch (error) {
    if (error instanceof CsvError) throw new CliError(error.message);
    throw error;
  }
  const bad = rows.find((row) => row.problem !== undefined);
  if (bad) throw new CliError(bad.problem!);
  return rows;
}

const itemColumns: Column<PreauthItem & { line: number }>[] = [
  { header: 'LINE', value: (r) => r.line },
  { header: 'OUTCOME', value: (r) => r.outcome },
  { header: 'DEVICE', value: (r) => r.device?.uuid },
  { header: 'NAME', value: (r) => r.device?.name },
  { header: 'REASON', value: (r) => r.reason },
];

/** `preauth --csv FILE --fleet F [--force]`: preauthorize devices in bulk; each is accepted on its first request. */
export function registerPreauthCommand(program: Command, io: CliIo): void {
  program
    .command('preauth')
    .description(
      'preauthorize devices from a CSV (identity,public_key[,name]), e.g. the one `fleetgate keygen` writes',
    )
    .requiredOption('--csv <file>', 'the CSV file')
    .requiredOption('--fleet <fleet>', 'the fleet the devices join (id or name)', parseRef)
    .option(
      '--force',
      'add the key to a device that already has the identity, instead of reporting a conflict',
    )
    .action(async (options: { csv: string; fleet: string; force?: boolean }, command: Command) => {
      const ctx = new CommandContext(io, command);
      let text: string;
      try {
        text = await fs.readFile(options.csv, 'utf8');
      } catch (error) {
        throw new CliError(`cannot read ${options.csv}: ${(error as Error).message}`);
      }
      const fleetId = await ctx.fleetId(options.fleet);
      const rows = preauthRows(text);
      if (rows.length === 0) throw new CliError('the CSV has no rows under its header');
      const items: (PreauthItem & { line: number })[] = [];
      const progress = progressBar(io, 'preauthorizing', rows.length);
      for (let start = 0; start < rows.length; start += BATCH) {
        const batch = rows.slice(start, start + BATCH);
        const answer = await ctx.api<{ items: PreauthItem[] }>('POST', '/auth-sets/preauthorize', {
          body: {
            fleetId,
            force: options.force ?? false,
            devices: batch.map(({ identity, publicKey, name }) => ({
              identity,
              publicKey,
              ...(name ? { name } : {}),
            })),
          },
        });
        for (const item of answer.items) items.push({ ...item, line: batch[item.index]!.line });
        progress.update(Math.min(start + batch.length, rows.length));
      }
      progress.done();
      const count = (o: string) => items.filter((i) => i.outcome === o).length;
      const summary = {
        created: count('created'),
        conflicts: count('conflict'),
        invalid: count('invalid'),
        items,
      };
      ctx.out.result(summary, (s) => {
        const problems = s.items.filter((i) => i.outcome !== 'created');
        let text = `created ${s.created}, conflicting ${s.conflicts}, invalid ${s.invalid} (of ${s.items.length} rows)\n`;
        if (problems.length) text += formatTable(problems, itemColumns);
        if (s.conflicts)
          text += 'conflicting identities belong to devices already; --force adds these keys to them\n';
        return text;
      });
      if (summary.conflicts + summary.invalid > 0)
        throw new CliError(
          `${summary.conflicts + summary.invalid} of ${items.length} rows were not preauthorized`,
        );
    });
}
