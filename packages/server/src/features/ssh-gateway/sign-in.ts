import { createHash } from 'node:crypto';
import ssh2, { type AuthContext, type PasswordAuthContext, type PublicKeyAuthContext } from 'ssh2';
import type { UserPrincipal } from '../../infra/access/index.ts';
import { appendAuditEvent } from '../../infra/audit/index.ts';
import { AppError } from '../../infra/errors/index.ts';
import { type GuessThrottle, personGuessLimits, sharedGuessThrottle } from '../../infra/rate-limit/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { API_KEY_PREFIX, type AuthService } from '../auth/index.ts';
import { markSshKeyUsed, sshKeyByFingerprint } from '../ssh-keys/index.ts';
import { parseSshUsername } from './targets.ts';

/**
 * Signing in to the SSH gateway: people authenticate with their registered SSH public keys, or with one of
 * their API keys as the password (for scripts). Both build the same user principal as the HTTP API. Failed
 * sign-ins are rate-limited per source and per login, and audited.
 */

const LOGIN_WINDOW_MS = 15 * 60 * 1000;

/** Who a connection signed in as. */
export interface SignedIn {
  login: string;
  /** The person as they were at sign-in; the stream router reads their rights again for every channel. */
  principal: UserPrincipal;
  /** The device named in the username (`login+device`), for session channels. */
  device: string | null;
}

/** A connection's sign-in state, as the gateway keeps it. */
export interface SignInState {
  /** Ends the connection (too many failures). */
  end(): void;
  sourceIp: string | null;
  /** The rate-limit key of the source: the address, or its /64 for IPv6. */
  source: string;
  user: SignedIn | undefined;
  /** A key or password was tried (a failure counts once per connection, not once per offered key). */
  attemptedLogin: string | undefined;
  /** A failure was already counted (a wrong password), so closing without signing in does not count again. */
  failureCounted: boolean;
}

export class SshSignIn {
  /** Guessing is slowed per (login, source) and per source: see `GuessThrottle`. */
  private readonly guesses: GuessThrottle;

  constructor(
    private readonly deps: ServiceDeps,
    private readonly auth: AuthService,
  ) {
    this.guesses = sharedGuessThrottle(
      deps,
      'ssh',
      personGuessLimits(deps.config.loginAttempts, LOGIN_WINDOW_MS),
    );
  }

  /** Answers one authentication request of a connection (accepts, rejects, or answers a key query). */
  async authenticate(connection: SignInState, context: AuthContext): Promise<void> {
    if (context.method !== 'publickey' && context.method !== 'password') {
      context.reject(['publickey', 'password']);
      return;
    }
    const name = await parseSshUsername(this.deps.db, context.username);
    const login = name.login.toLowerCase();
    if (this.guesses.retryAfter(login, connection.source) > 0) {
      context.reject();
      connection.end();
      return;
    }
    connection.attemptedLogin = login;
    const accepted =
      context.method === 'publickey'
        ? await this.checkPublicKey(context, name.userId)
        : await this.checkPassword(context, connection, name.userId);
    if (accepted === 'query') return;
    if (!accepted) {
      if (context.method === 'password') {
        // A wrong password counts at once: unlike keys, a client does not try several in a row.
        this.guesses.failed(login, connection.source);
        connection.failureCounted = true;
      }
      context.reject(['publickey', 'password']);
      return;
    }
    this.guesses.succeeded(login, connection.source);
    // Known before accepting, so that no channel can arrive before the connection knows who it is.
    connection.user = { login, principal: accepted, device: name.device };
    context.accept();
    await appendAuditEvent(
      this.deps.db,
      { principal: accepted, sourceIp: connection.sourceIp },
      {
        orgId: null,
        action: 'auth.ssh',
        resourceType: 'user',
        resourceId: accepted.userId,
        outcome: 'success',
        details: { method: context.method, ...(name.device ? { device: name.device.slice(0, 255) } : {}) },
      },
    ).catch((err: unknown) => this.deps.log.error({ err }, 'could not audit an SSH sign-in'));
  }

  /**
   * A connection closed: if it tried and never got in, one failure counts (OpenSSH offers several keys in one),
   * unless its wrong passwords were counted already, and the failure is audited.
   */
  closed(connection: SignInState): void {
    if (connection.user || connection.attemptedLogin === undefined) return;
    if (!connection.failureCounted) this.guesses.failed(connection.attemptedLogin, connection.source);
    void appendAuditEvent(
      this.deps.db,
      { principal: { type: 'anonymous' }, sourceIp: connection.sourceIp },
      {
        orgId: null,
        action: 'auth.ssh',
        resourceType: 'user',
        resourceId: null,
        outcome: 'failure',
        details: { login: connection.attemptedLogin.slice(0, 320) },
      },
    ).catch((err: unknown) => this.deps.log.error({ err }, 'could not audit an SSH sign-in failure'));
  }

  /**
   * A public key: known (by its SHA-256 fingerprint, as `fleetgate ssh-keys` shows it) and registered by the
   * user the login names. Without a signature the client only asks whether the key would do ('query').
   * Answers the person as they are now.
   */
  private async checkPublicKey(
    context: PublicKeyAuthContext,
    userId: number | undefined,
  ): Promise<UserPrincipal | false | 'query'> {
    if (userId === undefined) return false;
    const fingerprint = `SHA256:${createHash('sha256').update(context.key.data).digest('base64').replace(/=+$/, '')}`;
    const key = await sshKeyByFingerprint(this.deps, fingerprint);
    if (!key || key.user_id !== userId) return false;
    if (!context.signature || !context.blob) {
      context.accept();
      return 'query';
    }
    const parsed = ssh2.utils.parseKey(key.public_key);
    const publicKey = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!publicKey || publicKey instanceof Error) return false;
    if (publicKey.verify(context.blob, context.signature, context.hashAlgo) !== true) return false;
    await markSshKeyUsed(this.deps, key);
    return (await this.auth.principalOf(userId, { type: 'ssh_key', id: key.id })) ?? false;
  }

  /** A password: one of the user's API keys, checked as the HTTP API checks `Authorization: Bearer`. */
  private async checkPassword(
    context: PasswordAuthContext,
    connection: SignInState,
    userId: number | undefined,
  ): Promise<UserPrincipal | false> {
    if (userId === undefined || !context.password.startsWith(API_KEY_PREFIX)) return false;
    try {
      const principal = await this.auth.authenticate(`Bearer ${context.password}`, connection.sourceIp);
      if (principal.type !== 'user' || principal.userId !== userId) return false;
      return principal;
    } catch (err) {
      if (err instanceof AppError) return false;
      throw err;
    }
  }
}
