import type { ServiceDeps } from '../../infra/service/index.ts';
import { createOrgRecord } from '../orgs/service.ts';
import { createUserRecord } from '../users/service.ts';

export interface FirstRun {
  email: string;
  /** Set when fleetgate chose the password: print it once. */
  generatedPassword?: string | undefined;
  orgName: string;
}

/**
 * On the very first start (no users yet): creates the `Default` organization and its owner, a server
 * administrator, from FLEETGATE_ADMIN_EMAIL / FLEETGATE_ADMIN_PASSWORD (a random password when unset).
 * Answers undefined on every later start.
 */
export async function ensureFirstOwner(
  deps: Pick<ServiceDeps, 'db' | 'config' | 'log'>,
): Promise<FirstRun | undefined> {
  return deps.db.transaction().execute(async (trx) => {
    const anyUser = await trx.selectFrom('users').select('id').limit(1).executeTakeFirst();
    if (anyUser) return undefined;
    const { user, generatedPassword } = await createUserRecord(trx, {
      email: deps.config.adminEmail,
      name: 'Administrator',
      password: deps.config.adminPassword,
      serverAdmin: true,
    });
    const org = await createOrgRecord(trx, { name: 'Default', slug: 'default' }, user.id);
    await trx
      .insertInto('audit_events')
      .values({
        at: Date.now(),
        org_id: org.id,
        actor_type: 'system',
        actor_id: null,
        actor_label: 'fleetgate',
        action: 'setup.first_owner',
        resource_type: 'user',
        resource_id: String(user.id),
        source_ip: null,
        outcome: 'success',
        details: JSON.stringify({ email: user.email }),
      })
      .execute();
    return { email: user.email, generatedPassword, orgName: org.name };
  });
}
