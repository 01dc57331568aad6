import type { TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { currentServicePrincipal, currentUserPrincipal } from '../auth/index.ts';
import { registerRecordingRoutes } from './recording-routes.ts';
import { registerSessionRoutes } from './routes.ts';
import {
  type AccessNow,
  closeLiveSessions,
  type DeviceReach,
  recheckLiveSessions,
  terminateIfRelayedHere,
} from './service.ts';

export {
  type RecordingStart,
  recordsSessions,
  SessionRecorder,
} from './recording.ts';
export {
  type DeviceReach,
  endSessionsOfInstances,
  type LiveSessionHandle,
  type LiveSessions,
  recordSessionEnd,
  recordSessionStart,
  type SessionView,
  trackLiveSession,
} from './service.ts';

/**
 * Writes that may take access away from people: their sign-ins, keys (service keys too), memberships,
 * organizations, accounts; fleets (and their port allow-lists).
 */
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
 * Device writes that may put a device out of people's reach: moved to another fleet (`device.update`), its own
 * port allow-list changed, deleted. Other device writes (inventory, tags, variables…) change no access and are
 * frequent, so they check nothing.
 */
const DEVICE_REACH_CHANGES = new Set(['device.update', 'device.ports.set', 'device.delete']);

/**
 * How often live sessions are checked even without a write, in milliseconds (1 minute): credentials also stop
 * holding when they expire (sign-ins, API keys, service keys), which no write announces.
 */
const EXPIRY_CHECK_MS = 60_000;

/**
 * The sessions API (`GET /api/v1/sessions`, `…/:sessionId`, `POST …/:sessionId/terminate`), shell sessions'
 * recordings (`…/:sessionId/recording`, and each organization's setting); live sessions checked
 * again after every change to people's access or to devices' reach (and every minute, for credentials that
 * expire), and ended when their person lost it, the device moved out of it or the port left its allow-list, or
 * the service key that opened them for the person no longer holds; and, when the app closes, the end of every
 * session it still relays, recorded before the database closes.
 *
 * @param deviceReach where a device is now and which ports its allow-list opens (remote-access answers it).
 */
export function registerSessions(
  app: TypedApp,
  deps: ServiceDeps,
  deviceReach: (deviceId: number) => Promise<DeviceReach | undefined>,
): void {
  registerSessionRoutes(app, deps);
  registerRecordingRoutes(app, deps);
  const now: AccessNow = {
    person: (principal) => currentUserPrincipal(deps.db, principal),
    service: (principal) => currentServicePrincipal(deps.db, principal),
    device: deviceReach,
  };
  let checking: Promise<void> | undefined;
  let again = false;
  const recheck = (): void => {
    if (checking) {
      again = true;
      return;
    }
    // It runs after every write that may change access: with no session live, it has nothing to read.
    if (deps.liveSessions.size === 0) return;
    checking = recheckLiveSessions(deps.liveSessions, now)
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
  const stopWatching = deps.events.on('write.committed', ({ action, resourceType }) => {
    // `cluster.resync`: events from other instances may have been missed (features/cluster).
    if (ACCESS_CHANGES.has(resourceType) || DEVICE_REACH_CHANGES.has(action) || resourceType === 'cluster')
      recheck();
  });
  // An administrator on another instance ended a session this one relays.
  const stopTerminating = deps.events.on('session.terminate', ({ sessionId, reason }) =>
    terminateIfRelayedHere(deps.liveSessions, sessionId, reason),
  );
  const expiryCheck = setInterval(recheck, EXPIRY_CHECK_MS).unref();
  app.addHook('onClose', async () => {
    stopWatching();
    stopTerminating();
    clearInterval(expiryCheck);
    await checking;
    await closeLiveSessions(deps.liveSessions, 'the server stopped');
  });
}
