/**
 * Enrollment and authentication: how the device gets credentials and proves who it is.
 *
 * - Provisioning key (balena style): the agent generates a uuid and a device key, registers them with
 *   `POST /api/v1/devices/register` (`Authorization: Bearer <provisioning key>`), and from then on
 *   authenticates with `Basic uuid:key`.
 * - balena `config.json`: the device keeps the uuid + device API key balenaOS gave it (imported on the server
 *   with `fleetgate import balena-config`) and authenticates with them from the start.
 * - Key pair (Mender style): the agent signs auth requests (`POST /api/v1/device-auth/auth_requests`,
 *   signature over the exact body bytes in `X-MEN-Signature`). 200 answers a short-lived device JWT; 401
 *   means the auth set is pending until an admin accepts it, so the agent retries with backoff.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
} from 'node:crypto';
import fs from 'node:fs';
import { Backoff, sleep } from './backoff.ts';
import type { EnrollmentConfig } from './config.ts';
import {
  type Credentials,
  ensureDataDir,
  readCredentials,
  writeCredentials,
  writeFileAtomic,
} from './credentials.ts';
import { apiErrorOf, request, type ServerEndpoint } from './http.ts';
import type { Logger } from './log.ts';

/** Enrollment cannot succeed by retrying: a bad provisioning key, a rejected or decommissioned device. */
export class EnrollmentError extends Error {
  override name = 'EnrollmentError';
  constructor(
    message: string,
    /** `decommissioned` ends the agent for good; anything else needs a person to fix the config. */
    readonly reason: 'refused' | 'decommissioned' | 'config' = 'refused',
  ) {
    super(message);
  }
}

