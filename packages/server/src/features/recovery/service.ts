import type { Actor, UserPrincipal } from '../../infra/access/index.ts';
import { AppError } from '../../infra/errors/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import { type Page, type PageRequest, type ServiceDeps, write } from '../../infra/service/index.ts';
import { deviceKeyHashTaken, insertDeviceKey } from '../device-keys/service.ts';
import { assertDeviceType } from '../device-types/service.ts';
import { insertDevice } from '../devices/index.ts';
import { fleetForAction } from '../fleets/index.ts';

/**
 * Recovery after a database loss (seed 000): devices in the field keep presenting a uuid + key the server no
 * longer knows; device authentication remembers each pair (its hash only) as a recovery candidate. A server
 * administrator adopts candidates into a fleet, which recreates the devices with their own keys, so they work
 * again with no change on the device, or discards them.
 */

export interface RecoveryCandidateView {
  id: number;
  uuid: string;
  sourceIp: string | null;
  agentVersion: string | null;
  firstSeenAt: string;
  lastSeenAt: string;
  attempts: number;
}

/** Candidates are server-wide (nothing says which organization a lost device belonged to): server admins only. */
function requireServerAdmin(actor: Actor): UserPrincipal {
  const p = actor.principal;
  if (p.type !== 'user') throw new AppError('unauthorized', 'sign in first: POST /api/v1/auth/login');
  if (!p.serverAdmin) throw new AppError('forbidden', 'recovery candidates are for server administrators');
  return p;
}

export async function listRecoveryCandidates(
  deps: ServiceDeps,
  actor: Actor,
  page: PageRequest,
): Promise<Page<RecoveryCandidateView>> {
  requireServerAdmin(actor);
  const { total } = await deps.db
    .selectFrom('recovery_candidates')
    .select((eb) => eb.fn.countAll<number>().as('total'))
    .executeTakeFirstOrThrow();
  const rows = await deps.db
    .selectFrom('recovery_candidates')
    .select(['id', 'uuid', 'source_ip', 'agent_version', 'first_seen_at', 'last_seen_at', 'attempts'])
    .orderBy('last_seen_at', 'desc')
    .orderBy('id', 'desc')
    .limit(page.limit)
    .offset((page.page - 1) * page.limit)
    .execute();
  return {
    items: rows.map((r) => ({
      id: r.id,
      uuid: r.uuid,
      sourceIp: r.source_ip,
      agentVersion: r.agent_version,
      firstSeenAt: iso(r.first_seen_at),
      lastSeenAt: iso(r.last_seen_at),
      attempts: Number(r.attempts),
    })),
    total: Number(total),
    page: page.page,
    limit: page.limit,
  };
}

export type AdoptOutcome = 'adopted' | 'not-found' | 'conflict';

export interface AdoptResult {
  id: number;
  uuid: string | null;
  outcome: AdoptOutcome;
  deviceId?: number;
  reason?: string;
}

/**
 * Adopts candidates into a fleet the admin may add devices to: each becomes a device with the candidate's uuid
 * and key hash (origin `recovery`). A candidate whose uuid or key a device holds by now is left alone
 * (`conflict`); adopted candidates leave the queue.
 */
export async function adoptRecoveryCandidates(
  deps: ServiceDeps,
  actor: Actor,
  input: { ids: number[]; fleetId: number; deviceType?: string | undefined },
): Promise<{ items: AdoptResult[] }> {
  requireServerAdmin(actor);
  return write(deps, actor, { action: 'recovery.adopt', resourceType: 'device' }, async (trx) => {
    const fleet = await fleetForAction(trx, actor, input.fleetId, 'device.create');
    const deviceType = input.deviceType ?? fleet.default_device_type;
    if (!deviceType)
      throw new AppError('bad_request', 'deviceType is required (the fleet has no default device type)');
    await assertDeviceType(trx, fleet.org_id, deviceType);
    const ids = [...new Set(input.ids)];
    const candidates = await trx
      .selectFrom('recovery_candidates')
      .select(['id', 'uuid', 'key_hash', 'agent_version'])
      .where('id', 'in', ids)
      .execute();
    const byId = new Map(candidates.map((c) => [c.id, c]));
    const items: AdoptResult[] = [];
    const now = Date.now();
    for (const id of ids) {
      const candidate = byId.get(id);
      if (!candidate) {
        items.push({ id, uuid: null, outcome: 'not-found', reason: 'no such recovery candidate' });
        continue;
      }
      const taken = await trx
        .selectFrom('devices')
        .select('id')
        .where('uuid', '=', candidate.uuid)
        .executeTakeFirst();
      if (taken) {
        items.push({
          id,
          uuid: candidate.uuid,
          outcome: 'conflict',
          reason: 'a device with this uuid exists',
        });
        continue;
      }
      if (await deviceKeyHashTaken(trx, candidate.key_hash)) {
        items.push({
          id,
          uuid: candidate.uuid,
          outcome: 'conflict',
          reason: 'another device holds this key',
        });
        continue;
      }
      // Its uuid's candidates leave the queue with it (insertDevice): the device is known again.
      const device = await insertDevice(trx, {
        fleet,
        deviceType,
        uuid: candidate.uuid,
        agentVersion: candidate.agent_version,
        admission: 'admitted',
      });
      await insertDeviceKey(trx, device.id, candidate.key_hash, 'recovery', now);
      items.push({ id, uuid: candidate.uuid, outcome: 'adopted', deviceId: device.id });
    }
    const adopted = items.filter((i) => i.outcome === 'adopted').map((i) => i.uuid);
    return {
      value: { items },
      orgId: fleet.org_id,
      resourceId: null,
      details: { fleetId: fleet.id, deviceType, adopted, skipped: items.length - adopted.length },
    };
  });
}

/** Removes candidates from the queue (made-up or unwanted credentials). Answers how many were removed. */
export async function discardRecoveryCandidates(
  deps: ServiceDeps,
  actor: Actor,
  ids: number[],
): Promise<{ discarded: number }> {
  requireServerAdmin(actor);
  return write(
    deps,
    actor,
    { action: 'recovery.discard', resourceType: 'recovery_candidate' },
    async (trx) => {
      const rows = await trx
        .deleteFrom('recovery_candidates')
        .where('id', 'in', ids)
        .returning(['id', 'uuid'])
        .execute();
      return {
        value: { discarded: rows.length },
        orgId: null,
        resourceId: null,
        details: { uuids: rows.map((r) => r.uuid) },
      };
    },
  );
}
