import { createInterface } from 'node:readline/promises';
import { CliError } from './errors.ts';
import type { TextSink } from './output.ts';

/** Standard input as the CLI uses it; `isTTY` and `setRawMode` exist only on a terminal. */
export type InputStream = NodeJS.ReadableStream & {
  isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
};

/** Whether questions can be asked: standard input is a terminal. */
export function canPrompt(stdin: InputStream): boolean {
  return stdin.isTTY === true;
}

/**
 * Asks one question on the terminal. The question goes to standard error, so standard output keeps only the
 * command's answer. `hidden` does not echo what is typed (passwords).
 */
export async function ask(
  io: { stdin: InputStream; stderr: TextSink },
  question: string,
  options: { hidden?: boolean } = {},
): Promise<string> {
  if (options.hidden && io.stdin.setRawMode) return askHidden(io.stdin, io.stderr, question);
  // No `output`: the terminal echoes what is typed itself, and the question goes to `io.stderr`.
  const terminal = createInterface({ input: io.stdin, terminal: false });
  try {
    io.stderr.write(question);
    return (await terminal.question('')).trim();
  } finally {
    terminal.close();
  }
}

/**
 * Makes sure a person meant an irreversible command. With `yes` (`--yes`) it answers at once. On a terminal it
 * asks `question [y/N]` and goes on only on `y` or `yes`; otherwise it fails with `cancelled` (exit 1). Without a
 * terminal it never waits for an answer that no one will type: it fails at once, naming `--yes` (exit 2, a usage
 * error), so a script that forgot the flag stops instead of hanging.
 */
export async function confirm(
  io: { stdin: InputStream; stderr: TextSink },
  question: string,
  options: { yes?: boolean },
): Promise<void> {
  if (options.yes) return;
  assertCanConfirm(io.stdin);
  const answer = (await ask(io, `${question} [y/N] `)).toLowerCase();
  if (answer !== 'y' && answer !== 'yes') throw new CliError('cancelled: nothing was changed');
}

/** Fails with exit 2 and the advice to add `--yes` when no one can answer a confirmation (see `confirm`). */
export function assertCanConfirm(stdin: InputStream): void {
  if (!canPrompt(stdin)) {
    throw new CliError(
      'standard input is not a terminal, so nothing can be confirmed: add --yes to go ahead',
      {
        exitCode: 2,
      },
    );
  }
}

/** Reads a line in raw mode, echoing nothing; Ctrl-C cancels the command. */
function askHidden(stdin: InputStream, stderr: TextSink, question: string): Promise<string> {
  stderr.write(question);
  stdin.setRawMode?.(true);
  stdin.resume();
  return new Promise<string>((resolve, reject) => {
    let typed = '';
    const finish = (error?: CliError) => {
      stdin.removeListener('data', onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      stderr.write('\n');
      if (error) reject(error);
      else resolve(typed);
    };
    const onData = (chunk: Buffer | string) => {
      // A paste arrives as one chunk: handle it character by character.
      for (const char of chunk.toString()) {
        switch (char) {
          case '\r':
          case '\n':
          case '\u0004': // Ctrl-D
            return finish();
          case '\u0003': // Ctrl-C
            return finish(new CliError('cancelled', { exitCode: 130 }));
          case '\u007f': // Backspace
          case '\b':
            typed = typed.slice(0, -1);
            break;
          default:
            typed += char;
        }
      }
    };
    stdin.on('data', onData);
  });
}

/** All of standard input as text (for `-` arguments: a piped key file or secret). */
export async function readAll(stdin: InputStream): Promise<string> {
  const chunks: string[] = [];
  for await (const chunk of stdin) chunks.push(chunk.toString());
  return chunks.join('');
}
