import Table from 'cli-table3';

/** Where a command writes: `process.stdout` in the terminal, a buffer in tests. */
export interface TextSink {
  write(text: string): unknown;
}

/** One column of a table: its header and how to read the cell from a row. */
export interface Column<T> {
  header: string;
  value(row: T): unknown;
}

/** A list answer; `total`, `page` and `limit` are there when the API pages the list. */
export interface ListAnswer<T> {
  items: T[];
  total?: number;
  page?: number;
  limit?: number;
}

/** Plain aligned columns, kubectl style: easy to read, grep and cut. */
const borderless = {
  top: '',
  'top-mid': '',
  'top-left': '',
  'top-right': '',
  bottom: '',
  'bottom-mid': '',
  'bottom-left': '',
  'bottom-right': '',
  left: '',
  'left-mid': '',
  mid: '',
  'mid-mid': '',
  right: '',
  'right-mid': '',
  middle: '  ',
};

/**
 * A cell or a `key: value` value as text: `-` for nothing, `yes`/`no`, lists joined with commas, tags as
 * `key=value`, any other object as JSON. Timestamps are shown as the server sent them.
 */
export function formatValue(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (Array.isArray(value)) return value.length === 0 ? '-' : value.map(formatValue).join(', ');
  if (typeof value === 'object') {
    const entries = Object.entries(value);
    if (entries.length === 0) return '-';
    if (entries.every(([, v]) => typeof v === 'string')) {
      return entries.map(([k, v]) => `${k}=${v}`).join(', ');
    }
    return JSON.stringify(value);
  }
  return String(value);
}

/**
 * How long ago `timestamp` (ISO 8601) was, as a person says it: `12 s ago`, `3 min ago`, `5 h ago`, `2 days ago`;
 * `-` for none. A time a little ahead of `now` (clocks of server and client differ) counts as `0 s ago`.
 */
export function formatAgo(timestamp: string | null | undefined, now: Date = new Date()): string {
  if (!timestamp) return '-';
  const then = Date.parse(timestamp);
  if (Number.isNaN(then)) return timestamp;
  const seconds = Math.max(0, Math.floor((now.getTime() - then) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} days ago`;
}

/** Rows under upper-case headers, columns separated by two spaces, no trailing blanks. */
export function formatTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const table = new Table({
    head: columns.map((column) => column.header),
    chars: borderless,
    // No colours: the output is often piped, and tests compare text.
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
  });
  for (const row of rows) table.push(columns.map((column) => formatValue(column.value(row))));
  return `${table
    .toString()
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n')}\n`;
}

/**
 * One object as `key: value` lines, values aligned. `order` lists the keys to show first; the others follow
 * as the object has them.
 */
export function formatRecord(record: object, order: readonly string[] = []): string {
  const rank = (key: string) => (order.includes(key) ? order.indexOf(key) : order.length);
  const entries = Object.entries(record).sort(([a], [b]) => rank(a) - rank(b));
  const width = Math.max(0, ...entries.map(([key]) => key.length + 1));
  const lines = entries.map(([key, value]) => `${`${key}:`.padEnd(width)} ${formatValue(value)}`.trimEnd());
  return lines.map((line) => `${line}\n`).join('');
}

/** `--json`: the API's answer, indented two spaces, for scripts (`jq`). */
export function formatJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/**
 * What a command prints. With `json` every method prints the API's answer as JSON and nothing else;
 * otherwise text for people.
 */
export class Output {
  readonly json: boolean;
  readonly #sink: TextSink;

  constructor(sink: TextSink, options: { json?: boolean } = {}) {
    this.#sink = sink;
    this.json = options.json ?? false;
  }

  /** A list as a table, with a hint when more pages follow; `noun` is plural ("devices"). */
  list<T>(answer: ListAnswer<T>, columns: readonly Column<T>[], noun: string): void {
    if (this.json) {
      this.#write(formatJson(answer));
      return;
    }
    const { items, total, page, limit } = answer;
    if (items.length === 0) {
      const beyond =
        total !== undefined && total > 0 && page !== undefined ? ` on page ${page} (${total} in all)` : '';
      this.#write(`no ${noun}${beyond}\n`);
      return;
    }
    this.#write(formatTable(items, columns));
    if (total !== undefined && page !== undefined && limit !== undefined) {
      const first = (page - 1) * limit + 1;
      const last = first + items.length - 1;
      if (last < total) this.#write(`${first}-${last} of ${total} ${noun}; next page: --page ${page + 1}\n`);
    }
  }

  /** One object as `key: value` lines (or JSON); `order` lists the keys to show first. */
  record(record: object, order?: readonly string[]): void {
    this.#write(this.json ? formatJson(record) : formatRecord(record, order));
  }

  /**
   * The end of a command that answers nothing (delete, tag): `message` as text, `{"ok":true}` as JSON.
   */
  done(message: string): void {
    this.#write(this.json ? formatJson({ ok: true }) : `${message}\n`);
  }

  /** Text for people only (notes, hints); silent with `--json` so the JSON stays parseable. */
  note(message: string): void {
    if (!this.json) this.#write(`${message}\n`);
  }

  /** The answer as JSON, or the text `render` makes of it. */
  result<T>(answer: T, render: (answer: T) => string): void {
    this.#write(this.json ? formatJson(answer) : render(answer));
  }

  #write(text: string): void {
    this.#sink.write(text);
  }
}
