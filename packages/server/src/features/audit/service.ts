import { type Actor, authorize, can, readScope, requireUser } from '../../infra/access/index.ts';
import { json } from '../../infra/db/index.ts';
import { AppError } from '../../infra/errors/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import type { Page, PageRequest, ServiceDeps } from '../../infra/service/index.ts';

export interface AuditEventView {
  id: number;
  at: string;
  orgId: number | null;
  actor: { type: string; id: number | null; label: string };
  action: string;
  resourceType: string;
  resourceId: string | null;
  sourceIp: string | null;
  outcome: string;
  details: Record<string, unknown> | null;
}

/** `server`: only the server-wide events, those of no organization (server administrators only). */
export const auditScopes = ['server'] as const;
export type AuditScope = (typeof auditScopes)[number];

export interface AuditQuery extends PageRequest {
  orgId?: number | undefined;
  scope?: AuditScope | undefined;
  /** Actor e-mail or user id. */
  actor?: string | undefined;
  action?: string | undefined;
  resourceType?: string | undefined;
  resourceId?: string | undefined;
  /** A session id (`GET /api/v1/sessions`): the events of that one session. */
  session?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
}

/**
 * Audit events the caller may read: those of organizations where they hold `audit.read` (owners and
 * admins), plus their own actions (sign-ins, keys), plus, for server administrators, the server-wide events
 * (those of no organization: everyone's sign-ins, failed ones included, users, keys, recovery). Newest first.
 * `orgId` narrows to one organization, `scope: 'server'` to the server-wide events.
 */
export async function listAuditEvents(
  deps: ServiceDeps,
  actor: Actor,
  q: AuditQuery,
): Promise<Page<AuditEventView>> {
  const p = requireUser(actor.principal);
  if (q.scope === 'server' && q.orgId !== undefined)
    throw new AppError(
      'bad_request',
      'scope=server lists the events of no organization, so it takes no orgId: send one or the other',
    );
  if (q.scope === 'server') authorize(p, 'audit.read_server');
  const serverWide = can(p, 'audit.read_server');
  const orgIds = readScope(p, 'audit.read').map((s) => s.orgId);
  if (q.orgId !== undefined && !orgIds.includes(q.orgId)) {
    // Visible but not allowed → 403; not a member → 404, as everywhere.
    if (p.memberships.some((m) => m.orgId === q.orgId))
      throw new AppError('forbidden', 'reading the audit log needs the admin or owner role');
    throw new AppError('not_found', 'organization not found');
  }
  let query = deps.db
    .selectFrom('audit_events')
    .where((eb) =>
      q.scope === 'server'
        ? eb('org_id', 'is', null)
        : q.orgId !== undefined
          ? eb('org_id', '=', q.orgId)
          : eb.or([
              ...(orgIds.length ? [eb('org_id', 'in', orgIds)] : []),
              ...(serverWide ? [eb('org_id', 'is', null)] : []),
              eb.and([eb('actor_type', '=', 'user'), eb('actor_id', '=', p.userId)]),
            ]),
    );
  if (q.actor) {
    const actorFilter = q.actor;
    // Digits that fit the 32-bit actor_id column are a user id; anything else is matched as the label.
    query =
      /^\d{1,10}$/.test(actorFilter) && Number(actorFilter) <= 2 ** 31 - 1
        ? query.where('actor_type', '=', 'user').where('actor_id', '=', Number(actorFilter))
        : query.where('actor_label', '=', actorFilter.toLowerCase());
  }
  if (q.action) query = query.where('action', '=', q.action);
  if (q.resourceType) query = query.where('resource_type', '=', q.resourceType);
  if (q.resourceId) query = query.where('resource_id', '=', q.resourceId);
  if (q.session) {
    // A session's events are of two kinds: those about the session itself (resource `session`: its recording,
    // its termination) and the device's stream opening and closing, which name the session in their details
    // (`"session":"<id>"`, as json.encode writes it; an id is hex, so the LIKE pattern needs no escaping and
    // cannot match inside another value, where quotes are escaped).
    const session = q.session;
    query = query.where((eb) =>
      eb.or([
        eb.and([eb('resource_type', '=', 'session'), eb('resource_id', '=', session)]),
        eb.and([
          eb('action', 'in', ['device.stream.open', 'device.stream.close']),
          eb('details', 'like', `%"session":"${session}"%`),
        ]),
      ]),
    );
  }
  if (q.since) query = query.where('at', '>=', q.since.getTime());
  if (q.until) query = query.where('at', '<', q.until.getTime());
  const { total } = await query
    .select((eb) => eb.fn.countAll<number>().as('total'))
    .executeTakeFirstOrThrow();
  const rows = await query
    .selectAll()
    .orderBy('id', 'desc')
    .limit(q.limit)
    .offset((q.page - 1) * q.limit)
    .execute();
  return {
    items: rows.map((r) => ({
      id: r.id,
      at: iso(r.at),
      orgId: r.org_id,
      actor: { type: r.actor_type, id: r.actor_id, label: r.actor_label },
      action: r.action,
      resourceType: r.resource_type,
      resourceId: r.resource_id,
      sourceIp: r.source_ip,
      outcome: r.outcome,
      details: json.decode<Record<string, unknown>>(r.details),
    })),
    total: Number(total),
    page: q.page,
    limit: q.limit,
  };
}
