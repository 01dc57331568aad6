import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { Fleet, Page } from '../api.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
import { type Column, formatTable } from '../output.ts';

/** Devices sent per `POST /devices/import` call (the server takes up to 500). */
export const IMPORT_BATCH_SIZE = 100;

/** One row of the import summary: a config file and what became of it. */
export interface ImportRow {
  file: string;
  uuid: string | null;
  outcome: 'created' | 'present' | 'failed';
  deviceId?: number;
  reason?: string;
}

interface ImportOptions {
  fleet?: string;
  deviceType?: string;
}

/** What a balena `config.json` holds that matters here. */
interface BalenaConfig {
  uuid?: unknown;
  deviceApiKey?: unknown;
  deviceApiKeys?: unknown;
  applicationName?: unknown;
  applicationId?: unknown;
  deviceType?: unknown;
}

interface ImportItem {
  uuid: string;
  apiKey: string;
  fleetId: number;
  deviceType?: string;
}

const failedColumns: Column<ImportRow>[] = [
  { header: 'FILE', value: (row) => row.file },
  { header: 'UUID', value: (row) => row.uuid },
  { header: 'REASON', value: (row) => row.reason },
];

/** `import balena-config <config.json...>`: restore devices (uuid + deviceApiKey) after moving from balena. */
export function registerImportCommands(program: Command, io: CliIo): void {
  const imports = program.command('import').description('bring devices in from elsewhere');

  imports
    .command('balena-config')
    .description(
      'restore devices from balena config.json files (uuid + deviceApiKey): their keys keep working unchanged',
    )
    .argument('<files...>', 'config.json files')
    .option(
      '--fleet <fleet>',
      'fleet id or name for every device (default: the fleet named like applicationName)',
    )
    .option('--device-type <slug>', 'device type for every device (default: deviceType of each config)')
    .action(async (files: string[], options: ImportOptions, command: Command) => {
      const ctx = new CommandContext(io, command);
      const client = await ctx.client();
      const fleets = await allFleets((path, query) => client.request<Page<Fleet>>('GET', path, { query }));
      const rows: ImportRow[] = [];
      const pending: { row: ImportRow; item: ImportItem }[] = [];
      const fixedFleet = options.fleet === undefined ? undefined : resolveFleet(fleets, options.fleet);

      for (const file of files) {
        const parsed = await readConfig(file);
        if ('reason' in parsed) {
          rows.push({ file, uuid: null, outcome: 'failed', reason: parsed.reason });
          continue;
        }
        const row: ImportRow = { file, uuid: parsed.uuid, outcome: 'failed' };
        rows.push(row);
        const fleet = fixedFleet ?? resolveFleet(fleets, parsed.applicationName);
        if (typeof fleet === 'string') {
          row.reason = fleet;
          continue;
        }
        const deviceType = options.deviceType ?? parsed.deviceType;
        pending.push({
          row,
          item: {
            uuid: parsed.uuid,
            apiKey: parsed.apiKey,
            fleetId: fleet.id,
            ...(deviceType ? { deviceType } : {}),
          },
        });
      }

      const progress = progressOf(io, pending.length, ctx.out.json);
      for (let start = 0; start < pending.length; start += IMPORT_BATCH_SIZE) {
        const batch = pending.slice(start, start + IMPORT_BATCH_SIZE);
        const answer = await client.request<{
          items: { outcome: ImportRow['outcome']; deviceId?: number; reason?: string }[];
        }>('POST', '/devices/import', { body: { items: batch.map((p) => p.item) } });
        batch.forEach(({ row }, i) => {
          const result = answer.items[i];
          row.outcome = result?.outcome ?? 'failed';
          if (result?.deviceId !== undefined) row.deviceId = result.deviceId;
          if (result?.reason !== undefined) row.reason = result.reason;
          else if (!result) row.reason = 'the server did not answer for this device';
        });
        progress.update(Math.min(start + batch.length, pending.length));
      }
      progress.done();

      const count = (outcome: ImportRow['outcome']) => rows.filter((r) => r.outcome === outcome).length;
      const summary = {
        created: count('created'),
        present: count('present'),
        failed: count('failed'),
        items: rows,
      };
      const failed = rows.filter((r) => r.outcome === 'failed');
      ctx.out.result(summary, () => {
        const lines = [
          `created ${summary.created}, already present ${summary.present}, failed ${summary.failed} ` +
            `(${rows.length} config files)\n`,
        ];
        if (failed.length) lines.push(formatTable(failed, failedColumns));
        return lines.join('');
      });
      if (failed.length) throw new CliError(`${failed.length} of ${rows.length} devices were not imported`);
    });
}

