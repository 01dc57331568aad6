import type { AgentMessage } from '@fleetgate/protocol';
import { type SqlBool, sql } from 'kysely';
import type { Actor } from '../../infra/access/index.ts';
import { type Db, json } from '../../infra/db/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import type { Page, PageRequest, ServiceDeps } from '../../infra/service/index.ts';
import { type DeviceRef, deviceForAction } from '../devices/service.ts';
import type { LinkKind } from '../devices/status.ts';

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
  vpnConnectedAt?: number;
  vpnDisconnectedAt?: number;
  vpnAddress?: string;
  menderConnectedAt?: number;
  menderDisconnectedAt?: number;
  agentVersion?: string;
  state?: { report: StateReport; at: number };
  applied?: { revision: number; error: string | null; at: number };
}

/** Connection history rows kept, in days. */
const HISTORY_DAYS = 90;
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
   * Run once at start, before this instance accepts a tunnel: it holds none yet, so every device the database
   * shows online was left so by a run that stopped without writing the disconnects (`kill -9`, a crash, a power
   * cut). Those devices go offline at once, as of their last sign of life, and their open connections are closed
   * in the history as lost; the stale sweep alone would take up to `staleAfterMs` plus its minute. Logs one
   * warning with the count, and answers it.
   *
   * One instance per database is what runs today, so the previous run of this instance held every one of them.
   * Several instances on one PostgreSQL database are not supported yet: then this must close only the
   * connections this instance held (which needs the holder written beside each connection), or a restart would
   * take the devices of the other instances offline until their next flush.
   */
  async closeLeftOpen(): Promise<number> {
    const deviceIds = await this.deps.db.transaction().execute(async (trx) => {
      const online = await trx
        .selectFrom('devices')
        .select([
          'id',
          sql<number>`case when connected_at > coalesce(disconnected_at, 0) then 1 else 0 end`.as('tunnel'),
        ])
        .where(
          sql<SqlBool>`(connected_at > coalesce(disconnected_at, 0) or vpn_connected_at > coalesce(vpn_disconnected_at, 0)
            or mender_connected_at > coalesce(mender_disconnected_at, 0))`,
        )
        .execute();
      const ids = online.map((d) => d.id);
      const tunnelIds = online.filter((d) => Number(d.tunnel) === 1).map((d) => d.id);
      // A clean stop wrote every disconnect: nothing to close, and no scan of the history.
      if (!ids.length) return ids;
      // The last sign of life (the connect, or the last answered ping written): the tunnel ended at most a ping
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
        .execute();
      for (let i = 0; i < tunnelIds.length; i += CHUNK) {
        await trx
          .updateTable('devices')
          .set({
            disconnected_at: sql<number>`case when last_seen_at > connected_at then last_seen_at else connected_at end`,
          })
          .where('id', 'in', tunnelIds.slice(i, i + CHUNK))
          .execute();
      }
      // The OpenVPN instances this run held stopped with it: their devices are offline through the VPN too.
      await trx
        .updateTable('devices')
        .set({
          vpn_disconnected_at: sql<number>`case when last_seen_at > vpn_connected_at then last_seen_at else vpn_connected_at end`,
          vpn_address: null,
        })
        .where(sql<SqlBool>`vpn_connected_at > coalesce(vpn_disconnected_at, 0)`)
        .execute();
      // So did the mender-connect links this run held.
      await trx
        .updateTable('devices')
        .set({
          mender_disconnected_at: sql<number>`case when last_seen_at > mender_connected_at then last_seen_at else mender_connected_at end`,
        })
        .where(sql<SqlBool>`mender_connected_at > coalesce(mender_disconnected_at, 0)`)
        .execute();
      return ids;
    });
    if (deviceIds.length) {
      this.deps.log.warn(
        { devices: deviceIds.length },
        `${deviceIds.length} device(s) still showed online from before this start (the server stopped without ` +
          'closing their tunnels): marked offline as of their last sign of life',
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
    if (connection.link === 'vpn') change.vpnDisconnectedAt = Math.max(at, connection.connectedAt);
    else if (connection.link === 'mender-connect')
      change.menderDisconnectedAt = Math.max(at, connection.connectedAt);
    else change.disconnectedAt = Math.max(at, connection.connectedAt);
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
        await writeBatch(trx, batch, now);
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
  // Devices with the same change (all of them going offline when the server stops) share one UPDATE.
  const updates = new Map<string, { set: Record<string, unknown>; ids: number[] }>();
  for (const [deviceId, change] of batch.changes) {
    const set: Record<string, unknown> = {};
    if (change.connectedAt !== undefined) {
      set.connected_at = change.connectedAt;
      set.last_seen_at = change.connectedAt;
    }
    if (change.disconnectedAt !== undefined) {
      set.disconnected_at = change.disconnectedAt;
      set.last_seen_at = change.disconnectedAt;
    }
    if (change.vpnConnectedAt !== undefined) {
      set.vpn_connected_at = change.vpnConnectedAt;
      set.vpn_address = change.vpnAddress || null;
      set.last_seen_at = Math.max(change.vpnConnectedAt, (set.last_seen_at as number | undefined) ?? 0);
    }
    if (change.vpnDisconnectedAt !== undefined) {
      set.vpn_disconnected_at = change.vpnDisconnectedAt;
      set.vpn_address = null;
      set.last_seen_at = Math.max(change.vpnDisconnectedAt, (set.last_seen_at as number | undefined) ?? 0);
    }
    if (change.menderConnectedAt !== undefined) {
      set.mender_connected_at = change.menderConnectedAt;
      set.last_seen_at = Math.max(change.menderConnectedAt, (set.last_seen_at as number | undefined) ?? 0);
    }
    if (change.menderDisconnectedAt !== undefined) {
      set.mender_disconnected_at = change.menderDisconnectedAt;
      set.last_seen_at = Math.max(change.menderDisconnectedAt, (set.last_seen_at as number | undefined) ?? 0);
    }
    if (change.agentVersion !== undefined) set.agent_version = change.agentVersion.slice(0, 128);
    if (change.state) {
      set.state = json.encode(change.state.report);
      set.state_reported_at = change.state.at;
    }
    if (change.applied) {
      set.variables_applied_revision = change.applied.revision;
      set.variables_applied_at = change.applied.at;
      set.variables_error = change.applied.error?.slice(0, 1024) ?? null;
    }
    if (Object.keys(set).length === 0) continue;
    const key = JSON.stringify(set);
    const update = updates.get(key);
    if (update) update.ids.push(deviceId);
    else updates.set(key, { set, ids: [deviceId] });
  }
  for (const { set, ids } of updates.values()) {
    for (let i = 0; i < ids.length; i += CHUNK) {
      await trx
        .updateTable('devices')
        .set(set)
        .where('id', 'in', ids.slice(i, i + CHUNK))
        .execute();
    }
  }
  const seen = [...batch.seen];
  for (let i = 0; i < seen.length; i += CHUNK) {
    await trx
      .updateTable('devices')
      .set({ last_seen_at: now })
      .where('id', 'in', seen.slice(i, i + CHUNK))
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
 * every pong, so only lost ones go stale. Also drops history older than `HISTORY_DAYS`. Answers the devices
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
