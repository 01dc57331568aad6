import type { AgentMessage } from '@fleetgate/protocol';
import { type SqlBool, sql } from 'kysely';
import type { Actor } from '../../infra/access/index.ts';
import { type Db, json } from '../../infra/db/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import type { Page, PageRequest, ServiceDeps } from '../../infra/service/index.ts';
import { type DeviceRef, deviceForAction, type LinkKind } from '../devices/index.ts';

/**
 * Presence (DESIGN section 6): the instance holding a device's tunnel is the source of truth; the database
 * gets connected-at / disconnected-at / last-seen, the connection history, the agent's state reports and its
 * variables answers in batches, one transaction about every second, never one write per heartbeat. A device
 * reporting ten times in a second costs one write.
 */

/**
 * One connection of a device as presence sees it: the agent's tunnel, an OpenVPN client (`link: 'vpn'`,
 * features/openvpn) or mender-connect (`link: 'mender-connect'`, features/mender-connect). Fields are read at
 * flush time (the agent version may arrive late).
 */
export interface PresenceConnection {
  readonly deviceId: number;
  /** Which link; unset = the tunnel. Each link has its own online state: a device is online through any. */
  readonly link?: LinkKind;
  /** The device's VPN address (a VPN connection). */
  readonly vpnAddress?: string;
  readonly connectedAt: number;
  readonly remoteAddress: string | null;
  readonly agentVersion: string | null;
}

export type StateReport = Omit<Extract<AgentMessage, { type: 'state-report' }>, 'type'>;

interface Closing {
  connection: PresenceConnection;
  at: number;
  code: number;
  reason: string;
  /** The device's current connection: its disconnect makes the device offline (a superseded one does not). */
  current: boolean;
}

interface DeviceChange {
  connectedAt?: number;
  disconnectedAt?: number;
  /** The connect time of the tunnel that ended: the device's row goes offline only if it still shows that one. */
  disconnectedOf?: number;
  vpnConnectedAt?: number;
  vpnDisconnectedAt?: number;
  vpnDisconnectedOf?: number;
  vpnAddress?: string;
  menderConnectedAt?: number;
  menderDisconnectedAt?: number;
  menderDisconnectedOf?: number;
  agentVersion?: string;
  state?: { report: StateReport; at: number };
  applied?: { revision: number; error: string | null; at: number };
}

/** Connection history rows kept, in days. */
const HISTORY_DAYS = 90;
/** State samples (the device page's charts) kept, in days: at most one per device per minute, ~10,000 a device. */
export const STATE_HISTORY_DAYS = 7;
const MINUTE_MS = 60_000;
/** The close reason of a connection whose end nobody wrote: the instance holding it stopped without saying so. */
const LOST = 'lost: the server holding the tunnel stopped';
/** Rows per multi-row INSERT and ids per IN list: well under both dialects' parameter limits. */
const CHUNK = 500;

export interface PresenceOptions {
  /** How often the buffer is written, in milliseconds. */
  flushMs: number;
  /**
   * A connection whose device showed no sign of life for this long, in milliseconds, is considered lost (the
   * instance holding it stopped without saying so) and closed in the database.
   */
  staleAfterMs: number;
}

/** Buffers presence and writes it in batches; `start()` begins the timer, `stop()` writes what is left. */
export class PresenceRecorder {
  private opened = new Set<PresenceConnection>();
  private closing: Closing[] = [];
  private seenDevices = new Set<number>();
  private changes = new Map<number, DeviceChange>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private lastSweep = 0;
  /** Set when the server stops: the time every connection closed from then on is recorded with. */
  private stoppedAt: number | undefined;

