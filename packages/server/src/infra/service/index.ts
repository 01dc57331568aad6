import type { Actor } from '../access/index.ts';
import { appendAuditEvent } from '../audit/index.ts';
import type { Config } from '../config/index.ts';
import type { Db } from '../db/index.ts';
import type { DeviceTokens } from '../device-tokens/index.ts';
import { AppError } from '../errors/index.ts';
import type { EventBus } from '../events/index.ts';
import type { Logger } from '../logging/index.ts';
import type { SocketBudget } from '../net/index.ts';
import type { SecretKeyRing } from '../secrets/index.ts';
import type { WriteBehind } from '../write-behind/index.ts';

/**
 * What every service needs. Services are plain functions `(deps, actor, input)`. One is made per app, in
 * `buildApp`, with everything that lives as long as the app (never module state: tests start many apps in one
 * process). A feature that keeps per-app state of its own types (a rate limiter, a cache) adds its field to
 * this interface from its own module (`declare module`, as Fastify decorators do), so infra names no feature
 * and `buildApp` cannot leave one out.
 */
export interface ServiceDeps {
  db: Db;
  /**
   * This instance's id (random at each start): written beside what it holds (tunnels, sessions), so that several
   * instances on one database tell theirs apart (features/cluster).
   */
  instanceId: string;
  config: Config;
  log: Logger;
  deviceTokens: DeviceTokens;
  /** Seals and opens secret values at rest (secret variables): see infra/secrets. */
  secrets: SecretKeyRing;
  /** This app's event bus: see infra/events. */
  events: EventBus;
  /** Connections over every listener of this app, against one budget (infra/net). */
  sockets: SocketBudget;
  /** Signed auth requests counted per auth set id, written behind (features/auth-sets/activity.ts). */
  authSetActivity: WriteBehind<number, number>;
  /** Device keys' last use per key id, written behind (features/device-auth/last-used.ts). */
  deviceKeyUsage: WriteBehind<number, number>;
}

/** What `write` uses of the deps: a command run on the machine (no app, no listener) can give just these. */
export type WriteDeps = Pick<ServiceDeps, 'db' | 'events' | 'log'>;

/** What a write reports about itself, for the audit log. */
export interface WriteOutcome<T> {
  value: T;
  orgId: number | null;
  resourceId: string | number | null;
  details?: Record<string, unknown> | undefined;
}

/**
 * Runs one write: `apply` validates, authorizes and writes inside a transaction, and the audit event is
 * appended in that same transaction, so a write without its audit event cannot happen. A refused attempt
 * (`forbidden`) is audited as `denied` after the rollback. After the commit, the app's event bus hears
 * `write.committed`, before the write's caller goes on (so before its answer is sent).
 */
export async function write<T>(
  deps: WriteDeps,
  actor: Actor,
  what: { action: string; resourceType: string },
  apply: (trx: Db) => Promise<WriteOutcome<T>>,
): Promise<T> {
  try {
    let orgId: number | null = null;
    const value = await deps.db.transaction().execute(async (trx) => {
      const outcome = await apply(trx);
      orgId = outcome.orgId;
      await appendAuditEvent(trx, actor, {
        ...what,
        orgId: outcome.orgId,
        resourceId: outcome.resourceId,
        outcome: 'success',
        details: outcome.details,
      });
      return outcome.value;
    });
    deps.events.emit('write.committed', { ...what, orgId });
    return value;
  } catch (err) {
    if (err instanceof AppError && err.code === 'forbidden') {
      const orgId = (err.details as { orgId?: number } | undefined)?.orgId ?? null;
      await appendAuditEvent(deps.db, actor, { ...what, orgId, resourceId: null, outcome: 'denied' }).catch(
        (e) => deps.log.error({ err: e }, 'could not record a denied attempt in the audit log'),
      );
    }
    throw rethrowConstraint(err);
  }
}

/** Unique-constraint violations that slip past a service's own checks (races) become 409, not 500. */
export function rethrowConstraint(err: unknown): unknown {
  if (err instanceof AppError) return err;
  const e = err as { code?: string; message?: string };
  if (
    e?.code === '23505' ||
    e?.code === 'SQLITE_CONSTRAINT_UNIQUE' ||
    e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY'
  ) {
    return new AppError('conflict', 'that already exists', { cause: err });
  }
  if (e?.code === '23503' || e?.code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
    return new AppError('conflict', 'that is still in use by other records', { cause: err });
  }
  return err;
}

/** Page request and page answer shared by every list. */
export interface PageRequest {
  limit: number;
  page: number;
}

export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  limit: number;
}
