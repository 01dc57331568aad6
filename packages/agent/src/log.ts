/**
 * The agent's logger: one line per event on a sink (stderr for the CLI, so journald collects it), as
 * `level message {"field":…}`. A device agent has no use for pino's machinery and every megabyte of
 * resident memory counts on a small device; the interface is pino-shaped so either fits.
 *
 * Never log a secret: device keys, provisioning keys and tokens stay out of every field.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
type Fields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
}

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** A logger writing lines at or above `level` to `write` (default: stderr). */
export function createLogger(
  level: LogLevel = 'info',
  write: (line: string) => void = (line) => process.stderr.write(line),
): Logger {
  const at =
    (lineLevel: Exclude<LogLevel, 'silent'>) =>
    (message: string, fields?: Fields): void => {
      if (rank[lineLevel] < rank[level]) return;
      const extra = fields && Object.keys(fields).length > 0 ? ` ${safeJson(fields)}` : '';
      write(`${lineLevel} ${message}${extra}\n`);
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** A logger that drops everything (the library default). */
export const silentLogger: Logger = createLogger('silent');

function safeJson(fields: Fields): string {
  try {
    return JSON.stringify(fields, (_key, value: unknown) =>
      value instanceof Error ? { name: value.name, message: value.message } : value,
    );
  } catch {
    return '{"fields":"(not serializable)"}';
  }
}
