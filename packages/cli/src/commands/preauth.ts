import fs from 'node:fs/promises';
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

interface PreauthRow {
  line: number;
  identity: unknown;
  publicKey: string;
  name?: string;
}

/** RFC 4180 CSV: quoted fields may hold commas, quotes ("") and line breaks. Answers rows with line numbers. */
export function parseCsv(text: string): { line: number; fields: string[] }[] {
  const rows: { line: number; fields: string[] }[] = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let rowLine = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else {
        if (c === '\n') line++;
        field += c;
      }
    } else if (c === '"' && field === '') quoted = true;
    else if (c === ',') {
      fields.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      fields.push(field);
      if (fields.some((f) => f !== '')) rows.push({ line: rowLine, fields });
      fields = [];
      field = '';
      line++;
      rowLine = line;
    } else field += c;
  }
  if (quoted) throw new CliError(`the CSV has an unterminated quoted field (from line ${rowLine})`);
  fields.push(field);
  if (fields.some((f) => f !== '')) rows.push({ line: rowLine, fields });
  return rows;
}

/** The rows of a `keygen` CSV: header `identity,public_key[,name]`, identity as a JSON object. */
export function preauthRows(text: string): PreauthRow[] {
  const [header, ...rows] = parseCsv(text);
  if (!header) throw new CliError('the CSV is empty');
  const names = header.fields.map((f) => f.trim().toLowerCase());
  const at = (name: string) => names.indexOf(name);
  const identityAt = at('identity');
  const keyAt = at('public_key');
  const nameAt = at('name');
  if (identityAt < 0 || keyAt < 0)
    throw new CliError('the CSV header must name the columns identity and public_key (and optionally name)');
  return rows.map(({ line, fields }) => {
    let identity: unknown;
    try {
      identity = JSON.parse(fields[identityAt] ?? '');
    } catch {
      throw new CliError(`line ${line}: the identity is not JSON such as {"serial":"P0001"}`);
    }
    const name = nameAt >= 0 ? fields[nameAt]?.trim() : undefined;
    return { line, identity, publicKey: fields[keyAt] ?? '', ...(name ? { name } : {}) };
  });
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
