/**
 * An expected failure the user can act on (no login, bad input, unreadable file). `fleetgate` prints its
 * message as one line, `fleetgate: <message>`, without a stack trace, and exits with `exitCode`.
 */
export class CliError extends Error {
  readonly exitCode: number;

  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'CliError';
    this.exitCode = options.exitCode ?? 1;
  }
}
