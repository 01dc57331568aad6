import { Readable } from 'node:stream';
import type { CliIo } from './context.ts';

/** A `CliIo` that keeps what commands print, for tests that run `fleetgate` in-process. */
export interface MemoryIo {
  io: CliIo;
  /** Everything written to standard output so far. */
  stdout(): string;
  stderr(): string;
}

/**
 * Buffers for standard output and error, `stdin` as the given text (not a terminal, so nothing is asked),
 * and `env` as given: set `FLEETGATE_CONFIG_DIR` to a temporary directory to keep the real login apart.
 */
export function memoryIo(
  options: { env?: NodeJS.ProcessEnv; stdin?: string; fetch?: typeof fetch } = {},
): MemoryIo {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: {
      stdout: { write: (text: string) => out.push(text) },
      stderr: { write: (text: string) => err.push(text) },
      stdin: Readable.from([options.stdin ?? '']),
      env: options.env ?? {},
      fetch: options.fetch,
    },
    stdout: () => out.join(''),
    stderr: () => err.join(''),
  };
}
