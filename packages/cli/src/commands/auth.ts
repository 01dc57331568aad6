import type { Command } from 'commander';
import type { LoginAnswer, Me } from '../api.ts';
import { ApiError } from '../client.ts';
import {
  type Credentials,
  normalizeServer,
  readCredentials,
  removeCredentials,
  resolveServer,
  saveCredentials,
} from '../config.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
import { formatRecord } from '../output.ts';
import { ask, canPrompt } from '../prompt.ts';

interface LoginOptions {
  email?: string;
  password?: string;
}

/** `login`, `logout`, `whoami`, `passwd`. */
export function registerAuthCommands(program: Command, io: CliIo): void {
  program
    .command('login')
    .description('sign in to a fleetgate server and save the session token (file mode 0600)')
    .option('--email <email>', 'e-mail to sign in with (asked for on a terminal when missing)')
    .option(
      '--password <password>',
      'password (asked for on a terminal when missing; FLEETGATE_PASSWORD also works)',
    )
    .addHelpText('after', '\nExample:\n  fleetgate login --server http://127.0.0.1:8080')
    .action(async (options: LoginOptions, command: Command) => {
      const ctx = new CommandContext(io, command);
      const saved = await readCredentials(io.env).catch(() => undefined);
      const server = resolveServer({ flags: ctx.globals, env: io.env, saved });
      if (!server) throw new CliError('no server given: run `fleetgate login --server URL`');
      const savedEmail = saved && normalizeServer(saved.server) === server ? saved.email : '';

      const email = options.email?.trim() || (await askEmail(io, savedEmail));
      const password = options.password || io.env.FLEETGATE_PASSWORD || (await askPassword(io));

      const login = await ctx.clientFor(server).request<LoginAnswer>('POST', '/auth/login', {
        body: { email, password },
      });
      const credentials: Credentials = { server, token: login.token, email: login.user.email };
      const file = await saveCredentials(io.env, credentials);
      // The token is saved, not printed: it would end up in terminal scrollback and CI logs.
      ctx.out.result({ server, expiresAt: login.expiresAt, user: login.user }, () =>
        [
          `logged in to ${server} as ${login.user.email}`,
          `session expires at ${login.expiresAt}; credentials saved in ${file}`,
          '',
        ].join('\n'),
      );
    });

  program
    .command('logout')
    .description('end the session on the server and forget the saved login')
    .action(async (_options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      const { server, token, tokenSource } = await ctx.connection();
      if (!server || !token) {
        ctx.out.done('not logged in');
        return;
      }
      let revokeError: unknown;
      try {
        await ctx.clientFor(server, token).request('POST', '/auth/logout');
      } catch (error) {
        // 401: the session had already expired or been revoked, which is what logout wants.
        if (!(error instanceof ApiError && error.status === 401)) revokeError = error;
      }
      if (tokenSource !== 'file') {
        if (revokeError) throw revokeError;
        ctx.out.done(`logged out of ${server}`);
        return;
      }
      await removeCredentials(io.env);
      if (revokeError) {
        const reason = revokeError instanceof Error ? revokeError.message : String(revokeError);
        io.stderr.write(`fleetgate: warning: the server did not end the session (${reason})\n`);
      }
      ctx.out.done(`logged out of ${server}`);
    });

  program
    .command('passwd')
    .description('change your password (your other sessions end; this one stays signed in)')
    .option(
      '--current <password>',
      'current password (asked for on a terminal; FLEETGATE_PASSWORD also works)',
    )
    .option(
      '--new <password>',
      'new password, 8+ characters (asked for twice on a terminal; FLEETGATE_NEW_PASSWORD)',
    )
    .action(async (options: { current?: string; new?: string }, command: Command) => {
      const ctx = new CommandContext(io, command);
      const client = await ctx.client();
      const currentPassword = options.current || io.env.FLEETGATE_PASSWORD || (await askPassword(io));
      const password = options.new || io.env.FLEETGATE_NEW_PASSWORD || (await askNewPassword(io));
      const me = await client.request<Me>('PATCH', '/me', { body: { password, currentPassword } });
      ctx.out.result({ email: me.email, changed: true }, () => `password changed for ${me.email}\n`);
    });

  program
    .command('whoami')
    .description('show who the saved login or token signs in as, and their organizations')
    .action(async (_options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      const client = await ctx.client();
      const me = await client.request<Me>('GET', '/me');
      ctx.out.result(me, () => {
        const memberships = me.memberships.map(
          (m) =>
            `  ${m.orgName} (org ${m.orgId}): ${m.role}, ` +
            (m.fleetIds === null ? 'all fleets' : `fleets ${m.fleetIds.join(', ') || 'none'}`),
        );
        const { memberships: _, ...user } = me;
        return (
          formatRecord({ ...user, server: client.server }, ['email', 'name', 'id', 'serverAdmin']) +
          (memberships.length ? `memberships:\n${memberships.join('\n')}\n` : 'memberships: none\n')
        );
      });
    });
}

async function askNewPassword(io: CliIo): Promise<string> {
  if (!canPrompt(io.stdin)) {
    throw new CliError(
      'no new password given and no terminal to ask on: pass --new or set FLEETGATE_NEW_PASSWORD',
    );
  }
  const password = await ask(io, 'new password: ', { hidden: true });
  if ((await ask(io, 'new password again: ', { hidden: true })) !== password)
    throw new CliError('the two new passwords differ: nothing changed');
  return password;
}

async function askEmail(io: CliIo, savedEmail: string): Promise<string> {
  if (!canPrompt(io.stdin)) {
    throw new CliError('no e-mail given and no terminal to ask on: pass --email');
  }
  const answer = await ask(io, savedEmail ? `e-mail [${savedEmail}]: ` : 'e-mail: ');
  const email = answer || savedEmail;
  if (!email) throw new CliError('no e-mail given');
  return email;
}

async function askPassword(io: CliIo): Promise<string> {
  if (!canPrompt(io.stdin)) {
    throw new CliError(
      'no password given and no terminal to ask on: pass --password or set FLEETGATE_PASSWORD',
    );
  }
  const password = await ask(io, 'password: ', { hidden: true });
  if (!password) throw new CliError('no password given');
  return password;
}
