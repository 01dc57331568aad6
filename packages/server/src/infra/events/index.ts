/**
 * One typed event bus per app (built in `buildApp`, carried in `ServiceDeps`): what happened inside this app,
 * told to whoever in the same app listens. Nothing here is module state, so two apps in one process (tests,
 * several instances) never hear each other. Events carry ids, never the data itself: a listener that needs the
 * record reads it, scoped as every read is.
 */

/** Every event the app tells, by name. */
export interface AppEvents {
  /** A `write` committed (after its transaction, before its caller answers). */
  'write.committed': { action: string; resourceType: string; orgId: number | null };
  /** Presence of these devices (connect, disconnect, last seen, state report) was written to the database. */
  'presence.written': { deviceIds: readonly number[] };
}

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
