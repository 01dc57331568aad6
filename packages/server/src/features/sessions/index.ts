import type { TypedApp } from '../../infra/http/index.ts';
import { onWriteCommitted, type ServiceDeps } from '../../infra/service/index.ts';
import { currentUserPrincipal } from '../auth/service.ts';
import { registerSessionRoutes } from './routes.ts';
import { closeLiveSessions, recheckLiveSessions } from './service.ts';

export {
  type LiveSessionHandle,
  recordSessionEnd,
  recordSessionStart,
  type SessionView,
  trackLiveSession,
} from './service.ts';

/** Writes that may take access away from people: their sign-ins, keys, memberships, organizations, accounts. */
const ACCESS_CHANGES = new Set([
  'session',
  'api_key',
  'ssh_key',
  'membership',
  'organization',
  'fleet',
  'user',
]);

/**
 * The sessions API (`GET /api/v1/sessions`, `…/:sessionId`, `POST …/:sessionId/terminate`); live sessions checked
 * again after every change to people's access, and ended when their person lost it; and, when the app closes,
 * the end of every session it still relays, recorded before the database closes.
 */
export function registerSessions(app: TypedApp, deps: ServiceDeps): void {
  registerSessionRoutes(app, deps);
  let checking: Promise<void> | undefined;
  let again = false;
  const recheck = (): void => {
    if (checking) {
      again = true;
      return;
    }
    checking = recheckLiveSessions(deps.db, (principal) => currentUserPrincipal(deps.db, principal))
      .then(
        (ended) => {
          if (ended) deps.log.info({ ended }, 'ended sessions whose person lost access');
        },
        (err: unknown) => deps.log.error({ err }, 'could not check live sessions against people’s access'),
      )
      .finally(() => {
        checking = undefined;
        if (again) {
          again = false;
          recheck();
        }
      });
  };
  const stopWatching = onWriteCommitted(({ resourceType }) => {
    if (ACCESS_CHANGES.has(resourceType)) recheck();
  });
  app.addHook('onClose', async () => {
    stopWatching();
    await checking;
    await closeLiveSessions(deps.db, 'the server stopped');
  });
}
