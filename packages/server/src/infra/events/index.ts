/**
 * One typed event bus per app (built in `buildApp`, carried in `ServiceDeps`): what happened inside this app,
 * told to whoever in the same app listens. Nothing here is module state, so two apps in one process (tests,
 * several instances) never hear each other. Events carry ids, never the data itself: a listener that needs the
 * record reads it, scoped as every read is.
 */

/** Every event the app tells, by name. */
export interface AppEvents {
  /**
   * A write committed: every `write` (after its transaction, before its caller answers), and the few changes with
   * a transaction of their own that say so (sign-out, device key rotation). Caches of what a write may change
   * drop it here; live sessions are checked again against people's access.
   */
  'write.committed': { action: string; resourceType: string; orgId: number | null };
  /** Presence of these devices (connect, disconnect, last seen, state report) was written to the database. */
  'presence.written': { deviceIds: readonly number[] };
  /**
   * A device's credentials were revoked (after the commit): all its keys (`keyId` unset) or one, and every
   * device token issued so far; or only its tokens (`tokensOnly`: an accepted auth set was rejected, its keys
   * still work). Whoever holds a live connection made with them closes it.
   */
  'device.credentials.revoked': {
    deviceId: number;
    uuid?: string | undefined;
    keyId?: number | undefined;
    tokensOnly?: boolean | undefined;
  };
  /**
   * A device was decommissioned (after the commit; told again when it is decommissioned again, since a
   * connection may have slipped in): whoever holds a live connection for it closes it.
   */
  'device.decommissioned': { deviceId: number; uuid: string; orgId: number; fleetId: number };
  /**
   * Devices' effective variables changed (after the commit): a whole fleet's (a fleet variable written), or
   * one device's (its own variable written, or the device moved to another fleet).
   */
  'variables.changed': { fleetId: number } | { deviceId: number };
  /** A device's tunnel to this instance said hello: it now takes control messages (its variables first). */
  'tunnel.ready': { deviceId: number };
  /**
   * A device's tunnel connected to the instance `instanceId`, at `connectedAt`: an older tunnel of the same device
   * held by another instance (its agent gone without a word) is superseded.
   */
  'tunnel.connected': { deviceId: number; instanceId: string; connectedAt: number };
  /** An administrator ended a live session on some instance: the instance relaying it ends it. */
  'session.terminate': { sessionId: string; reason: string };
  /**
   * A person's sign-in failed or succeeded on the instance `instanceId` (infra/rate-limit `sharedGuessThrottle`):
   * the other instances count it too. Identity and source are digests, never the login or the address.
   */
  'guess.counted': {
    throttle: string;
    instanceId: string;
    outcome: 'failed' | 'succeeded';
    identity: string;
    source: string;
  };
}

/**
 * The events that concern every instance on one database (features/cluster carries them between instances
 * through PostgreSQL): those that say what changed in the database, or ask whoever holds something to act.
 */
export const sharedEvents = [
  'write.committed',
  'presence.written',
  'device.credentials.revoked',
  'device.decommissioned',
  'variables.changed',
  'tunnel.connected',
  'session.terminate',
  'guess.counted',
] as const satisfies readonly AppEventName[];

export type AppEventName = keyof AppEvents;
type Listener<K extends AppEventName> = (event: AppEvents[K]) => void;

export class EventBus {
  private readonly listeners = new Map<AppEventName, Set<Listener<never>>>();

  /** @param onListenerError told of a listener that threw; the other listeners still hear the event. */
  constructor(private readonly onListenerError: (err: unknown, name: AppEventName) => void) {}

  /** Calls `listener` synchronously on every `name` event from now on. Answers a function that removes it. */
  on<K extends AppEventName>(name: K, listener: Listener<K>): () => void {
    let set = this.listeners.get(name);
    if (!set) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(listener as Listener<never>);
    return () => {
      set.delete(listener as Listener<never>);
    };
  }

  emit<K extends AppEventName>(name: K, event: AppEvents[K]): void {
    const set = this.listeners.get(name);
    if (!set) return;
    for (const listener of set) {
      try {
        (listener as Listener<K>)(event);
      } catch (err) {
        this.onListenerError(err, name);
      }
    }
  }
}
