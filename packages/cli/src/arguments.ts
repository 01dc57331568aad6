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

/**
 * Commander argument parser for a device, fleet or organization as a person names it: an id, or a name (a
 * device also by its uuid or a unique uuid prefix; an organization by its slug). The server resolves it
 * (`409` with the candidates when a name is ambiguous); here only empty text is refused.
 */
export function parseRef(text: string): string {
  const ref = text.trim();
  if (!ref) throw new InvalidArgumentError('expected an id or a name');
  if (ref.length > 255) throw new InvalidArgumentError('expected an id or a name of at most 255 characters');
  return ref;
}

/** `parseRef` for devices: id, name, uuid or unique uuid prefix. */
export const parseDeviceRef = parseRef;

/** Whether `ref` is an id (canonical decimal), which commands send as it is, without looking it up. */
export function isId(ref: string): boolean {
  return /^[1-9]\d{0,9}$/.test(ref);
}

/** Commander parser for a repeatable fleet option: `--fleet 1 --fleet lobby` → ['1', 'lobby']. */
export function collectRefs(text: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), parseRef(text)];
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

/** Adds `--limit` and `--page` to a list command of a paged resource. */
export function withPaging(command: Command): Command {
  return command
    .option('--limit <n>', 'items per page (1-500; server default 50)', parseCount)
    .option('--page <n>', 'page number, from 1', parseCount);
}
