import type { Actor } from '../../infra/access/index.ts';
import { authorize } from '../../infra/access/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { userOfLogin } from '../ssh-gateway/index.ts';

export interface AuthorizedKey {
  id: number;
  algorithm: string;
  publicKey: string;
  fingerprint: string;
}

/**
 * The registered SSH keys of a login (`alice@example.com`, or a unique local part `alice`), or the key with a
 * fingerprint (sshd's `%f`, for one shared local account), or both filters at once. Unknown → an empty list, as
 * for a login without keys; neither filter → an empty list too (nothing was asked for).
 */
export async function listAuthorizedKeys(
  deps: ServiceDeps,
  actor: Actor,
  filter: { login?: string | undefined; fingerprint?: string | undefined },
): Promise<AuthorizedKey[]> {
  authorize(actor.principal, 'ssh_key.lookup');
  if (filter.login === undefined && filter.fingerprint === undefined) return [];
  let query = deps.db
    .selectFrom('ssh_keys')
    .select(['id', 'algorithm', 'public_key', 'fingerprint'])
    .orderBy('id');
  if (filter.login !== undefined) {
    const userId = await userOfLogin(deps.db, filter.login);
    if (userId === undefined) return [];
    query = query.where('user_id', '=', userId);
  }
  if (filter.fingerprint !== undefined) query = query.where('fingerprint', '=', filter.fingerprint);
  const rows = await query.limit(500).execute();
  return rows.map((r) => ({
    id: r.id,
    algorithm: r.algorithm,
    publicKey: r.public_key,
    fingerprint: r.fingerprint,
  }));
}
