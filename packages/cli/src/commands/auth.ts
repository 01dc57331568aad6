import type { Command } from 'commander';
import type { LoginAnswer, Me } from '../api.ts';
import { ApiError } from '../client.ts';
import {
  type Credentials,
  normalizeServer,
  type Profiles,
  profileForLogin,
  removeCredentials,
  resolveServer,
  saveCredentials,
  savedLoginFor,
} from '../config.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
import { formatRecord } from '../output.ts';
import { ask, canPrompt, confirm } from '../prompt.ts';
import { caOfChain, isUntrustedCertificate, probeCertificate, readCaFile, tlsAdvice } from '../tls.ts';

interface LoginOptions {
  email?: string;
  password?: string;
  ca?: string;
  yes?: boolean;
}

/** `login`, `logout`, `whoami`, `passwd`. */
export function registerAuthCommands(program: Command, io: CliIo): void {
  program
    .command('login')
    .description(
      'sign in to a fleetgate server and save the session token (file mode 0600) as a profile: one per server',
    )
    .option('--email <email>', 'e-mail to sign in with (asked for on a terminal when missing)')
    .option(
      '--password <password>',
      'password (asked for on a terminal when missing; FLEETGATE_PASSWORD also works)',
    )
    .option(
      '--ca <file>',
      "the server's CA certificate (PEM, e.g. its data directory's tls/ca.crt), saved with the login",
    )
    .option('-y, --yes', 'trust the CA an HTTPS server shows without asking (compare its fingerprint first)')
    .addHelpText(
      'after',
      '\nExamples:\n  fleetgate login --server http://127.0.0.1:8080\n' +
        '  fleetgate login --server https://fleet.example.com:8080 --ca ca.crt --profile prod',
    )
    .action(async (options: LoginOptions, command: Command) => {
      const ctx = new CommandContext(io, command);
      const profiles = await ctx.profiles().catch((): Profiles => ({ current: undefined, profiles: {} }));
      const saved = savedLoginFor({ flags: ctx.globals, env: io.env }, profiles);
      const server = resolveServer({ flags: ctx.globals, env: io.env, saved });
      if (!server) throw new CliError('no server given: run `fleetgate login --server URL`');
      const profile = profileForLogin(ctx.globals.profile ?? io.env.FLEETGATE_PROFILE, server, profiles);
      const previous = profiles.profiles[profile];
      const again = previous && normalizeServer(previous.server) === server ? previous : undefined;
      const given = options.ca === undefined ? undefined : await readCaFile(options.ca);
      // Checked before a password is asked for or sent: it goes only to a server whose certificate verifies.
      const ca = server.startsWith('https:')
        ? await trustedCaFor(ctx, server, given ?? again?.ca, { caFile: options.ca, yes: options.yes })
        : undefined;

      const email = options.email?.trim() || (await askEmail(io, again?.email ?? ''));
      const password = options.password || io.env.FLEETGATE_PASSWORD || (await askPassword(io));

      const login = await ctx
        .clientFor(server, undefined, { ca })
        .request<LoginAnswer>('POST', '/auth/login', {
          body: { email, password },
        });
      // Only a browser's sign-in (`cookie: true`) answers without one.
      if (!login.token) throw new CliError(`${server} answered the sign-in without a session token`);
      const credentials: Credentials = {
        server,
        token: login.token,
        email: login.user.email,
        ...(ca ? { ca } : {}),
        ...(again?.org ? { org: again.org } : {}),
      };
      const file = await saveCredentials(io.env, credentials, profile);
      const others = Object.keys(profiles.profiles).filter((name) => name !== profile);
      // The token is saved, not printed: it would end up in terminal scrollback and CI logs.
      ctx.out.result({ server, profile, expiresAt: login.expiresAt, user: login.user }, () =>
        [
          `logged in to ${server} as ${login.user.email} (profile ${profile}, now the current one)`,
          `session expires at ${login.expiresAt}; credentials saved in ${file}`,
          ...(others.length
            ? [`other profiles: ${others.join(', ')} (\`fleetgate context use <name>\` switches back)`]
            : []),
          '',
        ].join('\n'),
      );
    });

  program
    .command('logout')
    .description(
      'end the session on the server and forget the saved login (of --profile, or the current one)',
    )
    .action(async (_options: unknown, command: Command) => {
      const ctx = new CommandContext(io, command);
      const { server, token, tokenSource, ca } = await ctx.connection();
      if (!server || !token) {
        ctx.out.done('not logged in');
        return;
      }
      let revokeError: unknown;
      try {
        await ctx.clientFor(server, token, { ca }).request('POST', '/auth/logout');
      } catch (error) {
        // 401: the session had already expired or been revoked, which is what logout wants.
        if (!(error instanceof ApiError && error.status === 401)) revokeError = error;
      }
      if (tokenSource !== 'file') {
        if (revokeError) throw revokeError;
        ctx.out.done(`logged out of ${server}`);
        return;
      }
      await removeCredentials(io.env, await ctx.savedProfileName());
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

/**
 * The CA to check `server`'s certificate with, decided before anything is sent to it: none when the system
 * trusts the server (or `ca`, the one given or saved, does); else, on first use, the CA the server sends, once the
 * person compared its fingerprint and said yes (`--yes` for scripts). Fails saying what to do otherwise.
 */
async function trustedCaFor(
  ctx: CommandContext,
  server: string,
  ca: string | undefined,
  options: { caFile: string | undefined; yes: boolean | undefined },
): Promise<string | undefined> {
  const probe = await probeCertificate(server, ca);
  if (probe.authorized) return ca;
  if (!isUntrustedCertificate(probe.error)) {
    throw new CliError(
      tlsAdvice(server, probe.error) ?? `cannot verify the certificate of ${server}: ${probe.error}`,
    );
  }
  if (options.caFile !== undefined) {
    throw new CliError(
      `the certificate of ${server} is not issued by the CA in ${options.caFile} (${probe.error}): give the server's own ca.crt`,
    );
  }
  const found = caOfChain(probe.chain);
  if (!found) {
    throw new CliError(
      `the certificate of ${server} is issued by a CA this computer does not trust, and the server does not send it ` +
        `(${probe.error}): copy the server's CA certificate (its data directory's tls/ca.crt) and run ` +
        `\`fleetgate login --server ${server} --ca ca.crt\``,
    );
  }
  const subject = found.subject.replace(/\n/g, ', ');
  if (!options.yes && !canPrompt(ctx.io.stdin)) {
    throw new CliError(
      `the certificate of ${server} is issued by a CA this computer does not trust (${subject}, SHA-256 ` +
        `${found.fingerprint256}): compare that fingerprint with the server's (\`fleetgate init\` printed it) and ` +
        'run again with --yes, or with --ca FILE',
      { exitCode: 2 },
    );
  }
  ctx.io.stderr.write(
    [
      `The certificate of ${server} is issued by a CA this computer does not trust yet:`,
      `  CA:       ${subject}`,
      `  SHA-256:  ${found.fingerprint256}`,
      'Compare the fingerprint with the one `fleetgate init` printed on the server, or with',
      '  openssl x509 -noout -fingerprint -sha256 -in <data dir>/tls/ca.crt',
      '',
    ].join('\n'),
  );
  await confirm(ctx.io, `Trust this CA for ${server} (saved with this login only)?`, { yes: options.yes });
  const pem = found.toString();
  const check = await probeCertificate(server, pem);
  if (!check.authorized) {
    throw new CliError(
      tlsAdvice(server, check.error) ?? `cannot verify the certificate of ${server}: ${check.error}`,
    );
  }
  return pem;
}