  constructor(
    private readonly deps: ServiceDeps,
    private readonly options: PresenceOptions,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.options.flushMs).unref();
  }

  /**
   * Closes the links that dead instances held (`holders`: their ids, found by features/cluster at start and
   * whenever one stops beating), and those no recorded instance holds (written before instances were recorded):
   * their devices go offline at once, as of their last sign of life, and their open connections are closed in the
   * history as lost. Run at start before this instance accepts a tunnel, for what a previous run left (`kill -9`, a
   * crash, a power cut); the stale sweep alone would take up to `staleAfterMs` plus its minute. A device that
   * connected again since, to any instance, keeps its newer connection. Logs one warning with the count, and
   * answers it.
   */
  async closeLeftOpen(holders: readonly string[] = []): Promise<number> {
    const heldBy = (column: 'tunnel_instance' | 'vpn_instance' | 'mender_instance' | 'instance_id') =>
      holders.length
        ? sql<SqlBool>`(${sql.ref(column)} is null or ${sql.ref(column)} in (${sql.join([...holders])}))`
        : sql<SqlBool>`${sql.ref(column)} is null`;
    const deviceIds = await this.deps.db.transaction().execute(async (trx) => {
      // Each link (the agent's tunnel, OpenVPN, mender-connect) a dead instance held went with it.
      const offline = new Set<number>();
      for (const columns of [TUNNEL, VPN, MENDER]) {
        const { connected, disconnected } = columns;
        const rows = await trx
          .updateTable('devices')
          .set({
            [disconnected]: sql<number>`case when last_seen_at > ${sql.ref(connected)} then last_seen_at else ${sql.ref(connected)} end`,
            ...Object.fromEntries(columns.cleared.map((column) => [column, null])),
          })
          .where(sql<SqlBool>`${sql.ref(connected)} > coalesce(${sql.ref(disconnected)}, 0)`)
          .where(heldBy(columns.instance))
          .returning('id')
          .execute();
        for (const row of rows) offline.add(row.id);
      }
      // The last sign of life (the connect, or the last answered ping written): the link ended at most a ping
      // interval after it, while the restart may come hours later.
      const lastSign = sql<number>`(select case when d.last_seen_at > device_connections.connected_at
        then d.last_seen_at else device_connections.connected_at end
        from devices d where d.id = device_connections.device_id)`;
      await trx
        .updateTable('device_connections')
        .set({
          disconnected_at: lastSign,
          duration_ms: sql<number>`${lastSign} - connected_at`,
          close_reason: LOST,
        })
        .where('disconnected_at', 'is', null)
        .where(heldBy('instance_id'))
        .execute();
      return [...offline];
    });
    if (deviceIds.length) {
      this.deps.log.warn(
        { devices: deviceIds.length },
        `${deviceIds.length} device(s) still showed online through an instance that stopped without closing ` +
          'their links: marked offline as of their last sign of life',
      );
      this.deps.events.emit('presence.written', { deviceIds });
    }
    return deviceIds.length;
  }

  /** Stops the timer and writes everything buffered. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  connected(connection: PresenceConnection): void {
    this.opened.add(connection);
    const change = this.changeOf(connection.deviceId);
    if (connection.link === 'vpn') {
      change.vpnConnectedAt = connection.connectedAt;
      change.vpnAddress = connection.vpnAddress ?? '';
      delete change.vpnDisconnectedAt;
    } else if (connection.link === 'mender-connect') {
      change.menderConnectedAt = connection.connectedAt;
      delete change.menderDisconnectedAt;
    } else {
      change.connectedAt = connection.connectedAt;
      delete change.disconnectedAt;
    }
  }

  /**
   * The server is stopping and closes every connection: they are recorded as closed at `at` (epoch ms), one
   * time for all, so that their history and their devices are written in a few statements rather than two
   * per connection while the agents wait for the new server.
   */
  stopping(at: number): void {
    this.stoppedAt = at;
  }

  disconnected(
    connection: PresenceConnection,
    close: { code: number; reason: string },
    current: boolean,
  ): void {
    const at = this.stoppedAt ?? Date.now();
    this.closing.push({ connection, at, code: close.code, reason: close.reason.slice(0, 256), current });
    if (!current) return;
    const change = this.changeOf(connection.deviceId);
    if (connection.link === 'vpn') {
      change.vpnDisconnectedAt = Math.max(at, connection.connectedAt);
      change.vpnDisconnectedOf = connection.connectedAt;
    } else if (connection.link === 'mender-connect') {
      change.menderDisconnectedAt = Math.max(at, connection.connectedAt);
      change.menderDisconnectedOf = connection.connectedAt;
    } else {
      change.disconnectedAt = Math.max(at, connection.connectedAt);
      change.disconnectedOf = connection.connectedAt;
    }
  }

  /** The device answered a ping or sent something: its last-seen time moves on at the next flush. */
  sawDevice(deviceId: number): void {
    this.seenDevices.add(deviceId);
  }

  stateReported(deviceId: number, report: StateReport): void {
    const change = this.changeOf(deviceId);
    change.state = { report, at: Date.now() };
    if (report.agentVersion) change.agentVersion = report.agentVersion;
  }

  variablesApplied(deviceId: number, revision: number, error: string | undefined): void {
    this.changeOf(deviceId).applied = { revision, error: error ?? null, at: Date.now() };
  }

  private changeOf(deviceId: number): DeviceChange {
    let change = this.changes.get(deviceId);
    if (!change) {
      change = {};
      this.changes.set(deviceId, change);
    }
    return change;
  }

  /** Writes the buffer in one transaction. Flushes never overlap; a failed one is retried with the next. */
  flush(): Promise<void> {
    this.flushing ??= this.write().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async write(): Promise<void> {
    const now = Date.now();
    const sweep = now - this.lastSweep >= 60_000;
    if (!this.opened.size && !this.closing.length && !this.seenDevices.size && !this.changes.size && !sweep)
      return;
    const batch = {
      opened: this.opened,
      closing: this.closing,
      seen: this.seenDevices,
      changes: this.changes,
    };
    this.opened = new Set();
    this.closing = [];
    this.seenDevices = new Set();
    this.changes = new Map();
    try {
      const lost = await this.deps.db.transaction().execute(async (trx) => {
        await writeBatch(trx, batch, now, this.deps.instanceId);
        return sweep ? closeStale(trx, now, this.options.staleAfterMs) : [];
      });
      if (sweep) this.lastSweep = now;
      // Devices the sweep took offline are news too: the UI and the live events show them offline at once.
      const deviceIds = new Set<number>([...batch.changes.keys(), ...batch.seen, ...lost]);
      for (const c of batch.opened) deviceIds.add(c.deviceId);
      for (const c of batch.closing) deviceIds.add(c.connection.deviceId);
      if (deviceIds.size) this.deps.events.emit('presence.written', { deviceIds: [...deviceIds] });
    } catch (err) {
      this.deps.log.error({ err }, 'writing presence failed; retrying with the next batch');
      // Put the batch back under what arrived meanwhile, newer facts winning.
      for (const c of batch.opened) this.opened.add(c);
      this.closing = [...batch.closing, ...this.closing];
      for (const id of batch.seen) this.seenDevices.add(id);
      for (const [id, older] of batch.changes) this.changes.set(id, { ...older, ...this.changes.get(id) });
    }
  }
}

