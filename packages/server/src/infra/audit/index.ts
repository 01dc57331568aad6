import type { Actor, Principal } from '../access/index.ts';
import type { Db } from '../db/index.ts';

export type AuditOutcome = 'success' | 'denied' | 'failure';

export interface AuditEvent {
  orgId: number | null;
  action: string;
  resourceType: string;
  resourceId: string | number | null;
  outcome: AuditOutcome;
  /** Extra facts about the event; never a secret. */
  details?: Record<string, unknown> | undefined;
}

/** Appends one audit event (who, what, which resource, from where, outcome) using `db` (a transaction or not). */
export async function appendAuditEvent(
  db: Db,
  actor: Actor,
  event: AuditEvent,
  at = Date.now(),
): Promise<void> {
  const p = actor.principal;
  await db
    .insertInto('audit_events')
    .values({
      at,
      org_id: event.orgId,
      actor_type: p.type,
      actor_id: p.type === 'user' ? p.userId : p.type === 'device' ? p.deviceId : null,
      actor_label: actorLabelOf(p).slice(0, 254),
      action: event.action,
      resource_type: event.resourceType,
      resource_id: event.resourceId === null ? null : String(event.resourceId),
      source_ip: actor.sourceIp,
      outcome: event.outcome,
      details: event.details ? JSON.stringify(event.details) : null,
    })
    .execute();
}

function actorLabelOf(p: Principal): string {
  switch (p.type) {
    case 'user':
      return p.email;
    case 'device':
      return `device ${p.uuid}`;
    case 'service':
      return `service key ${p.keyId} "${p.name}" (${p.service})`;
    case 'system':
      return p.osUser === undefined ? 'fleetgate' : `fleetgate on the machine, OS user ${p.osUser}`;
    case 'anonymous':
      return 'anonymous';
  }
}
