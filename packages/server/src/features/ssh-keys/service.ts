import { type Actor, can, type Role, requireUser } from '../../infra/access/index.ts';
import { json } from '../../infra/db/index.ts';
import { AppError, notFound } from '../../infra/errors/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import { type ServiceDeps, write } from '../../infra/service/index.ts';
import { parseSshPublicKey, SshKeyError } from './parse.ts';

export interface SshKeyView {
  id: number;
  name: string;
  algorithm: string;
  fingerprint: string;
  publicKey: string;
  createdAt: string;
  lastUsedAt: string | null;
}

const columns = [
  'id',
  'name',
  'algorithm',
  'fingerprint',
  'public_key',
  'created_at',
  'last_used_at',
] as const;

function sshKeyView(r: {
  id: number;
  name: string;
  algorithm: string;
  fingerprint: string;
  public_key: string;
  created_at: number;
  last_used_at: number | null;
}): SshKeyView {
  return {
    id: r.id,
    name: r.name,
    algorithm: r.algorithm,
    fingerprint: r.fingerprint,
    publicKey: r.public_key,
    createdAt: iso(r.created_at),
    lastUsedAt: iso(r.last_used_at),
  };
}

export async function listSshKeys(deps: ServiceDeps, actor: Actor): Promise<SshKeyView[]> {
  const p = requireUser(actor.principal);
  const rows = await deps.db
    .selectFrom('ssh_keys')
    .select(columns)
    .where('user_id', '=', p.userId)
    .orderBy('id')
    .execute();
  return rows.map(sshKeyView);
}

/** Registers an SSH public key for the caller; the SSH gateway will accept it for them. */
export async function addSshKey(
  deps: ServiceDeps,
  actor: Actor,
  input: { publicKey: string; name?: string | undefined },
): Promise<SshKeyView> {
  return write(deps, actor, { action: 'ssh_key.add', resourceType: 'ssh_key' }, async (trx) => {
    const p = requireUser(actor.principal);
    let key: ReturnType<typeof parseSshPublicKey>;
    try {
      key = parseSshPublicKey(input.publicKey);
    } catch (err) {
      if (err instanceof SshKeyError)
        throw new AppError('bad_request', `invalid SSH public key: ${err.message}`);
      throw err;
    }
    const taken = await trx
      .selectFrom('ssh_keys')
      .select('user_id')
      .where('fingerprint', '=', key.fingerprint)
      .executeTakeFirst();
    if (taken) throw new AppError('conflict', `the key ${key.fingerprint} is already registered`);
    const row = await trx
      .insertInto('ssh_keys')
      .values({
        user_id: p.userId,
        name: input.name ?? (key.comment || key.algorithm),
        algorithm: key.algorithm,
        public_key: key.publicKey,
        fingerprint: key.fingerprint,
        created_at: Date.now(),
        last_used_at: null,
      })
      .returning(columns)
      .executeTakeFirstOrThrow();
    return {
      value: sshKeyView(row),
      orgId: null,
      resourceId: row.id,
      details: { fingerprint: key.fingerprint },
    };
  });
}

export async function removeSshKey(deps: ServiceDeps, actor: Actor, keyId: number): Promise<void> {
  await write(deps, actor, { action: 'ssh_key.remove', resourceType: 'ssh_key' }, async (trx) => {
    const p = requireUser(actor.principal);
    const row = await trx
      .deleteFrom('ssh_keys')
      .where('id', '=', keyId)
      .where('user_id', '=', p.userId)
      .returning(['id', 'fingerprint'])
      .executeTakeFirst();
    if (!row) throw notFound('SSH key');
    return { value: undefined, orgId: null, resourceId: keyId, details: { fingerprint: row.fingerprint } };
  });
}

/**
 * The registered SSH public keys of everyone who may open SSH to a device (`device.ssh` on its organization and
 * fleet, by the one rule in infra/access: operators and above, memberships narrowed to other fleets left out),
 * oldest first, as `<algorithm> <base64>` lines. balenaOS's host sshd reads them from the `authorized_keys`
 * os-config writes (`GET /os/v1/config`), so whoever reaches the device's port 22222 signs in with their own key.
 * Only the device itself asks (no person is the actor): the answer holds public keys only.
 */
export async function sshKeysAllowedOnDevice(
  deps: Pick<ServiceDeps, 'db'>,
  device: { orgId: number; fleetId: number },
): Promise<string[]> {
  const rows = await deps.db
    .selectFrom('memberships')
    .innerJoin('ssh_keys', 'ssh_keys.user_id', 'memberships.user_id')
    .select(['memberships.user_id', 'memberships.role', 'memberships.fleet_ids', 'ssh_keys.public_key'])
    .where('memberships.org_id', '=', device.orgId)
    .orderBy('ssh_keys.id')
    .execute();
  return rows
    .filter((r) =>
      can(
        {
          type: 'user',
          userId: r.user_id,
          email: '',
          serverAdmin: false,
          memberships: [
            { orgId: device.orgId, role: r.role as Role, fleetIds: json.decode<number[]>(r.fleet_ids) },
          ],
          credential: { type: 'ssh_key', id: 0 },
        },
        'device.ssh',
        { orgId: device.orgId, fleetId: device.fleetId },
      ),
    )
    .map((r) => r.public_key);
}

// --- Signing in with a key (the SSH gateway, the OpenSSH integration mode) ------------------------------

/** A registered key as the sign-in paths need it: the key itself is the credential, so no actor is checked. */
export interface SshKeyCredential {
  id: number;
  user_id: number;
  public_key: string;
  last_used_at: number | null;
}

/** The registered key with this fingerprint (`SHA256:…`), if any. */
export function sshKeyByFingerprint(
  deps: ServiceDeps,
  fingerprint: string,
): Promise<SshKeyCredential | undefined> {
  return deps.db
    .selectFrom('ssh_keys')
    .select(['id', 'user_id', 'public_key', 'last_used_at'])
    .where('fingerprint', '=', fingerprint)
    .executeTakeFirst();
}

/** The registered key with this id, if it still exists. */
export function sshKeyById(deps: ServiceDeps, id: number): Promise<SshKeyCredential | undefined> {
  return deps.db
    .selectFrom('ssh_keys')
    .select(['id', 'user_id', 'public_key', 'last_used_at'])
    .where('id', '=', id)
    .executeTakeFirst();
}

/** `last_used_at` is kept to the minute: a key used all day costs one write a minute, not one per sign-in. */
const LAST_USED_PRECISION_MS = 60 * 1000;

/** Records that a key signed someone in. */
export async function markSshKeyUsed(deps: ServiceDeps, key: SshKeyCredential): Promise<void> {
  const now = Date.now();
  if (key.last_used_at !== null && now - key.last_used_at <= LAST_USED_PRECISION_MS) return;
  await deps.db.updateTable('ssh_keys').set({ last_used_at: now }).where('id', '=', key.id).execute();
}