async function writeBatch(
  trx: Db,
  batch: {
    opened: Set<PresenceConnection>;
    closing: Closing[];
    seen: Set<number>;
    changes: Map<number, DeviceChange>;
  },
  now: number,
  instanceId: string,
): Promise<void> {
  // Connections that opened and closed within one batch are written once, complete.
  const closedNow = new Map<PresenceConnection, Closing>();
  for (const c of batch.closing) if (batch.opened.has(c.connection)) closedNow.set(c.connection, c);
  const rows = [...batch.opened].map((c) => {
    const closed = closedNow.get(c);
    return {
      device_id: c.deviceId,
      link: c.link ?? 'tunnel',
      remote_address: c.remoteAddress,
      agent_version: c.agentVersion,
      connected_at: c.connectedAt,
      disconnected_at: closed?.at ?? null,
      duration_ms: closed ? closed.at - c.connectedAt : null,
      close_code: closed?.code ?? null,
      close_reason: closed?.reason ?? null,
      instance_id: instanceId,
    };
  });
  for (let i = 0; i < rows.length; i += CHUNK) {
    await trx
      .insertInto('device_connections')
      .values(rows.slice(i, i + CHUNK))
      .execute();
  }
  // Closes with the same time, code and reason (all of them when the server stops) share one UPDATE.
  const closeGroups = groupBy(
    batch.closing.filter((c) => !closedNow.has(c.connection)),
    (c) => `${c.at}\u0000${c.code}\u0000${c.reason}\u0000${c.connection.link ?? 'tunnel'}`,
  );
  for (const group of closeGroups) {
    const { at, code, reason, connection } = group[0]!;
    for (let i = 0; i < group.length; i += CHUNK) {
      const chunk = group.slice(i, i + CHUNK);
      await trx
        .updateTable('device_connections')
        .set({
          disconnected_at: at,
          duration_ms: sql<number>`${at} - connected_at`,
          close_code: code,
          close_reason: reason,
        })
        .where((eb) =>
          eb(
            eb.refTuple('device_id', 'connected_at'),
            'in',
            chunk.map((c) => eb.tuple(c.connection.deviceId, c.connection.connectedAt)),
          ),
        )
        .where('link', '=', connection.link ?? 'tunnel')
        .where('disconnected_at', 'is', null)
        .execute();
    }
  }
  // Agent versions that arrived after the connect (in the hello) for connections written earlier.
  for (const c of batch.opened) {
    if (c.agentVersion !== null) {
      const change = batch.changes.get(c.deviceId);
      if (change && change.agentVersion === undefined) change.agentVersion = c.agentVersion;
    }
  }
  for (const update of deviceUpdates(batch.changes, instanceId)) {
    for (let i = 0; i < update.ids.length; i += CHUNK) {
      const ids = update.ids.slice(i, i + CHUNK);
      let query = trx.updateTable('devices').set(update.set);
      const { guard } = update;
      if (!guard) query = query.where('id', 'in', ids);
      else if (guard.kind === 'newer') {
        // A connect never replaces a newer one (written by another instance, or by this one's later batch).
        query = query
          .where('id', 'in', ids)
          .where(sql<SqlBool>`coalesce(${sql.ref(guard.column)}, 0) <= ${guard.at}`);
      } else {
        // A disconnect takes the device offline only while its row still shows the connection that ended.
        const pairs = ids.map((id) => [id, update.connectedOf.get(id)!] as const);
        query = query.where((eb) =>
          eb(
            eb.refTuple('id', guard.column),
            'in',
            pairs.map(([id, at]) => eb.tuple(id, at)),
          ),
        );
      }
      await query.execute();
    }
  }
  await writeStateSamples(trx, batch.changes);
  const seen = [...batch.seen];
  for (let i = 0; i < seen.length; i += CHUNK) {
    await trx
      .updateTable('devices')
      .set({ last_seen_at: now })
      .where('id', 'in', seen.slice(i, i + CHUNK))
      .execute();
  }
}