export interface EnrollOptions {
  server: ServerEndpoint;
  dataDir: string;
  deviceType: string;
  name?: string;
  enrollment?: EnrollmentConfig;
  agentVersion: string;
  osVersion?: string;
  backoff: { baseMs: number; capMs: number };
  log: Logger;
  /** Aborting stops the retries; the promise then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * The device's credentials, enrolling first if it has none: with a provisioning key the device is
 * registered (retrying network failures and 5xx with backoff); with a key pair the key is created and
 * the identity stored (acceptance happens on the first auth request, see `KeyPairAuthenticator`).
 */
export async function ensureEnrolled(options: EnrollOptions): Promise<Credentials> {
  ensureDataDir(options.dataDir);
  let credentials = readCredentials(options.dataDir);
  if (credentials?.type === 'key-pair') return credentials;
  if (credentials?.type === 'device-key' && credentials.registered) return credentials;

  const enrollment = options.enrollment;
  if (!enrollment) {
    throw new EnrollmentError(
      `no credentials in ${options.dataDir} and no "enrollment" in the configuration: add a provisioning key or a key pair`,
      'config',
    );
  }
  if (enrollment.method === 'key-pair') {
    loadOrCreatePrivateKey(enrollment.privateKeyFile, options.log);
    credentials = {
      type: 'key-pair',
      privateKeyFile: enrollment.privateKeyFile,
      identity: enrollment.identity,
      ...(enrollment.tenantToken ? { tenantToken: enrollment.tenantToken } : {}),
    };
    writeCredentials(options.dataDir, credentials);
    return credentials;
  }
  if (enrollment.method === 'balena-config') {
    // The server knows this uuid + key already (`fleetgate import balena-config`): nothing to register.
    credentials = {
      type: 'device-key',
      uuid: enrollment.uuid,
      deviceKey: enrollment.deviceKey,
      registered: true,
    };
    writeCredentials(options.dataDir, credentials);
    options.log.info('using the uuid and device key of the balena config', {
      uuid: enrollment.uuid,
      file: enrollment.file,
    });
    return credentials;
  }

  // Stored before registering: if the agent dies after the server's 201 and before we hear it, the next
  // start registers the SAME uuid and key again (409 then means "already ours") instead of a new device.
  if (credentials?.type !== 'device-key') {
    credentials = {
      type: 'device-key',
      uuid: randomBytes(16).toString('hex'),
      deviceKey: randomBytes(32).toString('hex'),
      registered: false,
    };
    writeCredentials(options.dataDir, credentials);
  }
  await registerDevice(credentials, enrollment.provisioningKey, options);
  credentials = { ...credentials, registered: true };
  writeCredentials(options.dataDir, credentials);
  return credentials;
}

async function registerDevice(
  credentials: Extract<Credentials, { type: 'device-key' }>,
  provisioningKey: string,
  options: EnrollOptions,
): Promise<void> {
  const body = JSON.stringify({
    uuid: credentials.uuid,
    device_type: options.deviceType,
    api_key: credentials.deviceKey,
    ...(options.name ? { name: options.name } : {}),
    ...(options.osVersion ? { os_version: options.osVersion.slice(0, 128) } : {}),
    agent_version: options.agentVersion,
  });
  const backoff = new Backoff(options.backoff);
  for (;;) {
    options.signal?.throwIfAborted();
    let retryReason: string;
    try {
      const answer = await request(options.server, 'POST', '/api/v1/devices/register', {
        body,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${provisioningKey}` },
      });
      if (answer.status === 201) {
        options.log.info('registered with the provisioning key', { uuid: credentials.uuid });
        return;
      }
      if (answer.status === 409) {
        options.log.info('the uuid is registered already (by an earlier attempt of this agent)', {
          uuid: credentials.uuid,
        });
        return;
      }
      const error = apiErrorOf(answer);
      if (answer.status === 400 || answer.status === 401 || answer.status === 403) {
        throw new EnrollmentError(
          `registration refused (${answer.status}): ${error.message ?? answer.text.slice(0, 200)}`,
        );
      }
      retryReason = `${answer.status} ${error.message ?? ''}`.trim();
      if (answer.status === 429) backoff.toCap();
    } catch (error) {
      if (error instanceof EnrollmentError) throw error;
      retryReason = (error as Error).message;
    }
    const delay = backoff.next();
    options.log.warn('registration failed; retrying', { reason: retryReason, retryInMs: delay });
    if (!(await sleep(delay, options.signal))) options.signal?.throwIfAborted();
  }
}

/** Loads the PEM private key, generating an Ed25519 key (0600) when the file does not exist. */
export function loadOrCreatePrivateKey(file: string, log: Logger): KeyObject {
  try {
    return createPrivateKey(fs.readFileSync(file));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new EnrollmentError(`cannot use the private key ${file}: ${(error as Error).message}`, 'config');
    }
  }
  const { privateKey } = generateKeyPairSync('ed25519');
  writeFileAtomic(file, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  log.info('generated an Ed25519 key pair for enrollment', { privateKeyFile: file });
  return privateKey;
}

/** Mender's id_data: the identity as JSON text with its keys sorted. */
export function idDataOf(identity: Record<string, string>): string {
  const sorted = Object.entries(identity).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify(Object.fromEntries(sorted));
}

/**
 * A signed auth request byte for byte as the Mender client makes it: the JSON body followed by a newline,
 * and `X-MEN-Signature` = base64 of the signature over exactly those bytes (Ed25519: pure; RSA and ECDSA:
 * SHA-256, ECDSA in DER).
 */
export function signedAuthRequest(
  privateKey: KeyObject,
  identity: Record<string, string>,
  tenantToken = '',
): { body: Buffer; headers: Record<string, string> } {
  const pubkey = createPublicPem(privateKey);
  const body = Buffer.from(
    `${JSON.stringify({ id_data: idDataOf(identity), tenant_token: tenantToken, pubkey })}\n`,
    'utf8',
  );
  const algorithm = privateKey.asymmetricKeyType === 'ed25519' ? null : 'sha256';
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'x-men-signature': sign(algorithm, body, privateKey).toString('base64'),
      authorization: `Bearer ${tenantToken}`,
    },
  };
}

/** The public key as PKIX PEM, derived from the private one so the pair can never disagree. */
function createPublicPem(privateKey: KeyObject): string {
  return createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
}

/** Answers the `Authorization` header for the tunnel upgrade. */
export interface DeviceAuthenticator {
  /** What the device is called in logs (its uuid, or its identity). */
  readonly label: string;
  /**
   * The header value; may wait (a pending auth set retries until an admin accepts it). Rejects with
   * `EnrollmentError` when waiting cannot help, or with the signal's reason when aborted.
   */
  authorization(signal?: AbortSignal): Promise<string>;
  /** The server refused the credential (401, close 4004): fetch a new one before the next attempt. */
  invalidate(): void;
}

/** `Basic base64(uuid:deviceKey)`: a static credential. */
export class DeviceKeyAuthenticator implements DeviceAuthenticator {
  readonly label: string;
  private readonly header: string;

  constructor(credentials: Extract<Credentials, { type: 'device-key' }>) {
    this.label = credentials.uuid;
    this.header = `Basic ${Buffer.from(`${credentials.uuid}:${credentials.deviceKey}`).toString('base64')}`;
  }

  async authorization(): Promise<string> {
    return this.header;
  }

  invalidate(): void {
    // Nothing to refresh: the tunnel's backoff decides when to try the same key again.
  }
}

export interface KeyPairAuthenticatorOptions {
  server: ServerEndpoint;
  credentials: Extract<Credentials, { type: 'key-pair' }>;
  backoff: { baseMs: number; capMs: number };
  log: Logger;
  /** A token is renewed this long before it expires, in milliseconds. Default 60 000. */
  renewBeforeMs?: number;
  /** Clock, for tests. Default `Date.now`. */
  now?: () => number;
}

/** Device JWTs from signed auth requests, cached until shortly before they expire. */
export class KeyPairAuthenticator implements DeviceAuthenticator {
  readonly label: string;
  private readonly privateKey: KeyObject;
  private token: { value: string; expiresAt: number } | null = null;
  private readonly now: () => number;

  constructor(private readonly options: KeyPairAuthenticatorOptions) {
    this.label = idDataOf(options.credentials.identity);
    this.privateKey = loadOrCreatePrivateKey(options.credentials.privateKeyFile, options.log);
    this.now = options.now ?? Date.now;
  }

  async authorization(signal?: AbortSignal): Promise<string> {
    const renewBefore = this.options.renewBeforeMs ?? 60_000;
    if (this.token && this.token.expiresAt - renewBefore > this.now()) return `Bearer ${this.token.value}`;
    this.token = null;
    const token = await this.requestUntilAccepted(signal);
    this.token = { value: token, expiresAt: expiryOf(token) ?? this.now() + 10 * 60_000 };
    return `Bearer ${token}`;
  }

  invalidate(): void {
    this.token = null;
  }

  /** One signed auth request: the token, or why not. */
  async requestOnce(): Promise<{ token: string } | { status: number; reason: string; message: string }> {
    const { body, headers } = signedAuthRequest(
      this.privateKey,
      this.options.credentials.identity,
      this.options.credentials.tenantToken,
    );
    const answer = await request(this.options.server, 'POST', '/api/v1/device-auth/auth_requests', {
      body,
      headers,
    });
    if (answer.status === 200 && /^[\w-]+\.[\w-]+\.[\w-]+$/.test(answer.text.trim())) {
      return { token: answer.text.trim() };
    }
    const error = apiErrorOf(answer);
    return {
      status: answer.status,
      reason: error.reason ?? error.code ?? 'unknown',
      message: error.message ?? answer.text.slice(0, 200),
    };
  }

  private async requestUntilAccepted(signal?: AbortSignal): Promise<string> {
    const backoff = new Backoff(this.options.backoff);
    const log = this.options.log;
    let loggedPending = false;
    for (;;) {
      signal?.throwIfAborted();
      let outcome: Awaited<ReturnType<KeyPairAuthenticator['requestOnce']>>;
      try {
        outcome = await this.requestOnce();
      } catch (error) {
        outcome = { status: 0, reason: 'network', message: (error as Error).message };
      }
      if ('token' in outcome) {
        if (loggedPending) log.info('the device was accepted: authenticated', { identity: this.label });
        return outcome.token;
      }
      if (outcome.reason === 'decommissioned') {
        throw new EnrollmentError(
          'the device was decommissioned: not authenticating again',
          'decommissioned',
        );
      }
      if (outcome.status === 400)
        throw new EnrollmentError(`the auth request was refused: ${outcome.message}`);
      if (outcome.reason === 'pending') {
        // Said loudly once, then quietly: the device waits, possibly for days, on a person.
        (loggedPending ? log.debug : log.warn)(
          'waiting for an admin to accept this device: its auth set is pending (the admin UI: Pending devices; or fleetgate devices pending)',
          { identity: this.label },
        );
        loggedPending = true;
      } else {
        log.warn('authentication failed; retrying', {
          status: outcome.status,
          reason: outcome.reason,
          message: outcome.message,
        });
        if (outcome.status === 429 || outcome.reason === 'rejected') backoff.toCap();
      }
      if (!(await sleep(backoff.next(), signal))) signal?.throwIfAborted();
    }
  }
}

/** The `exp` claim of a JWT, in epoch milliseconds. The agent reads it only to renew in time. */
export function expiryOf(jwt: string): number | undefined {
  try {
    const payload = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      exp?: unknown;
    };
    return typeof payload.exp === 'number' ? payload.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** The authenticator for stored credentials. */
export function authenticatorFor(
  credentials: Credentials,
  options: Omit<KeyPairAuthenticatorOptions, 'credentials'>,
): DeviceAuthenticator {
  return credentials.type === 'device-key'
    ? new DeviceKeyAuthenticator(credentials)
    : new KeyPairAuthenticator({ ...options, credentials });
}
