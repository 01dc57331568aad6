import { type SqlBool, sql } from 'kysely';
import { type Actor, readScope, scopeCondition } from '../../infra/access/index.ts';
import { type Db, lowerAscii } from '../../infra/db/index.ts';
import { AppError } from '../../infra/errors/index.ts';
import { resourceRef } from '../../infra/http/schemas.ts';

/**
 * The one way a person's words become a fleet: the API's `:fleetId` paths and `fleetgate … --fleet`. A fleet is
 * named by its id or by its name; names are unique within an organization, so a name two of the person's
 * organizations both use is ambiguous (409 with the candidates, pick one by id). Only fleets the person may read
 * are searched by name: another organization's fleet is "not found", as one that does not exist.
 */

/** A fleet named in a URL: its id, or its name (resolved by `fleetIdOf`). */
export type FleetRef = number | string;

/** Rows read for an ambiguous name: enough to list as candidates. */
const CANDIDATES = 16;

/** `:fleetId` in URLs: an id, or a name of one of the person's fleets. */
export const fleetRefParam = resourceRef(128).describe(
  "the fleet's id or its name; a name fleets of several of your organizations share answers 409 with details.candidates",
);

/** One of several fleets an ambiguous name matched, as the 409's `details.candidates` lists it. */
export interface FleetCandidate {
  id: number;
  name: string;
  orgId: number;
}

/**
 * The id `ref` names. An id is returned as it is (the service authorizes it, answering 404 for a fleet the
 * actor may not see); a name is looked up among the fleets the actor may read, exactly, then ignoring the case
 * of A–Z (compared here, so both databases agree).
 */
export async function fleetIdOf(db: Db, actor: Actor, ref: FleetRef): Promise<number> {
  if (typeof ref === 'number') return ref;
  const scoped = () =>
    db
      .selectFrom('fleets')
      .select(['id', 'name', 'org_id'])
      .where(scopeCondition(readScope(actor.principal, 'fleet.read'), 'fleets.org_id', 'fleets.id'))
      .orderBy('id')
      .limit(CANDIDATES);
  let rows = await scoped().where('name', '=', ref).execute();
  if (!rows.length) {
    const folded = lowerAscii(ref);
    rows = (await scoped().where(sql<SqlBool>`lower(name) = lower(${ref})`).execute()).filter(
      (row) => lowerAscii(row.name) === folded,
    );
  }
  if (rows.length === 1) return rows[0]!.id;
  if (!rows.length) throw new AppError('not_found', `no fleet "${ref}" among your fleets`);
  const candidates: FleetCandidate[] = rows.map((row) => ({ id: row.id, name: row.name, orgId: row.org_id }));
  const listed = candidates.map((c) => `id ${c.id} in organization ${c.orgId}`).join(', ');
  throw new AppError('conflict', `"${ref}" names several of your fleets (${listed}): use the id`, {
    details: { candidates },
  });
}