/** Every fleet the user can see (the list is paged). */
async function allFleets(
  get: (path: string, query: Record<string, number>) => Promise<Page<Fleet>>,
): Promise<Fleet[]> {
  const fleets: Fleet[] = [];
  for (let page = 1; ; page++) {
    const answer = await get('/fleets', { limit: 500, page });
    fleets.push(...answer.items);
    if (answer.items.length === 0 || fleets.length >= answer.total) return fleets;
  }
}

/** The fleet named by an id or a name (balena's `applicationName` may be `org/name`); or why there is none. */
export function resolveFleet(fleets: readonly Fleet[], wanted: string | undefined): Fleet | string {
  if (!wanted) return 'no fleet: the config has no applicationName; pass --fleet';
  if (/^[1-9]\d{0,9}$/.test(wanted)) {
    const byId = fleets.find((f) => f.id === Number(wanted));
    if (byId) return byId;
  }
  const name = wanted.includes('/') ? wanted.slice(wanted.lastIndexOf('/') + 1) : wanted;
  const matches = fleets.filter((f) => f.name === wanted || f.name.toLowerCase() === name.toLowerCase());
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1)
    return `fleet "${wanted}" is ambiguous (${matches.length} fleets); pass --fleet <id>`;
  return `no fleet named "${wanted}" that you can see; create it or pass --fleet`;
}

/** Reads one balena config.json; answers the device's identity or why it cannot be imported. */
export async function readConfig(
  file: string,
): Promise<
  { uuid: string; apiKey: string; applicationName?: string; deviceType?: string } | { reason: string }
> {
  let config: BalenaConfig;
  try {
    config = JSON.parse(await readFile(file, 'utf8')) as BalenaConfig;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { reason: `cannot read it: ${message}` };
  }
  if (typeof config !== 'object' || config === null) return { reason: 'not a JSON object' };
  if (typeof config.uuid !== 'string' || !/^[0-9a-fA-F]{32}$/.test(config.uuid))
    return { reason: 'no uuid of 32 hexadecimal characters' };
  // Newer balenaOS keeps the key per API host in `deviceApiKeys`; older ones in `deviceApiKey`.
  const keys =
    typeof config.deviceApiKeys === 'object' && config.deviceApiKeys !== null
      ? Object.values(config.deviceApiKeys as Record<string, unknown>)
      : [];
  const apiKey = [config.deviceApiKey, ...keys].find((k): k is string => typeof k === 'string' && k !== '');
  if (!apiKey) return { reason: 'no deviceApiKey' };
  if (!/^[\x21-\x7e]{16,512}$/.test(apiKey))
    return { reason: 'the deviceApiKey is not 16-512 printable characters without spaces' };
  return {
    uuid: config.uuid.toLowerCase(),
    apiKey,
    ...(typeof config.applicationName === 'string' ? { applicationName: config.applicationName } : {}),
    ...(typeof config.deviceType === 'string' ? { deviceType: config.deviceType } : {}),
  };
}

/**
 * Progress on standard error: a line rewritten in place on a terminal, one line per batch otherwise, nothing
 * with `--json` unless on a terminal.
 */
function progressOf(io: CliIo, total: number, json: boolean) {
  const tty = (io.stderr as { isTTY?: boolean }).isTTY === true;
  const quiet = total === 0 || (json && !tty);
  return {
    update(done: number) {
      if (quiet) return;
      const width = 30;
      const filled = Math.round((done / total) * width);
      const text = `importing [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`;
      io.stderr.write(tty ? `\r${text}` : `${text}\n`);
    },
    done() {
      if (!quiet && tty) io.stderr.write('\n');
    },
  };
}
