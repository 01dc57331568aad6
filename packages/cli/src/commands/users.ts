import type { Command } from 'commander';
import type { Page, User, WithOneTimePassword } from '../api.ts';
import { parseId, withPaging } from '../arguments.ts';
import { apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
import type { Column, Output } from '../output.ts';
import { readAll } from '../prompt.ts';

const userColumns: Column<User>[] = [
  { header: 'ID', value: (user) => user.id },
  { header: 'EMAIL', value: (user) => user.email },
  { header: 'NAME', value: (user) => user.name },
  { header: 'SERVER ADMIN', value: (user) => user.serverAdmin },
  { header: 'CREATED', value: (user) => user.createdAt },
];

/**
 * `users ls|show|create|rm`: accounts on the server (creating and deleting is for server admins);
 * `users reset-password`: on the server's machine, against its database, with no sign-in.
 */
export function registerUserCommands(program: Command, io: CliIo): void {
  const users = program.command('users').description('user accounts');

  withPaging(
    users
      .command('ls')
      .description('list the people of my organizations (every user for server admins)')
      .option('--search <text>', 'text in the e-mail or name'),
  ).action(async (options: { search?: string; limit?: number; page?: number }, command: Command) => {
    const ctx = new CommandContext(io, command);
    const answer = await ctx.api<Page<User>>('GET', '/users', {
      query: { q: options.search, limit: options.limit, page: options.page },
    });
    ctx.out.list(answer, userColumns, 'users');
  });

  users
    .command('show')
    .description('show one user')
    .argument('<userId>', 'user id', parseId)
    .action(async (userId: number, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      ctx.out.record(await ctx.api<User>('GET', apiPath`/users/${userId}`));
    });

  users
    .command('create')
    .description('create a user (server admins); without --password a random one is shown once')
    .argument('<email>', 'e-mail, used to sign in')
    .option('--name <name>', 'display name')
    .option('--password <password>', 'initial password, 8 characters or more')
    .action(async (email: string, options: { name?: string; password?: string }, command: Command) => {
      const ctx = new CommandContext(io, command);
      const user = await ctx.api<User & WithOneTimePassword>('POST', '/users', {
        body: { email, name: options.name, password: options.password },
      });
      printWithOneTimePassword(ctx.out, user, user.email);
    });

  users
    .command('rm')
    .description('delete a user (server admins)')
    .argument('<userId>', 'user id', parseId)
    .action(async (userId: number, _options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      await ctx.api('DELETE', apiPath`/users/${userId}`);
      ctx.out.done(`deleted user ${userId}`);
    });

  users
    .command('reset-password')
    .description(
      "on the server's machine: set a new password straight in its database (no sign-in, no running server " +
        'needed), end their sessions, audited; a random password is shown once unless --password-stdin',
    )
    .argument('<email>', 'e-mail of the user')
    .option('--data-dir <dir>', "the server's data directory (default: FLEETGATE_DATA_DIR, then ./data)")
    .option('--database-url <url>', "the server's PostgreSQL URL (default: DATABASE_URL, else SQLite)")
    .option('--db-schema <schema>', 'PostgreSQL schema (default: FLEETGATE_DB_SCHEMA, then public)')
    .option('--password-stdin', 'read the new password from standard input instead of choosing one')
    .action(async (email: string, options: ResetPasswordOptions, command: Command) => {
      const ctx = new CommandContext(io, command);
      const password = options.passwordStdin ? (await readAll(io.stdin)).replace(/\r?\n$/, '') : undefined;
      // Loaded here, not at the top: the server's dependencies would slow every other command down.
      const { resetPassword } = await import('@fleetgate/server');
      const os = await import('node:os');
      const flags: Record<string, string> = {};
      if (options.dataDir) flags.dataDir = options.dataDir;
      if (options.databaseUrl) flags.databaseUrl = options.databaseUrl;
      if (options.dbSchema) flags.dbSchema = options.dbSchema;
      let reset: Awaited<ReturnType<typeof resetPassword>>;
      try {
        reset = await resetPassword({ env: io.env, flags, email, password, osUser: os.userInfo().username });
      } catch (error) {
        if (error instanceof Error && (error.name === 'AppError' || error.name === 'ConfigError')) {
          throw new CliError(error.message, { cause: error });
        }
        throw error;
      }
      if (ctx.out.json) {
        ctx.out.record({
          ...reset.user,
          sessionsRevoked: reset.sessionsRevoked,
          ...(reset.generatedPassword ? { password: reset.generatedPassword } : {}),
        });
        return;
      }
      const lines = [
        `new password set for ${reset.user.email} (${reset.database}); ${reset.sessionsRevoked} session(s) ended`,
        ...(reset.generatedPassword
          ? [
              `  password     ${reset.generatedPassword}`,
              '  (shown only this once; change it after signing in: fleetgate passwd)',
            ]
          : []),
        '',
      ];
      io.stdout.write(lines.join('\n'));
    });
}

interface ResetPasswordOptions {
  dataDir?: string;
  databaseUrl?: string;
  dbSchema?: string;
  passwordStdin?: boolean;
}

/**
 * A created user or member; when the server generated a password, it is shown with a warning, because the
 * server never shows it again.
 */
export function printWithOneTimePassword(
  out: Output,
  created: WithOneTimePassword & object,
  email: string,
): void {
  if (out.json) {
    out.record(created);
    return;
  }
  const { password, ...rest } = created;
  out.record(rest);
  if (password) {
    out.note(`\none-time password for ${email}: ${password}`);
    out.note('it is shown only this once: pass it on now; they can change it after signing in');
  }
}
