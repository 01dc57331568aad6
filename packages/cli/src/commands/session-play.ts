import type { Command } from 'commander';
import { apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
import { fetchTrusting } from '../tls.ts';

/** One asciicast v2 event: seconds since the start, kind (`o` output, `r` resize, `i` input…), data. */
type CastEvent = [time: number, kind: string, data: string];

/** Parses an asciicast v2 recording: its header and its events, in order. */
export function parseAsciicast(text: string): { header: Record<string, unknown>; events: CastEvent[] } {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(lines[0] ?? '');
  } catch {
    throw new CliError('the recording is not asciicast v2: its first line is not a JSON header');
  }
  if (header.version !== 2)
    throw new CliError(`the recording is asciicast version ${String(header.version)}, not 2`);
  const events: CastEvent[] = [];
  for (const line of lines.slice(1)) {
    const event = JSON.parse(line) as unknown;
    if (
      Array.isArray(event) &&
      typeof event[0] === 'number' &&
      typeof event[1] === 'string' &&
      typeof event[2] === 'string'
    ) {
      events.push(event as CastEvent);
    }
  }
  return { header, events };
}

function parsePositive(text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new CliError(`not a positive number: ${text}`);
  return value;
}

interface PlayOptions {
  speed: number;
  idleLimit: number;
}

/**
 * `sessions play <id>`: replays a recorded shell session (asciicast v2, from
 * `GET /api/v1/sessions/:id/recording`) in the terminal, at its own pace (`--speed`), with long pauses cut
 * to `--idle-limit` seconds. `--json` prints the recording itself, e.g. for `asciinema play`.
 */
export function registerSessionPlayCommand(sessions: Command, io: CliIo): void {
  sessions
    .command('play')
    .description('replay a recorded shell session in the terminal (when its organization records sessions)')
    .argument('<id>', 'session id (from sessions ls)')
    .option('--speed <factor>', 'playback speed (2 = twice as fast)', parsePositive, 1)
    .option('--idle-limit <seconds>', 'longest pause between two outputs', parsePositive, 2)
    .action(async (text: string, options: PlayOptions, command: Command) => {
      const id = text.trim().toLowerCase();
      if (!/^[0-9a-f]{16,32}$/.test(id))
        throw new CliError(`not a session id: ${text} (see fleetgate sessions ls)`);
      const ctx = new CommandContext(io, command);
      const { server, token, ca } = await ctx.connection();
      if (!server || !token) throw new CliError('not logged in: run `fleetgate login --server URL`');
      const fetchRecording = io.fetch ?? (ca && server.startsWith('https:') ? fetchTrusting(ca) : fetch);
      let response: Response;
      try {
        response = await fetchRecording(
          `${server.replace(/\/+$/, '')}/api/v1${apiPath`/sessions/${id}/recording`}`,
          {
            headers: { authorization: `Bearer ${token}` },
          },
        );
      } catch (error) {
        throw new CliError(`cannot reach ${server}: ${(error as Error).message}`, { cause: error });
      }
      const body = await response.text();
      if (!response.ok) {
        let message = `HTTP ${response.status}`;
        try {
          message = (JSON.parse(body) as { error?: { message?: string } }).error?.message ?? message;
        } catch {
          // Not the API's error shape: the status says enough.
        }
        throw new CliError(`no recording of session ${id}: ${message}`);
      }
      if (ctx.globals.json) {
        io.stdout.write(body);
        return;
      }
      const { events } = parseAsciicast(body);
      let previous = 0;
      for (const [time, kind, data] of events) {
        const pause = Math.min(Math.max(0, time - previous), options.idleLimit) / options.speed;
        previous = time;
        if (kind !== 'o') continue;
        if (pause > 0) await new Promise((resolve) => setTimeout(resolve, pause * 1000));
        io.stdout.write(data);
      }
      io.stderr.write(`\n[end of session ${id}]\n`);
    });
}
