import type { Actor } from '../../infra/access/index.ts';
import { appendAuditEvent } from '../../infra/audit/index.ts';
import { sha256Hex } from '../../infra/crypto/index.ts';
import type { Db } from '../../infra/db/index.ts';
import { AppError, badRequest, rateLimited } from '../../infra/errors/index.ts';
import { FailureLimiter } from '../../infra/rate-limit/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { assertRoomForDevice, isDeviceLimitReached } from '../devices/index.ts';
import { decodeBase64Strict, identityOf, parseJsonStrict, parsePublicKey, verifySignature } from './keys.ts';
import { type AuthSetRow, markAccepted } from './service.ts';

/**
 * A device's signed auth request (Mender's `POST /api/devices/v1/authentication/auth_requests`): the
 * signature is checked over the exact bytes received before anything is parsed further than needed to find
 * the key; then the auth set decides — accepted (or preauthorized, accepted now) → a device token; unknown →
 * a new pending set for an admin; anything else → 401.
 */

/** The largest auth request body accepted, in bytes. */
export const AUTH_REQUEST_BODY_LIMIT = 64 * 1024;
/** Pending auth sets kept at most per organization: a flood of made-up identities cannot fill the disk. */
export const PENDING_MAX_PER_ORG = 10_000;
/** New pending sets one source address may add per window. */
export const PENDING_NEW_PER_SOURCE = 100;
export const PENDING_WINDOW_MS = 10 * 60 * 1000;

declare module '../../infra/service/index.ts' {
  interface ServiceDeps {
    /** New pending auth sets counted per source address, one count per app (made in `buildApp`). */
    pendingAuthSetsPerSource: FailureLimiter;
  }
}

/** The per-source limit of new pending sets, for `buildApp` to make one per app. */
export function createPendingAuthSetLimiter(): FailureLimiter {
  return new FailureLimiter(PENDING_NEW_PER_SOURCE, PENDING_WINDOW_MS);
}

export interface AuthRequestInput {
  raw: Buffer;
  /** `X-MEN-Signature`. */
  signature: string | undefined;
  /** `Authorization` header: `Bearer <tenant token>` (may be empty). */
  authorization: string | undefined;
  sourceIp: string | null;
}

/** Stateless between calls (`decode` without `stream`), so one serves every request. */
const utf8 = new TextDecoder('utf-8', { fatal: true });

const unauthorized = (message: string, reason: string) =>
  new AppError('unauthorized', message, { details: { reason } });

/** Answers the device token for an accepted device, or throws `bad_request` / `unauthorized` / `rate_limited`. */
export async function handleAuthRequest(
  deps: ServiceDeps,
  input: AuthRequestInput,
): Promise<{ token: string; deviceId: number }> {
  if (input.raw.length === 0) throw badRequest('the auth request has no body');
  const signature = decodeBase64Strict(input.signature);
  if (!signature) throw badRequest('the X-MEN-Signature header is missing or not base64');

  let text: string;
  try {
    text = utf8.decode(input.raw);
  } catch {
    throw badRequest('the auth request is not UTF-8 text');
  }
  const body = parseJsonStrict(text, 'the auth request');
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw badRequest('the auth request must be a JSON object {"id_data","pubkey","tenant_token"}');
  const { id_data: idData, pubkey, tenant_token: bodyTenant } = body as Record<string, unknown>;
  if (typeof idData !== 'string') throw badRequest('id_data must be a JSON text (a string)');
  if (bodyTenant !== undefined && typeof bodyTenant !== 'string')
    throw badRequest('tenant_token must be a string');
  const key = parsePublicKey(pubkey);
  // The signature proves the sender holds the private key of `pubkey` and sent these exact bytes.
  if (!verifySignature(key, input.raw, signature))
    throw unauthorized('the signature does not match the request and its public key', 'bad_signature');
  const identity = identityOf(idData);

  const headerTenant = /^Bearer\s+(\S+)\s*$/i.exec(input.authorization ?? '')?.[1];
  const tenantToken = (bodyTenant as string | undefined) || headerTenant || '';
  const actor: Actor = { principal: { type: 'anonymous' }, sourceIp: input.sourceIp };
  const { db } = deps;
  const now = Date.now();

  let target: Target | undefined;
  if (tenantToken) {
    const pk = await db
      .selectFrom('provisioning_keys')
      .select(['id', 'org_id', 'fleet_id', 'expires_at', 'revoked_at', 'max_uses', 'uses'])
      .where('key_hash', '=', sha256Hex(tenantToken))
      .executeTakeFirst();
    if (
      !pk ||
      pk.revoked_at !== null ||
      (pk.expires_at !== null && pk.expires_at <= now) ||
      (pk.max_uses !== null && Number(pk.uses) >= pk.max_uses)
    )
      throw unauthorized(
        'the tenant token is not a valid provisioning key (unknown, revoked, expired or used up)',
        'bad_tenant_token',
      );
    target = { orgId: pk.org_id, fleetId: pk.fleet_id, provisioningKeyId: pk.id };
  }

  // The same identity + key anywhere: a device preauthorized in another organization needs no tenant token.
  // Each set comes with its device, and without a tenant token with the first organization (the target of a
  // new pending set), in the same query: one statement per request instead of two.
  const query: CandidatesQuery = {
    ...candidatesQuery(db, target !== undefined),
    parameters: target === undefined ? [identity.hash, key.hash] : [identity.hash, key.hash, target.orgId],
  };
  const { rows: candidates } = await db.executeQuery(query);
  if (!target) {
    // No candidate row, no first organization from it: ask for it alone (a new device's first request).
    const orgId = candidates[0]?.first_org_id ?? (await firstOrganizationId(deps));
    if (orgId === null || orgId === undefined)
      throw unauthorized('the server has no organization yet', 'no_organization');
    target = { orgId, fleetId: null, provisioningKeyId: null };
  }
  const orgId = target.orgId;
  const rank = { accepted: 0, preauthorized: 1, pending: 2, rejected: 3 } as const;
  candidates.sort((a, b) => rank[a.status] - rank[b.status] || (a.org_id === orgId ? -1 : 1));
  const set = candidates[0];

  if (!set) {
    await addPending(deps, actor, target, identity, key, input.sourceIp);
    throw unauthorized(
      'the device is not authorized yet: its request waits for an admin to accept it',
      'pending',
    );
  }

  deps.authSetActivity.record(set.id, now);
  const device =
    set.device_id === null || set.device_uuid === null
      ? undefined
      : {
          id: set.device_id,
          uuid: set.device_uuid,
          org_id: set.device_org_id!,
          fleet_id: set.device_fleet_id!,
          decommissioned_at: set.device_decommissioned_at,
        };
  if (device && device.decommissioned_at !== null)
    throw unauthorized('the device was decommissioned', 'decommissioned');
  if (set.status === 'pending')
    throw unauthorized('the device is not authorized yet: an admin has to accept it', 'pending');
  if (set.status === 'rejected') throw unauthorized('the device was rejected', 'rejected');
  if (!device) throw unauthorized('the device is not authorized', 'no_device');

  if (set.status === 'preauthorized') {
    await acceptPreauthorized(deps, actor, set, device);
  }
  const { token } = await deps.deviceTokens.issue({ id: device.id, uuid: device.uuid, orgId: device.org_id });
  return { token, deviceId: device.id };
}

