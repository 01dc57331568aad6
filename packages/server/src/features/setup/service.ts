import { systemActor } from '../../infra/access/index.ts';
import { AppError } from '../../infra/errors/index.ts';
import { type ServiceDeps, write } from '../../infra/service/index.ts';
import { createOrgRecord } from '../orgs/index.ts';
import { createUserRecord } from '../users/service.ts';

export interface FirstRun {
  email: string;
  /** Set when fleetgate chose the password: print it once. */
  generatedPassword?: string | undefined;
  orgName: string;
}

/** Thrown inside the write when another start set up first: rolls it back, answered as "nothing to do". */
class AlreadySetUp extends AppError {
  constructor() {
    super('conflict', 'fleetgate has users already');
  }
}

/**
 * On the very first start (no users yet): creates the `Default` organization and its owner, a server
 * administrator, from FLEETGATE_ADMIN_EMAIL / FLEETGATE_ADMIN_PASSWORD (a random password when unset), as one
 * write of the `system` principal (audited `setup.first_owner`). Answers undefined on every later start.
 */
export async function ensureFirstOwner(deps: ServiceDeps): Promise<FirstRun | undefined> {
  const anyUser = () => deps.db.selectFrom('users').select('id').limit(1).executeTakeFirst();
  if (await anyUser()) return undefined;
  try {
    return await write(
      deps,
      systemActor,
      { action: 'setup.first_owner', resourceType: 'user' },
      async (trx) => {
        // Asked again inside the transaction: two instances starting at once on one database set up once.
        if (await trx.selectFrom('users').select('id').limit(1).executeTakeFirst()) throw new AlreadySetUp();
        const { user, generatedPassword } = await createUserRecord(trx, {
          email: deps.config.adminEmail,
          name: 'Administrator',
          password: deps.config.adminPassword,
          serverAdmin: true,
        });
        const org = await createOrgRecord(trx, { name: 'Default', slug: 'default' }, user.id);
        return {
          value: { email: user.email, generatedPassword, orgName: org.name },
          orgId: org.id,
          resourceId: user.id,
          details: { email: user.email },
        };
      },
    );
  } catch (err) {
    if (err instanceof AlreadySetUp) return undefined;
    throw err;
  }
}