/** The connect-time column of each link: its generation. */
type LinkColumn = 'connected_at' | 'vpn_connected_at' | 'mender_connected_at';

/** A link's presence columns in a device's row. */
interface LinkColumns {
  connected: LinkColumn;
  disconnected: 'disconnected_at' | 'vpn_disconnected_at' | 'mender_disconnected_at';
  instance: 'tunnel_instance' | 'vpn_instance' | 'mender_instance';
  /** Cleared when the link's connection ends: its instance, and what else only a live connection has. */
  cleared: readonly string[];
}

const TUNNEL: LinkColumns = {
  connected: 'connected_at',
  disconnected: 'disconnected_at',
  instance: 'tunnel_instance',
  cleared: ['tunnel_instance'],
};
const VPN: LinkColumns = {
  connected: 'vpn_connected_at',
  disconnected: 'vpn_disconnected_at',
  instance: 'vpn_instance',
  cleared: ['vpn_instance', 'vpn_address'],
};
const MENDER: LinkColumns = {
  connected: 'mender_connected_at',
  disconnected: 'mender_disconnected_at',
  instance: 'mender_instance',
  cleared: ['mender_instance'],
};

/** One link's part of a device's change, in the terms of its columns. */
function linkChangesOf(change: DeviceChange) {
  return [
    {
      columns: TUNNEL,
      connectedAt: change.connectedAt,
      disconnectedAt: change.disconnectedAt,
      disconnectedOf: change.disconnectedOf,
      connectedSet: {},
    },
    {
      columns: VPN,
      connectedAt: change.vpnConnectedAt,
      disconnectedAt: change.vpnDisconnectedAt,
      disconnectedOf: change.vpnDisconnectedOf,
      connectedSet: { vpn_address: change.vpnAddress || null },
    },
    {
      columns: MENDER,
      connectedAt: change.menderConnectedAt,
      disconnectedAt: change.menderDisconnectedAt,
      disconnectedOf: change.menderDisconnectedOf,
      connectedSet: {},
    },
  ];
}

