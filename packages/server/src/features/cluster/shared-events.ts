import { createHash } from 'node:crypto';
import pg from 'pg';
import { type AppEventName, type AppEvents, type EventBus, sharedEvents } from '../../infra/events/index.ts';
import type { Logger } from '../../infra/logging/index.ts';

/**
 * Events across instances (issue 19): every instance on one PostgreSQL database LISTENs on one channel, and
 * each event of `sharedEvents` told on an instance's own bus is sent there with NOTIFY (ids only, as the bus
 * carries them; well under PostgreSQL's 8,000-byte payload limit: a long list of device ids is split), and told
 * on every other instance's bus. A listener whose connection dropped may have missed some: once connected again
 * it tells its own bus a `write.committed` of action `cluster.resync`, so that what rechecks on writes (live
 * sessions against people's access, caches) looks at the tables again.
 *
 * One connection of its own per instance (LISTEN holds it), used for NOTIFY too, so an instance's events
 * arrive everywhere in the order it told them.
 */

/** The largest payload sent, in bytes: PostgreSQL's limit is 8,000. */
const MAX_PAYLOAD = 7_500;
/** Device ids per `presence.written` message. */
const IDS_PER_MESSAGE = 500;
/** Reconnect delays, in milliseconds: doubling from the first to the last. */
const RECONNECT_MS = [250, 5_000] as const;
/** Events waiting while the connection is down, at most; older ones are dropped (the resync covers them). */
const MAX_QUEUED = 10_000;

interface Message {
  /** The sending instance. */
  o: string;
  n: AppEventName;
  e: unknown;
}

/** The channel of one database schema (tests run many schemas in one database). */
export function channelOf(schema: string): string {
  const name = `fleetgate_events_${schema}`;
  return name.length <= 63
    ? name
    : `fleetgate_events_${createHash('sha256').update(schema).digest('hex').slice(0, 32)}`;
}

export interface SharedEventsOptions {
  databaseUrl: string;
  schema: string;
  instanceId: string;
  events: EventBus;
  log: Logger;
}

export class SharedEvents {
  private client: pg.Client | undefined;
  private queue: string[] = [];
  private relaying = false;
  /** The NOTIFY statement in flight, if any. */
  private sending: Promise<void> | undefined;
  private stopped = false;
  private delay: number = RECONNECT_MS[0];
  private retry: NodeJS.Timeout | undefined;
  private readonly unsubscribe: (() => void)[] = [];
  private readonly channel: string;
  /** Resolves once the first LISTEN is in place. */
  private firstConnect: Promise<void> | undefined;

  constructor(private readonly options: SharedEventsOptions) {
    this.channel = channelOf(options.schema);
  }

  /** Listens, and sends this instance's shared events from now on. */
  async start(): Promise<void> {
    for (const name of sharedEvents) {
      this.unsubscribe.push(
        this.options.events.on(name, (event) => {
          // An event told here by another instance is not sent back.
          if (!this.relaying) this.send(name, event);
        }),
      );
    }
    this.firstConnect = this.connect(false);
    await this.firstConnect;
  }

  async stop(): Promise<void> {
    for (const stop of this.unsubscribe) stop();
    // What this instance told last (its sessions' ends, its devices' disconnects) still goes out.
    while (this.sending) await this.sending;
    this.stopped = true;
    clearTimeout(this.retry);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }

  private send<K extends AppEventName>(name: K, event: AppEvents[K]): void {
    for (const payload of payloadsOf(this.options.instanceId, name, event)) {
      if (payload.length > MAX_PAYLOAD) {
        this.options.log.error(
          { event: name, bytes: payload.length },
          'an event too large to share was dropped',
        );
        continue;
      }
      this.queue.push(payload);
    }
    if (this.queue.length > MAX_QUEUED) this.queue.splice(0, this.queue.length - MAX_QUEUED);
    this.flush();
  }

  /**
   * Sends what is queued in one statement (in order), one statement at a time: the connection runs one query at
   * once, and a burst of events costs one round trip.
   */
  private flush(): void {
    const client = this.client;
    if (!client || this.sending || !this.queue.length) return;
    const payloads = this.queue.splice(0, this.queue.length);
    this.sending = client
      .query(
        'select pg_notify($1, payload) from unnest($2::text[]) with ordinality as p(payload, n) order by n',
        [this.channel, payloads],
      )
      .then(
        () => {},
        (err: unknown) => {
          if (!this.stopped) this.options.log.warn({ err }, 'sharing events with the other instances failed');
        },
      )
      .finally(() => {
        this.sending = undefined;
        this.flush();
      });
  }

  private async connect(resync: boolean): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({ connectionString: this.options.databaseUrl });
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, new Error('the connection ended')));
    client.on('notification', (message) => {
      if (message.channel === this.channel && message.payload) this.receive(message.payload);
    });
    try {
      await client.connect();
      await client.query(`listen "${this.channel}"`);
    } catch (err) {
      client.removeAllListeners('end');
      await client.end().catch(() => {});
      if (!resync && !this.client) {
        // The first connect fails the start: the database is there (migrations ran), so this says why.
        throw err;
      }
      this.options.log.warn({ err }, "listening for the other instances' events failed; trying again");
      this.scheduleReconnect();
      return;
    }
    if (this.stopped) {
      await client.end().catch(() => {});
      return;
    }
    this.client = client;
    this.delay = RECONNECT_MS[0];
    this.flush();
    if (resync) {
      this.options.log.info(
        "listening for the other instances' events again: rechecking what they may have changed",
      );
      this.tell('write.committed', { action: 'cluster.resync', resourceType: 'cluster', orgId: null });
    }
  }

  private lost(client: pg.Client, err: Error): void {
    if (this.client !== client || this.stopped) return;
    this.client = undefined;
    this.options.log.warn(
      { err },
      "the connection carrying the other instances' events dropped; reconnecting",
    );
    client.end().catch(() => {});
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => void this.connect(true), this.delay).unref();
    this.delay = Math.min(this.delay * 2, RECONNECT_MS[1]);
  }

  private receive(payload: string): void {
    let message: Message;
    try {
      message = JSON.parse(payload) as Message;
    } catch {
      return;
    }
    if (message.o === this.options.instanceId) return;
    if (!(sharedEvents as readonly string[]).includes(message.n) || typeof message.e !== 'object') return;
    this.tell(message.n, message.e as AppEvents[typeof message.n]);
  }

  /** Tells this instance's bus an event that another instance sent (not sent on again). */
  private tell<K extends AppEventName>(name: K, event: AppEvents[K]): void {
    this.relaying = true;
    try {
      this.options.events.emit(name, event);
    } finally {
      this.relaying = false;
    }
  }
}

/** The NOTIFY payloads of one event: one, or several for a long list of device ids. */
function payloadsOf<K extends AppEventName>(instanceId: string, name: K, event: AppEvents[K]): string[] {
  if (name === 'presence.written') {
    const ids = (event as AppEvents['presence.written']).deviceIds;
    const payloads: string[] = [];
    for (let i = 0; i < ids.length; i += IDS_PER_MESSAGE) {
      payloads.push(
        JSON.stringify({ o: instanceId, n: name, e: { deviceIds: ids.slice(i, i + IDS_PER_MESSAGE) } }),
      );
    }
    return payloads;
  }
  return [JSON.stringify({ o: instanceId, n: name, e: event })];
}
