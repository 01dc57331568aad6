import type { Command } from 'commander';
import { checkProfileName, readProfiles, saveProfiles } from '../config.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
import type { Column } from '../output.ts';

/** One saved profile as `context ls` shows it: never its token. */
interface ProfileRow {
  name: string;
  current: boolean;
  server: string;
  email: string;
  org: string | null;
  /** Whether a CA is saved with it (`login --ca`, or trusted on first use). */
  ca: boolean;
}

const profileColumns: Column<ProfileRow>[] = [
  { header: '', value: (row) => (row.current ? '*' : '') },
  { header: 'PROFILE', value: (row) => row.name },
  { header: 'SERVER', value: (row) => row.server },
  { header: 'EMAIL', value: (row) => row.email },
  { header: 'ORG', value: (row) => row.org ?? '-' },
  { header: 'CA', value: (row) => (row.ca ? 'saved' : '-') },
];

/** `context ls|use`: the saved logins (one per server signed in to) and which one commands use. */
export function registerContextCommands(program: Command, io: CliIo): void {
  const context = program
    .command('context')
    .description(
      'saved logins, one per server: list them and pick the one commands use (--profile for one command)',
    );

  context
    .command('ls')
    .description('list the saved logins; * marks the current one')
    .action(async (_options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      const saved = await readProfiles(io.env);
      const current = await ctx.profileName();
      const items: ProfileRow[] = Object.entries(saved.profiles).map(([name, login]) => ({
        name,
        current: name === current,
        server: login.server,
        email: login.email,
        org: login.org ?? null,
        ca: login.ca !== undefined,
      }));
      ctx.out.list({ items }, profileColumns, 'saved logins (fleetgate login --server URL)');
    });

  context
    .command('use')
    .description('make a saved login the current one')
    .argument('<profile>', 'its name, as `context ls` shows it')
    .action(async (name: string, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      const saved = await readProfiles(io.env);
      const login = saved.profiles[checkProfileName(name)];
      if (!login) {
        const names = Object.keys(saved.profiles);
        throw new CliError(
          `no profile "${name}" (saved: ${names.join(', ') || 'none'}): sign in with \`fleetgate login --server URL --profile ${name}\``,
        );
      }
      await saveProfiles(io.env, { ...saved, current: name });
      ctx.out.result(
        { current: name, server: login.server, email: login.email },
        () => `commands now use ${name}: ${login.email} on ${login.server}\n`,
      );
    });
}
