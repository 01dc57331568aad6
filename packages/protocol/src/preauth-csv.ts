/**
 * The CSV of preauthorizations, `identity,public_key[,name]` with the identity as a JSON object: what
 * `fleetgate keygen` writes, `fleetgate preauth --csv` sends, and the web UI's pending page uploads. One parser
 * for all of them, here because this package is pure and every other imports it (the web UI through
 * `@fleetgate/protocol/preauth-csv`, which pulls in nothing else).
 */

/** The file as a whole cannot be read: no header, a header without the columns, an unterminated quote. */
export class CsvError extends Error {}

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
  if (quoted) throw new CsvError(`the CSV has an unterminated quoted field (from line ${rowLine})`);
  fields.push(field);
  if (fields.some((f) => f !== '')) rows.push({ line: rowLine, fields });
  return rows;
}

/** One row under the header. `problem` is set when the row cannot be sent (its identity is not JSON). */
export interface PreauthCsvRow {
  /** The row's line in the file (1 is the header). */
  line: number;
  identity: unknown;
  publicKey: string;
  name?: string;
  problem?: string;
}

/**
 * The rows of a preauthorization CSV. A file that cannot be read throws `CsvError`; a row that cannot be sent
 * is answered with its `problem`, so a caller may report every row (the web UI) or stop at the first (the CLI).
 */
export function preauthRows(text: string): PreauthCsvRow[] {
  // A spreadsheet's UTF-8 byte order mark is not part of the first column's name.
  const [header, ...rows] = parseCsv(text.replace(/^\uFEFF/, ''));
  if (!header) throw new CsvError('the CSV is empty');
  const names = header.fields.map((f) => f.trim().toLowerCase());
  const at = (name: string) => names.indexOf(name);
  const identityAt = at('identity');
  const keyAt = at('public_key');
  const nameAt = at('name');
  if (identityAt < 0 || keyAt < 0)
    throw new CsvError('the CSV header must name the columns identity and public_key (and optionally name)');
  return rows.map(({ line, fields }) => {
    const name = nameAt >= 0 ? fields[nameAt]?.trim() : undefined;
    const row = { line, publicKey: fields[keyAt] ?? '', ...(name ? { name } : {}) };
    try {
      return { ...row, identity: JSON.parse(fields[identityAt] ?? '') as unknown };
    } catch {
      return {
        ...row,
        identity: undefined,
        problem: `line ${line}: the identity is not JSON such as {"serial":"P0001"}`,
      };
    }
  });
}