interface DeviceUpdate {
  set: Record<string, unknown>;
  ids: number[];
  /** Unset: applies as is. `newer`: only over an older connect. `same`: only while the row shows `connectedOf`. */
  guard?: { kind: 'newer'; column: LinkColumn; at: number } | { kind: 'same'; column: LinkColumn };
  connectedOf: Map<number, number>;
}

/** The latest of a device's last-seen time and `at`, as SQL (a link's update never moves it back). */
function seenAt(at: number) {
  return sql<number>`case when coalesce(last_seen_at, 0) > ${at} then last_seen_at else ${at} end`;
}

/**
 * The UPDATEs of devices' rows for a batch's changes: per device, what applies as is (state reports, variables
 * answers, agent version), its tunnel's connect or disconnect and its VPN's, each guarded by the connection's
 * generation (its connect time), so that several instances writing one device's presence leave the newest
 * connection standing. Devices with the same change (all of them going offline when the server stops) share one.
 */
function deviceUpdates(changes: Map<number, DeviceChange>, instanceId: string): DeviceUpdate[] {
  const updates = new Map<string, DeviceUpdate>();
  /** `seen`: the last-seen time the change brings (a link's connect or disconnect). */
  const add = (
    deviceId: number,
    set: Record<string, unknown>,
    guard?: DeviceUpdate['guard'],
    connectedOf?: number,
    seen?: number,
  ) => {
    const key = JSON.stringify([set, guard ?? null, seen ?? null]);
    let update = updates.get(key);
    if (!update) {
      const withSeen = seen === undefined ? set : { ...set, last_seen_at: seenAt(seen) };
      update = { set: withSeen, ids: [], ...(guard ? { guard } : {}), connectedOf: new Map() };
      updates.set(key, update);
    }
    update.ids.push(deviceId);
    if (connectedOf !== undefined) update.connectedOf.set(deviceId, connectedOf);
  };
  for (const [deviceId, change] of changes) {
    const plain: Record<string, unknown> = {};
    if (change.agentVersion !== undefined) plain.agent_version = change.agentVersion.slice(0, 128);
    if (change.state) {
      plain.state = json.encode(change.state.report);
      plain.state_reported_at = change.state.at;
    }
    if (change.applied) {
      plain.variables_applied_revision = change.applied.revision;
      plain.variables_applied_at = change.applied.at;
      plain.variables_error = change.applied.error?.slice(0, 1024) ?? null;
    }
    if (Object.keys(plain).length) add(deviceId, plain);
    for (const link of linkChangesOf(change)) {
      const { columns, connectedAt, disconnectedAt } = link;
      // What a connection's end clears beside its time: the holding instance (and the VPN address).
      const cleared = Object.fromEntries(columns.cleared.map((column) => [column, null]));
      if (connectedAt !== undefined) {
        const set: Record<string, unknown> = {
          [columns.connected]: connectedAt,
          [columns.instance]: instanceId,
          ...link.connectedSet,
          ...(disconnectedAt !== undefined ? { [columns.disconnected]: disconnectedAt, ...cleared } : {}),
        };
        const guard = { kind: 'newer' as const, column: columns.connected, at: connectedAt };
        add(deviceId, set, guard, undefined, disconnectedAt ?? connectedAt);
      } else if (disconnectedAt !== undefined) {
        const set = { [columns.disconnected]: disconnectedAt, ...cleared };
        add(deviceId, set, { kind: 'same', column: columns.connected }, link.disconnectedOf, disconnectedAt);
      }
    }
  }
  return [...updates.values()];
}

/**
 * The numbers of this batch's state reports, one sample per device and minute: a device reporting every second
 * still adds one row a minute (the primary key keeps the first of each minute, across batches and restarts).
 */