const IDENTITY_PLACEHOLDER = '<identity hash>';
const KEY_PLACEHOLDER = '<public key hash>';
const ORG_PLACEHOLDER = -1;

/**
 * The auth sets with an identity and key hash (in one organization when `inOrg`), each with its device and the
 * first organization's id, with placeholders for the parameters.
 */
function candidatesBuilder(db: Db, inOrg: boolean) {
  return db
    .selectFrom('auth_sets')
    .leftJoin('devices', 'devices.id', 'auth_sets.device_id')
    .selectAll('auth_sets')
    .select((eb) => [
      'devices.uuid as device_uuid',
      'devices.org_id as device_org_id',
      'devices.fleet_id as device_fleet_id',
      'devices.decommissioned_at as device_decommissioned_at',
      eb
        .selectFrom('organizations')
        .select((inner) => inner.fn.min('organizations.id').as('id'))
        .as('first_org_id'),
    ])
    .where('auth_sets.identity_hash', '=', IDENTITY_PLACEHOLDER)
    .where('auth_sets.public_key_hash', '=', KEY_PLACEHOLDER)
    .$if(inOrg, (q) => q.where('auth_sets.org_id', '=', ORG_PLACEHOLDER));
}

type CandidatesQuery = ReturnType<ReturnType<typeof candidatesBuilder>['compile']>;
const compiledCandidates = new WeakMap<Db, { any?: CandidatesQuery; inOrg?: CandidatesQuery }>();

/**
 * `candidatesBuilder` compiled once per database and variant: Kysely's building and compiling cost more than
 * SQLite's run of the (cached) statement. The caller passes the parameters by position — identity hash, key
 * hash, then the organization — which is checked here once, so a change that reorders them fails loudly.
 */
function candidatesQuery(db: Db, inOrg: boolean): CandidatesQuery {
  const variant = inOrg ? 'inOrg' : 'any';
  let compiled = compiledCandidates.get(db);
  if (!compiled) {
    compiled = {};
    compiledCandidates.set(db, compiled);
  }
  const known = compiled[variant];
  if (known) return known;
  const query = candidatesBuilder(db, inOrg).compile();
  const expected: unknown[] = [IDENTITY_PLACEHOLDER, KEY_PLACEHOLDER, ...(inOrg ? [ORG_PLACEHOLDER] : [])];
  if (query.parameters.length !== expected.length || query.parameters.some((p, i) => p !== expected[i]))
    throw new Error(`the auth set query's parameters are not in the expected order: ${query.sql}`);
  compiled[variant] = query;
  return query;
}

