import { type Command, InvalidArgumentError } from 'commander';

/**
 * Parsers of command-line arguments and options. They check the shape before anything is sent, so a typo
 * fails with a usage error that names the argument, and never reaches the server.
 */

/** Commander argument parser for ids: positive integers. */
export function parseId(text: string): number {
  if (!/^[1-9]\d{0,9}$/.test(text.trim())) throw new InvalidArgumentError('expected a positive integer id');
  return Number(text.trim());
}

/** Commander argument parser for a device: its numeric id or its 32-hex uuid. */
export function parseDeviceRef(text: string): string {
  const ref = text.trim();
  if (!/^(?:[1-9]\d{0,9}|[0-9a-fA-F]{32})$/.test(ref)) {
    throw new InvalidArgumentError('expected a device id or its 32-hex uuid');
  }
  return ref;
}

/** Commander argument parser for counts (`--limit`, `--page`, `--expires-in-days`). */
export function parseCount(text: string): number {
  if (!/^[1-9]\d{0,6}$/.test(text.trim())) throw new InvalidArgumentError('expected a positive integer');
  return Number(text.trim());
}

/** Commander argument parser for times (`--since`): anything `Date` reads; passed on as given. */
export function parseTime(text: string): string {
  if (Number.isNaN(Date.parse(text))) {
    throw new InvalidArgumentError('expected a time such as 2025-01-31 or 2025-01-31T12:00:00Z');
  }
  return text;
}

/** Commander parser for a repeatable id option: `--fleet 1 --fleet 2` → [1, 2]. */
export function collectIds(text: string, previous: number[] | undefined): number[] {
  return [...(previous ?? []), parseId(text)];
}

/** Adds `--limit` and `--page` to a list command of a paged resource. */
export function withPaging(command: Command): Command {
  return command
    .option('--limit <n>', 'items per page (1-500; server default 50)', parseCount)
    .option('--page <n>', 'page number, from 1', parseCount);
}