async function writeStateSamples(trx: Db, changes: Map<number, DeviceChange>): Promise<void> {
  const rows = [];
  for (const [deviceId, change] of changes) {
    if (!change.state) continue;
    const { report, at } = change.state;
    if (
      report.cpuPercent === undefined &&
      !report.memory &&
      !report.disk &&
      report.temperatureCelsius === undefined
    )
      continue;
    rows.push({
      device_id: deviceId,
      minute: Math.floor(at / MINUTE_MS),
      at,
      cpu_percent: report.cpuPercent ?? null,
      memory_used_bytes: report.memory ? Math.round(report.memory.usedBytes) : null,
      memory_total_bytes: report.memory ? Math.round(report.memory.totalBytes) : null,
      disk_used_bytes: report.disk ? Math.round(report.disk.usedBytes) : null,
      disk_total_bytes: report.disk ? Math.round(report.disk.totalBytes) : null,
      temperature_celsius: report.temperatureCelsius ?? null,
    });
  }
  for (let i = 0; i < rows.length; i += CHUNK) {
    await trx
      .insertInto('device_state_samples')
      .values(rows.slice(i, i + CHUNK))
      .onConflict((oc) => oc.columns(['device_id', 'minute']).doNothing())
      .execute();
  }
}

function groupBy<T>(items: T[], keyOf: (item: T) => string): T[][] {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return [...groups.values()];
}

/**
 * Connections the database holds open but nobody does: their instance stopped without writing the
 * disconnect (a crash), so their devices would look online forever. Live tunnels refresh last-seen with
 * every pong, so only lost ones go stale. Also drops history older than `HISTORY_DAYS` and state samples older than `STATE_HISTORY_DAYS`. Answers the devices
 * it took offline.
 */
async function closeStale(trx: Db, now: number, staleAfterMs: number): Promise<number[]> {
  const cutoff = now - staleAfterMs;
  const lost = await trx
    .updateTable('devices')
    .set({ disconnected_at: now })
    .where(sql<SqlBool>`connected_at > coalesce(disconnected_at, 0)`)
    .where(sql<SqlBool>`coalesce(last_seen_at, connected_at) < ${cutoff}`)
    .returning('id')
    .execute();
  // The OpenVPN backend marks its connected devices seen every few seconds (features/openvpn): the same rule.
  const lostVpn = await trx
    .updateTable('devices')
    .set({ vpn_disconnected_at: now, vpn_address: null })
    .where(sql<SqlBool>`vpn_connected_at > coalesce(vpn_disconnected_at, 0)`)
    .where(sql<SqlBool>`coalesce(last_seen_at, vpn_connected_at) < ${cutoff}`)
    .returning('id')
    .execute();
  // mender-connect links refresh last-seen at every answered ping (features/mender-connect): the same rule.
  const lostMender = await trx
    .updateTable('devices')
    .set({ mender_disconnected_at: now })
    .where(sql<SqlBool>`mender_connected_at > coalesce(mender_disconnected_at, 0)`)
    .where(sql<SqlBool>`coalesce(last_seen_at, mender_connected_at) < ${cutoff}`)
    .returning('id')
    .execute();
  // Open rows of devices that are not online, or that connected again since.
  await trx
    .updateTable('device_connections')
    .set({
      disconnected_at: now,
      duration_ms: sql<number>`${now} - connected_at`,
      close_reason: LOST,
    })
    .where('disconnected_at', 'is', null)
    .where('connected_at', '<', cutoff)
    .where((eb) =>
      eb.or([
        eb.and([
          eb('link', '=', 'tunnel'),
          eb(
            'device_id',
            'in',
            eb
              .selectFrom('devices')
              .select('devices.id')
              .where(
                sql<SqlBool>`devices.connected_at <= coalesce(devices.disconnected_at, 0) or devices.connected_at > device_connections.connected_at`,
              ),
          ),
        ]),
        eb.and([
          eb('link', '=', 'vpn'),
          eb(
            'device_id',
            'in',
            eb
              .selectFrom('devices')
              .select('devices.id')
              .where(
                sql<SqlBool>`devices.vpn_connected_at <= coalesce(devices.vpn_disconnected_at, 0) or devices.vpn_connected_at > device_connections.connected_at`,
              ),
          ),
        ]),
        eb.and([
          eb('link', '=', 'mender-connect'),
          eb(
            'device_id',
            'in',
            eb
              .selectFrom('devices')
              .select('devices.id')
              .where(
                sql<SqlBool>`devices.mender_connected_at <= coalesce(devices.mender_disconnected_at, 0) or devices.mender_connected_at > device_connections.connected_at`,
              ),
          ),
        ]),
      ]),
    )
    .execute();
  await trx
    .deleteFrom('device_connections')
    .where('connected_at', '<', now - HISTORY_DAYS * 24 * 3600 * 1000)
    .where('disconnected_at', 'is not', null)
    .execute();
  await trx
    .deleteFrom('device_state_samples')
    .where('minute', '<', Math.floor((now - STATE_HISTORY_DAYS * 24 * 3600 * 1000) / MINUTE_MS))
    .execute();
  return [...lost, ...lostVpn, ...lostMender].map(({ id }) => id);
}