/** Where a new pending set goes, and whose organization a set is preferred from. */
interface Target {
  orgId: number;
  fleetId: number | null;
  provisioningKeyId: number | null;
}

/** The first organization's id: where a device without a tenant token asks to join. */
async function firstOrganizationId(deps: ServiceDeps): Promise<number | undefined> {
  const org = await deps.db
    .selectFrom('organizations')
    .select('id')
    .orderBy('id')
    .limit(1)
    .executeTakeFirst();
  return org?.id;
}

/** A preauthorized set on its first valid request: accepted, unless the organization is at its limit. */
async function acceptPreauthorized(
  deps: ServiceDeps,
  actor: Actor,
  set: AuthSetRow,
  device: { id: number; uuid: string; fleet_id: number },
): Promise<void> {
  const accepted = await deps.db.transaction().execute(async (trx) => {
    const current = await trx
      .selectFrom('auth_sets')
      .select('status')
      .where('id', '=', set.id)
      .executeTakeFirst();
    if (current?.status === 'accepted') return true;
    if (current?.status !== 'preauthorized') return false;
    try {
      await assertRoomForDevice(trx, set.org_id, device.id);
    } catch (err) {
      if (isDeviceLimitReached(err)) return false;
      throw err;
    }
    const rejectedOthers = await markAccepted(trx, set, device);
    await appendAuditEvent(trx, actor, {
      orgId: set.org_id,
      action: 'auth_set.accept',
      resourceType: 'auth_set',
      resourceId: set.id,
      outcome: 'success',
      details: { from: 'preauthorized', deviceUuid: device.uuid, rejectedOthers },
    });
    return true;
  });
  if (accepted)
    deps.events.emit('write.committed', {
      action: 'auth_set.accept',
      resourceType: 'auth_set',
      orgId: set.org_id,
    });
  if (!accepted)
    throw unauthorized(
      "the organization's device limit is reached: an admin has to raise it or remove a device",
      'device_limit',
    );
}

/** Remembers an unknown identity + key as a pending set (bounded per organization, rate-limited per source). */
async function addPending(
  deps: ServiceDeps,
  actor: Actor,
  target: Target,
  identity: { canonical: string; hash: string },
  key: { pem: string; hash: string; type: AuthSetRow['key_type'] },
  sourceIp: string | null,
): Promise<void> {
  const { db } = deps;
  const limiter = deps.pendingAuthSetsPerSource;
  const source = sourceIp ?? 'unknown';
  const wait = limiter.retryAfter(source);
  if (wait > 0)
    throw rateLimited(
      `too many new devices from this address: try again in ${Math.ceil(wait / 1000)} s`,
      wait,
    );
  const { n } = await db
    .selectFrom('auth_sets')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('org_id', '=', target.orgId)
    .where('status', '=', 'pending')
    .executeTakeFirstOrThrow();
  if (Number(n) >= PENDING_MAX_PER_ORG) {
    deps.log.warn(
      { orgId: target.orgId },
      'the pending auth set queue is full: not remembering another device',
    );
    throw unauthorized('the server cannot take more pending devices now', 'pending_queue_full');
  }
  // A new key for an identity a live device has: the set waits attached to that device.
  const owner = await db
    .selectFrom('auth_sets')
    .innerJoin('devices', 'devices.id', 'auth_sets.device_id')
    .select(['devices.id', 'devices.fleet_id'])
    .where('auth_sets.org_id', '=', target.orgId)
    .where('auth_sets.identity_hash', '=', identity.hash)
    .where('devices.decommissioned_at', 'is', null)
    .executeTakeFirst();
  const now = Date.now();
  const added = await db.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto('auth_sets')
      .values({
        org_id: target.orgId,
        device_id: owner?.id ?? null,
        fleet_id: owner?.fleet_id ?? target.fleetId,
        identity: identity.canonical,
        identity_hash: identity.hash,
        public_key: key.pem,
        public_key_hash: key.hash,
        key_type: key.type,
        status: 'pending',
        source_ip: sourceIp,
        created_at: now,
        updated_at: now,
        last_request_at: now,
        request_count: 1,
      })
      .onConflict((oc) => oc.columns(['org_id', 'identity_hash', 'public_key_hash']).doNothing())
      .returning('id')
      .executeTakeFirst();
    if (!inserted) return false;
    await appendAuditEvent(trx, actor, {
      orgId: target.orgId,
      action: 'auth_set.request',
      resourceType: 'auth_set',
      resourceId: inserted.id,
      outcome: 'success',
      details: {
        keyType: key.type,
        provisioningKeyId: target.provisioningKeyId,
        deviceId: owner?.id ?? null,
      },
    });
    return true;
  });
  // Committed outside `write()` (the device is its own actor): told as every write is, so the pending queue on
  // an admin's screen takes the new device in at once.
  if (added)
    deps.events.emit('write.committed', {
      action: 'auth_set.request',
      resourceType: 'auth_set',
      orgId: target.orgId,
    });
  limiter.fail(source);
}
