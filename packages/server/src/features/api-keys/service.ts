import { type Actor, authorize, requireUser, type ServiceKind } from '../../infra/access/index.ts';
import { randomToken, sha256Hex } from '../../infra/crypto/index.ts';
import { notFound } from '../../infra/errors/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import { type ServiceDeps, write } from '../../infra/service/index.ts';
import { API_KEY_PREFIX } from '../auth/index.ts';

export interface ApiKeyView {
  id: number;
  name: string;
  prefix: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
  /** Null for a person's own key; the service a service credential is for (`openssh`). */
  service: ServiceKind | null;
}

type ApiKeyRow = {
  id: number;
  name: string;
  token_prefix: string;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
  service: string | null;
};

const columns = [
  'id',
  'name',
  'token_prefix',
  'created_at',
  'expires_at',
  'last_used_at',
  'revoked_at',
  'service',
] as const;

function apiKeyView(r: ApiKeyRow): ApiKeyView {
  return {
    id: r.id,
    name: r.name,
    prefix: r.token_prefix,
    createdAt: iso(r.created_at),
    expiresAt: iso(r.expires_at),
    lastUsedAt: iso(r.last_used_at),
    revokedAt: iso(r.revoked_at),
    service: r.service as ServiceKind | null,
  };
}

/** The caller's own API keys, newest first, revoked ones included (they show when they were revoked). */
export async function listApiKeys(deps: ServiceDeps, actor: Actor): Promise<ApiKeyView[]> {
  const p = requireUser(actor.principal);
  const rows = await deps.db
    .selectFrom('api_keys')
    .select(columns)
    .where('user_id', '=', p.userId)
    .orderBy('id', 'desc')
    .execute();
  return rows.map(apiKeyView);
}

/**
 * Creates an API key for the caller. The key itself is in the answer once and stored only as a hash. With
 * `service`, a service credential (server administrators only): it acts as no one and may do only what that
 * service needs (see `serviceActions` in src/infra/access), listed and revoked among the creator's keys.
 */
export async function createApiKey(
  deps: ServiceDeps,
  actor: Actor,
  input: { name: string; expiresInDays?: number | undefined; service?: ServiceKind | undefined },
): Promise<ApiKeyView & { key: string }> {
  return write(deps, actor, { action: 'api_key.create', resourceType: 'api_key' }, async (trx) => {
    const p = requireUser(actor.principal);
    if (input.service !== undefined) authorize(p, 'service_key.create');
    const key = randomToken(API_KEY_PREFIX);
    const now = Date.now();
    const row = await trx
      .insertInto('api_keys')
      .values({
        user_id: p.userId,
        name: input.name,
        token_hash: sha256Hex(key),
        token_prefix: key.slice(0, API_KEY_PREFIX.length + 6),
        created_at: now,
        expires_at: input.expiresInDays ? now + input.expiresInDays * 86_400_000 : null,
        last_used_at: null,
        revoked_at: null,
        service: input.service ?? null,
      })
      .returning(columns)
      .executeTakeFirstOrThrow();
    return {
      value: { ...apiKeyView(row), key },
      orgId: null,
      resourceId: row.id,
      details: { name: input.name, ...(input.service ? { service: input.service } : {}) },
    };
  });
}

/** Revokes one of the caller's API keys; it stops working at once. */
export async function revokeApiKey(deps: ServiceDeps, actor: Actor, keyId: number): Promise<void> {
  await write(deps, actor, { action: 'api_key.revoke', resourceType: 'api_key' }, async (trx) => {
    const p = requireUser(actor.principal);
    const row = await trx
      .updateTable('api_keys')
      .set({ revoked_at: Date.now() })
      .where('id', '=', keyId)
      .where('user_id', '=', p.userId)
      .where('revoked_at', 'is', null)
      .returning(['id', 'name'])
      .executeTakeFirst();
    if (!row) throw notFound('API key');
    return { value: undefined, orgId: null, resourceId: keyId, details: { name: row.name } };
  });
}