export interface ConnectionView {
  id: number;
  link: LinkKind;
  connectedAt: string;
  disconnectedAt: string | null;
  /** Null while the connection is open. */
  durationMs: number | null;
  remoteAddress: string | null;
  agentVersion: string | null;
  closeCode: number | null;
  closeReason: string | null;
}

/** A device's connections (tunnel and OpenVPN), newest first (written in batches: the newest may take a second to show). */
export async function listDeviceConnections(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
  page: PageRequest,
): Promise<Page<ConnectionView>> {
  const device = await deviceForAction(deps.db, actor, ref, 'device.read');
  const rows = await deps.db
    .selectFrom('device_connections')
    .selectAll()
    .select((eb) => eb.fn.countAll<number>().over().as('total'))
    .where('device_id', '=', device.id)
    .orderBy('connected_at', 'desc')
    .orderBy('id', 'desc')
    .limit(page.limit)
    .offset((page.page - 1) * page.limit)
    .execute();
  const total =
    rows[0]?.total ??
    (page.page > 1
      ? (
          await deps.db
            .selectFrom('device_connections')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where('device_id', '=', device.id)
            .executeTakeFirstOrThrow()
        ).n
      : 0);
  return {
    items: rows.map((r) => ({
      id: r.id,
      link: r.link === 'vpn' || r.link === 'mender-connect' ? r.link : 'tunnel',
      connectedAt: iso(r.connected_at),
      disconnectedAt: iso(r.disconnected_at),
      durationMs: r.duration_ms,
      remoteAddress: r.remote_address,
      agentVersion: r.agent_version,
      closeCode: r.close_code,
      closeReason: r.close_reason,
    })),
    total: Number(total),
    page: page.page,
    limit: page.limit,
  };
}

export interface StateSampleView {
  at: string;
  cpuPercent: number | null;
  memory: { usedBytes: number; totalBytes: number } | null;
  disk: { usedBytes: number; totalBytes: number } | null;
  temperatureCelsius: number | null;
}

/** Samples answered at most: 7 days of one a minute. */
const MAX_SAMPLES = STATE_HISTORY_DAYS * 24 * 60;

/**
 * A device's state samples since `since` (epoch ms; default the last 24 hours), oldest first: at most one a
 * minute, kept `STATE_HISTORY_DAYS` days, written in presence's batches (the newest may take a second to show).
 */
export async function listStateHistory(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
  since: number | undefined,
): Promise<{ since: string; items: StateSampleView[] }> {
  const device = await deviceForAction(deps.db, actor, ref, 'device.read');
  const from = since ?? Date.now() - 24 * 3600 * 1000;
  const rows = await deps.db
    .selectFrom('device_state_samples')
    .selectAll()
    .where('device_id', '=', device.id)
    .where('minute', '>=', Math.floor(from / MINUTE_MS))
    .where('at', '>=', from)
    .orderBy('minute', 'asc')
    .limit(MAX_SAMPLES)
    .execute();
  const pair = (used: number | null, total: number | null) =>
    used === null || total === null ? null : { usedBytes: used, totalBytes: total };
  return {
    since: iso(from),
    items: rows.map((r) => ({
      at: iso(r.at),
      cpuPercent: r.cpu_percent,
      memory: pair(r.memory_used_bytes, r.memory_total_bytes),
      disk: pair(r.disk_used_bytes, r.disk_total_bytes),
      temperatureCelsius: r.temperature_celsius,
    })),
  };
}
