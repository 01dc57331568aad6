import type { TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { registerSessionRoutes } from './routes.ts';
import { closeLiveSessions } from './service.ts';

export {
  type LiveSessionHandle,
  recordSessionEnd,
  recordSessionStart,
  type SessionView,
  trackLiveSession,
} from './service.ts';

/**
 * The sessions API (`GET /api/v1/sessions`, `…/:sessionId`, `POST …/:sessionId/terminate`), and, when the app
 * closes, the end of every session it still relays, recorded before the database closes.
 */
export function registerSessions(app: TypedApp, deps: ServiceDeps): void {
  registerSessionRoutes(app, deps);
  app.addHook('onClose', async () => {
    await closeLiveSessions(deps.db, 'the server stopped');
  });
}
