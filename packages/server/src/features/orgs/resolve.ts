import { type SqlBool, sql } from 'kysely';
import type { Actor } from '../../infra/access/index.ts';
import { type Db, lowerAscii } from '../../infra/db/index.ts';
import { AppError } from '../../infra/errors/index.ts';
import { resourceRef } from '../../infra/http/schemas.ts';

/**
 * The one way a person's words become an organization: the API's `:orgId` paths and `fleetgate … --org`. An
 * organization is named by its id, its slug, or its display name, among the organizations the person is a member
 * of; a display name two of them share is ambiguous (409 with the candidates, pick one by slug).
 */

/** An organization named in a URL: its id, or its slug or name (resolved by `orgIdOf`). */
export type OrgRef = number | string;

/** `:orgId` in URLs: an id, or the slug or name of one of the person's organizations. */
export const orgRefParam = resourceRef(128).describe(
  "the organization's id, slug or name; a name several of your organizations share answers 409 with details.candidates",
);

/** One of several organizations an ambiguous name matched, as the 409's `details.candidates` lists it. */
export interface OrgCandidate {
  id: number;
  slug: string;
  name: string;
}

/**
 * The id `ref` names. An id is returned as it is (the service authorizes it); a slug or name is looked up among
 * the actor's memberships: the slug exactly, then the name exactly, then the name ignoring the case of A–Z.
 */
export async function orgIdOf(db: Db, actor: Actor, ref: OrgRef): Promise<number> {
  if (typeof ref === 'number') return ref;
  const { principal } = actor;
  const mine = principal.type === 'user' ? principal.memberships.map((m) => m.orgId) : [];
  const unknown = new AppError('not_found', `no organization "${ref}" among your organizations`);
  if (!mine.length) throw unknown;
  const scoped = () =>
    db.selectFrom('organizations').select(['id', 'slug', 'name']).where('id', 'in', mine).orderBy('id');
  const bySlug = await scoped().where('slug', '=', ref).executeTakeFirst();
  if (bySlug) return bySlug.id;
  let rows = await scoped().where('name', '=', ref).execute();
  if (!rows.length) {
    const folded = lowerAscii(ref);
    rows = (await scoped().where(sql<SqlBool>`lower(name) = lower(${ref})`).execute()).filter(
      (row) => lowerAscii(row.name) === folded,
    );
  }
  if (rows.length === 1) return rows[0]!.id;
  if (!rows.length) throw unknown;
  const candidates: OrgCandidate[] = rows.map((row) => ({ id: row.id, slug: row.slug, name: row.name }));
  const listed = candidates.map((c) => c.slug).join(', ');
  throw new AppError('conflict', `"${ref}" names several of your organizations (${listed}): use the slug`, {
    details: { candidates },
  });
}
