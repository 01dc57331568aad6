import { randomBytes } from 'node:crypto';
import {
  type CompiledQuery,
  type ExpressionBuilder,
  PostgresAdapter,
  type Selectable,
  type SqlBool,
  sql,
} from 'kysely';
import type { Database, DeviceTable } from '../../db/schema.ts';
import { type Action, type Actor, authorize, readScope, scopeCondition } from '../../infra/access/index.ts';
import { containsText, type Db, json, likeContains, padIds, readNow } from '../../infra/db/index.ts';
import { AppError, notFound } from '../../infra/errors/index.ts';
import type { SameType } from '../../infra/http/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import { type Page, type PageRequest, type ServiceDeps, write } from '../../infra/service/index.ts';
import { assertDeviceType } from '../device-types/service.ts';
import { fleetForAction } from '../fleets/index.ts';
import { lockOrganization, orgDeviceLimit, setOrgDeviceLimit } from '../orgs/index.ts';
import { deleteTag, deviceTags, putTag, tagsJsonExpression, tagsOf } from '../tags/service.ts';
import { bumpVariablesRevision } from '../variables/changes.ts';
import { type DeviceRef, resolveDeviceRef } from './resolve.ts';

import {
  type DeviceStatus,
  deviceStatus,
  type LinkKind,
  onlineLinks,
  pendingAuthExpression,
  statusCondition,
} from './status.ts';
import type { DeviceTotals } from './totals.ts';

export interface DeviceView {
  id: number;
  uuid: string;
  name: string;
  orgId: number;
  fleetId: number;
  fleetName: string;
  deviceType: string;
  notes: string;
  status: DeviceStatus;
  tags: Record<string, string>;
  /** Inventory attributes reported by the device (name → value), or null before its first report. */
  attributes: Record<string, unknown> | null;
  /** The links the device is online through now: its agent's `tunnel`, `vpn` (OpenVPN), `mender-connect`. */
  onlineVia: LinkKind[];
  /** Its address on the VPN while it is connected through OpenVPN. */
  vpnAddress: string | null;
  /** Presence: the last tunnel connect and disconnect, and the last sign of life (written in batches). */
  connectedAt: string | null;
  disconnectedAt: string | null;
  lastSeenAt: string | null;
  agentVersion: string | null;
  /** The agent's last state report (hostname, OS, kernel, memory…), or null before its first. */
  state: Record<string, unknown> | null;
  stateReportedAt: string | null;
  /** What the agent answered about the last variables it applied, or null before it answered. */
  variablesApplied: { revision: number; at: string; error: string | null } | null;
  createdAt: string;
  updatedAt: string;
}

export type DeviceRow = Selectable<DeviceTable>;

/** An id or a whole uuid: one indexed lookup, before any resolving by prefix or name. */
function isDirectRef(ref: DeviceRef): boolean {
  return typeof ref === 'number' || /^[0-9a-f]{32}$/.test(ref);
}

/**
 * The device row `ref` names: an id or uuid directly (any organization's: the caller authorizes it), else
 * through `resolveDeviceRef` among the devices the actor may read. An id of 7 digits or more that is no device's
 * may still be a uuid prefix (`45099294`). Unknown devices answer `not_found`, ambiguous ones `conflict`.
 */
async function deviceRowOf(db: Db, actor: Actor, ref: DeviceRef): Promise<DeviceRow> {
  if (isDirectRef(ref)) {
    const row = await db
      .selectFrom('devices')
      .selectAll()
      .where(typeof ref === 'number' ? 'id' : 'uuid', '=', ref)
      .executeTakeFirst();
    if (row) return row;
    if (typeof ref !== 'number' || ref < 1_000_000) throw notFound('device');
  }
  return resolveDeviceRef(db, actor.principal, String(ref));
}

/** The keys of a device's view, in its schema's order (`deviceSchema`): what `fields` may name. */
export const deviceFields = [
  'id',
  'uuid',
  'name',
  'orgId',
  'fleetId',
  'fleetName',
  'deviceType',
  'notes',
  'status',
  'tags',
  'attributes',
  'onlineVia',
  'vpnAddress',
  'connectedAt',
  'disconnectedAt',
  'lastSeenAt',
  'agentVersion',
  'state',
  'stateReportedAt',
  'variablesApplied',
  'createdAt',
  'updatedAt',
] as const;
export type DeviceField = (typeof deviceFields)[number];
const everyKeyIsAField: SameType<Record<DeviceField, true>, Record<keyof DeviceView, true>> = true;
void everyKeyIsAField;

/** Some keys of a device's view, in its schema's order, its `id` always: what a list asked with `fields` holds. */
export type PartialDeviceView = Pick<DeviceView, 'id'> & Partial<DeviceView>;

/** The columns of `devices` a view reads, in the order they are selected (`devices.*` has more no view reads). */
const viewColumns = [
  'devices.id',
  'devices.uuid',
  'devices.name',
  'devices.org_id',
  'devices.fleet_id',
  'devices.device_type',
  'devices.notes',
  'devices.created_at',
  'devices.updated_at',
  'devices.agent_version',
  'devices.attributes',
  'devices.decommissioned_at',
  'devices.connected_at',
  'devices.disconnected_at',
  'devices.last_seen_at',
  'devices.state',
  'devices.state_reported_at',
  'devices.variables_applied_revision',
  'devices.variables_applied_at',
  'devices.variables_error',
  'devices.vpn_connected_at',
  'devices.vpn_disconnected_at',
  'devices.vpn_address',
  'devices.mender_connected_at',
  'devices.mender_disconnected_at',
] as const;
type ViewColumn = (typeof viewColumns)[number];

const linkColumns = [
  'devices.connected_at',
  'devices.disconnected_at',
  'devices.vpn_connected_at',
  'devices.vpn_disconnected_at',
  'devices.mender_connected_at',
  'devices.mender_disconnected_at',
] as const satisfies ViewColumn[];

/**
 * What each key of a view reads and how it is made from the row: one table for whole views (a device's GET, the
 * list without `fields`) and for lists that ask for some keys only (the web UI's devices table), so that a key
 * is the same value either way. Besides columns of `devices`, a key may need its fleet's name (a join), whether
 * the device waits for an admin (`pendingAuthExpression`) or its tags (a JSON object, aggregated in the query).
 */
const viewFields: {
  [K in DeviceField]: {
    columns: readonly ViewColumn[];
    needs?: 'fleetName' | 'pendingAuth' | 'tags';
    value: (row: ViewRow) => DeviceView[K];
  };
} = {
  id: { columns: ['devices.id'], value: (r) => r.id },
  uuid: { columns: ['devices.uuid'], value: (r) => r.uuid },
  name: { columns: ['devices.name'], value: (r) => r.name },
  orgId: { columns: ['devices.org_id'], value: (r) => r.org_id },
  fleetId: { columns: ['devices.fleet_id'], value: (r) => r.fleet_id },
  fleetName: { columns: [], needs: 'fleetName', value: (r) => r.fleet_name },
  deviceType: { columns: ['devices.device_type'], value: (r) => r.device_type },
  notes: { columns: ['devices.notes'], value: (r) => r.notes },
  status: {
    columns: ['devices.decommissioned_at', ...linkColumns],
    needs: 'pendingAuth',
    value: (r) => deviceStatus(r),
  },
  tags: { columns: [], needs: 'tags', value: (r) => JSON.parse(r.tags) as Record<string, string> },
  attributes: { columns: ['devices.attributes'], value: (r) => recordOf(r.attributes) },
  onlineVia: { columns: linkColumns, value: (r) => onlineLinks(r) },
  vpnAddress: {
    columns: [...linkColumns, 'devices.vpn_address'],
    value: (r) => (onlineLinks(r).includes('vpn') ? r.vpn_address : null),
  },
  connectedAt: { columns: ['devices.connected_at'], value: (r) => iso(r.connected_at) },
  disconnectedAt: { columns: ['devices.disconnected_at'], value: (r) => iso(r.disconnected_at) },
  lastSeenAt: { columns: ['devices.last_seen_at'], value: (r) => iso(r.last_seen_at) },
  agentVersion: { columns: ['devices.agent_version'], value: (r) => r.agent_version },
  state: { columns: ['devices.state'], value: (r) => recordOf(r.state) },
  stateReportedAt: { columns: ['devices.state_reported_at'], value: (r) => iso(r.state_reported_at) },
  variablesApplied: {
    columns: [
      'devices.variables_applied_revision',
      'devices.variables_applied_at',
      'devices.variables_error',
    ],
    value: (r) =>
      r.variables_applied_revision === null || r.variables_applied_at === null
        ? null
        : {
            revision: r.variables_applied_revision,
            at: iso(r.variables_applied_at),
            error: r.variables_error,
          },
  },
  createdAt: { columns: ['devices.created_at'], value: (r) => iso(r.created_at) },
  updatedAt: { columns: ['devices.updated_at'], value: (r) => iso(r.updated_at) },
};

/** The query of the rows `fields` are made from: their columns (in `viewColumns`' order) and what else they need. */
function deviceColumns(db: Db, fields: readonly DeviceField[]) {
  const wanted = new Set(fields.flatMap((f) => viewFields[f].columns));
  const needs = new Set(fields.map((f) => viewFields[f].needs));
  return db
    .selectFrom('devices')
    .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
    .select(viewColumns.filter((c) => wanted.has(c)))
    .$if(needs.has('fleetName'), (qb) => qb.select('fleets.name as fleet_name'))
    .$if(needs.has('pendingAuth'), (qb) => qb.select(pendingAuthExpression().as('pending_auth')))
    .$if(needs.has('tags'), (qb) => qb.select(tagsJsonExpression(db, deviceTags, 'devices.id').as('tags')));
}

/** The rows of whole views: every column a key reads. */
type ViewRow = Selectable<DeviceTable> & { fleet_name: string; pending_auth: number | boolean; tags: string };

/**
 * The rows of devices by id (`which: 'id'`, padded with `padIds`) or by uuid, with what `fields` need, through
 * statements compiled once per database and field set and run by `readNow`: a page of the device list, and every
 * device GET, read them.
 */
function viewRowsNow(
  db: Db,
  which: 'id' | 'uuid',
  refs: (number | string)[],
  fields: readonly DeviceField[] = deviceFields,
): Promise<ViewRow[]> {
  let compiled = compiledViewQueries.get(db);
  if (!compiled) {
    compiled = new Map();
    compiledViewQueries.set(db, compiled);
  }
  const key = `${which}:${refs.length}:${fields.join(',')}`;
  let query = compiled.get(key);
  if (!query) {
    // A client may ask for any of 2^22 field sets: the oldest statements make room (readNow's own caches are bounded).
    if (compiled.size >= 200) compiled.delete(compiled.keys().next().value!);
    const columns = deviceColumns(db, fields);
    query = (
      which === 'id'
        ? columns.where('devices.id', 'in', refs as number[])
        : columns.where('devices.uuid', '=', refs[0] as string)
    ).compile() as CompiledQuery<ViewRow>;
    compiled.set(key, query);
  }
  return readNow(db, query, refs);
}
const compiledViewQueries = new WeakMap<Db, Map<string, CompiledQuery<ViewRow>>>();

/** Whole views of `rows`, built in `deviceSchema`'s key order (see `partialViews`). */
function deviceViews(rows: ViewRow[]): DeviceView[] {
  return partialViews(rows, deviceFields) as DeviceView[];
}

/**
 * The views of `rows` with `fields` only, built in `deviceSchema`'s key order: the device routes write them with
 * `serializeUnchecked`, which must write what zod's parse would (see devices/routes.ts).
 */
function partialViews(rows: ViewRow[], fields: readonly DeviceField[]): PartialDeviceView[] {
  const makers = fields.map((f) => [f, viewFields[f].value] as const);
  return rows.map((row) => {
    const view: Record<string, unknown> = {};
    for (const [field, value] of makers) view[field] = value(row);
    return view as PartialDeviceView;
  });
}

/**
 * The keys a list's `fields` names (comma-separated), in the schema's order and with `id`; every key when absent.
 * An unknown key answers 400 with the known ones.
 */
function parseFields(text: string | undefined): readonly DeviceField[] {
  if (text === undefined) return deviceFields;
  const named = new Set(text.split(','));
  for (const name of named)
    if (!(deviceFields as readonly string[]).includes(name))
      throw new AppError(
        'bad_request',
        `fields: no device key is named "${name}" (known: ${deviceFields.join(', ')})`,
      );
  return deviceFields.filter((f) => f === 'id' || named.has(f));
}

/**
 * A JSON object stored as text, as the view shows it: without an own `__proto__` key, which zod's parse of a
 * record drops (and which `serializeUnchecked` would otherwise write).
 */
function recordOf(text: string | null): Record<string, unknown> | null {
  const record = json.decode<Record<string, unknown>>(text);
  if (record === null || !Object.hasOwn(record, '__proto__')) return record;
  return Object.fromEntries(Object.entries(record).filter(([key]) => key !== '__proto__'));
}

/** The device, after checking the actor may do `action` on it; unknown and invisible devices both answer 404. */
export async function deviceForAction(
  db: Db,
  actor: Actor,
  ref: DeviceRef,
  action: Action,
): Promise<DeviceRow> {
  const row = await deviceRowOf(db, actor, ref);
  authorize(actor.principal, action, { orgId: row.org_id, fleetId: row.fleet_id }, 'device');
  return row;
}

export const deviceSorts = ['name', '-name', 'createdAt', '-createdAt', 'lastSeenAt', '-lastSeenAt'] as const;
/** A list's order; `-` is descending. Ties go by id, ascending; devices never seen come last either way. */
export type DeviceSort = (typeof deviceSorts)[number];

export interface DeviceQuery extends PageRequest {
  orgId?: number | undefined;
  fleetId?: number | undefined;
  /** `key` (has the tag) or `key=value`. */
  tag?: string | undefined;
  /** Free text matched against name and uuid. */
  q?: string | undefined;
  status?: DeviceStatus | undefined;
  deviceType?: string | undefined;
  sort?: DeviceSort | undefined;
  /** A `nextCursor` from the previous page of the same sort: the page starts after that device. */
  after?: string | undefined;
  /** Comma-separated keys of the view to answer (`id` always comes); every key when absent. */
  fields?: string | undefined;
}

export interface DevicePage extends Page<PartialDeviceView> {
  /** Pass as `after` for the next page; null on the last page. */
  nextCursor: string | null;
}

/** Where a page stopped: the sort, the last device's sort value and its id. Opaque to clients. */
type Cursor = [sort: DeviceSort, value: string | number | null, id: number];

function encodeCursor(sort: DeviceSort, row: Pick<DeviceRow, 'id' | 'name' | 'last_seen_at'>): string {
  const value = sort.endsWith('name') ? row.name : sort.endsWith('lastSeenAt') ? row.last_seen_at : row.id;
  return Buffer.from(JSON.stringify([sort, value, row.id] satisfies Cursor)).toString('base64url');
}

function decodeCursor(text: string, sort: DeviceSort): Cursor {
  let cursor: unknown;
  try {
    cursor = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    cursor = undefined;
  }
  const value: unknown = Array.isArray(cursor) ? cursor[1] : undefined;
  const valid =
    Array.isArray(cursor) &&
    cursor.length === 3 &&
    Number.isSafeInteger(cursor[2]) &&
    (sort.endsWith('name')
      ? typeof value === 'string'
      : sort.endsWith('lastSeenAt')
        ? value === null || Number.isSafeInteger(value)
        : Number.isSafeInteger(value));
  if (!valid) throw new AppError('bad_request', 'after: not a cursor this list gave (use nextCursor)');
  const [cursorSort] = cursor as Cursor;
  if (cursorSort !== sort)
    throw new AppError('bad_request', `after: the cursor is for sort=${cursorSort}, not sort=${sort}`);
  return cursor as Cursor;
}

/**
 * One page of the devices the actor may read, with the total matching the filters.
 *
 * What a page costs, with 100,000 devices in an organization: the page is read along an index in the sort's
 * order (`devices_org_name`, `devices_org_last_seen`, the primary key), stopping after `limit + 1` matching
 * rows, and the filters are checked on the rows read; `after` (keyset paging) starts the read where the last
 * page ended, while `page` skips `(page - 1) × limit` rows first. The total comes from `totals` when given
 * (kept between requests, see `DeviceTotals`), else from a count of every matching row.
 */
export async function listDevices(
  deps: ServiceDeps,
  actor: Actor,
  q: DeviceQuery,
  totals?: DeviceTotals,
): Promise<DevicePage> {
  const scope = readScope(actor.principal, 'device.read');
  const fields = parseFields(q.fields);
  let query = deps.db
    .selectFrom('devices')
    .where(scopeCondition(scope, 'devices.org_id', 'devices.fleet_id'));
  if (q.orgId !== undefined) query = query.where('devices.org_id', '=', q.orgId);
  if (q.fleetId !== undefined) query = query.where('devices.fleet_id', '=', q.fleetId);
  if (q.tag) {
    const eq = q.tag.indexOf('=');
    const key = eq < 0 ? q.tag : q.tag.slice(0, eq);
    const value = eq < 0 ? undefined : q.tag.slice(eq + 1);
    query = query.where('devices.id', 'in', (eb) =>
      eb
        .selectFrom('device_tags')
        .select('device_tags.device_id')
        .where('device_tags.key', '=', key)
        .$if(value !== undefined, (sq) => sq.where('device_tags.value', '=', value!)),
    );
  }
  const text = q.q;
  if (text) {
    // A uuid is 32 hex digits: text with any other character can only be in the name, and the list saves
    // checking every uuid it reads.
    const inUuid = /^[0-9a-f]+$/i.test(text);
    const candidates = await textCandidates(deps.db, text, inUuid);
    if (candidates)
      query = query.where(
        deps.db.getExecutor().adapter instanceof PostgresAdapter
          ? sql<SqlBool>`devices.id = any(${candidates}::int[])`
          : sql<SqlBool>`devices.id in (select value from json_each(${JSON.stringify(candidates)}))`,
      );
    query = query.where(
      inUuid
        ? (eb) => eb.or([containsText('devices.name', text), containsText('devices.uuid', text)])
        : containsText('devices.name', text),
    );
  }
  if (q.status) query = query.where(statusCondition(q.status));
  if (q.deviceType !== undefined) query = query.where('devices.device_type', '=', q.deviceType);

  const sort = q.sort ?? 'name';
  const after = q.after === undefined ? undefined : decodeCursor(q.after, sort);
  if (after && q.page !== 1) throw new AppError('bad_request', 'after and page do not go together');
  const descending = sort.startsWith('-');
  const offset = (q.page - 1) * q.limit;
  // One row more than the page tells whether another page follows.
  const wanted = q.limit + 1;

  // The page's ids first, read along the sort's index alone; their rows, fleets' names and statuses after,
  // for those ids only (joined in one query, the planner may read every device of a fleet and sort them).
  const page = (
    where: typeof query,
    orderBy: 'devices.name' | 'devices.id' | 'devices.last_seen_at',
    direction: 'asc' | 'desc' = descending ? 'desc' : 'asc',
  ) =>
    where
      .select(['devices.id', 'devices.name', 'devices.last_seen_at'])
      .orderBy(orderBy, direction)
      .$if(orderBy !== 'devices.id', (qb) => qb.orderBy('devices.id', 'asc'));

  let rows: Pick<DeviceRow, 'id' | 'name' | 'last_seen_at'>[];
  if (sort.endsWith('lastSeenAt')) {
    // Devices never seen come last in both directions. Read as two runs, the seen ones along
    // devices_org_last_seen and then the never-seen ones by id, since neither database reads an index in
    // "nulls last" order for both directions.
    const seen = query.where('devices.last_seen_at', 'is not', null);
    const never = query.where('devices.last_seen_at', 'is', null);
    if (offset > 0) {
      // Offset paging: skip across both runs. Counting the seen devices reads every one of them; keyset
      // paging (`after`) does not.
      const seenCount = Number(
        (await seen.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n,
      );
      rows =
        offset < seenCount
          ? await page(seen, 'devices.last_seen_at').limit(wanted).offset(offset).execute()
          : [];
      if (rows.length < wanted)
        rows.push(
          ...(await page(never, 'devices.id', 'asc')
            .limit(wanted - rows.length)
            .offset(Math.max(0, offset - seenCount))
            .execute()),
        );
    } else {
      const [, cursorValue, id] = after ?? [sort, undefined, 0];
      const value = cursorValue as number | null | undefined;
      rows =
        value === null
          ? []
          : await page(
              value === undefined
                ? seen
                : seen
                    .where('devices.last_seen_at', descending ? '<=' : '>=', value)
                    .where((eb) =>
                      eb.or([
                        eb('devices.last_seen_at', descending ? '<' : '>', value),
                        eb('devices.id', '>', id),
                      ]),
                    ),
              'devices.last_seen_at',
            )
              .limit(wanted)
              .execute();
      if (rows.length < wanted)
        rows.push(
          ...(await page(value === null ? never.where('devices.id', '>', id) : never, 'devices.id', 'asc')
            .limit(wanted - rows.length)
            .execute()),
        );
    }
  } else {
    const column = sort.endsWith('name') ? 'devices.name' : 'devices.id';
    let where = query;
    if (after) {
      const [, value, id] = after;
      where =
        column === 'devices.id'
          ? query.where('devices.id', descending ? '<' : '>', id)
          : // The range bound (<= or >=) lets the index be read from the cursor on; the `or` alone would not.
            query
              .where('devices.name', descending ? '<=' : '>=', value as string)
              .where((eb) =>
                eb.or([
                  eb('devices.name', descending ? '<' : '>', value as string),
                  eb('devices.id', '>', id),
                ]),
              );
    }
    rows = await page(where, column).limit(wanted).offset(offset).execute();
  }

  const more = rows.length > q.limit;
  if (more) rows = rows.slice(0, q.limit);
  const count = async () =>
    Number((await query.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
  const filters = [scope, q.orgId, q.fleetId, q.tag, q.q, q.status, q.deviceType];
  const total = totals
    ? await totals.total(JSON.stringify(filters), q.status !== undefined, count)
    : await count();
  const order = new Map(rows.map((r, i) => [r.id, i]));
  const full = rows.length ? await viewRowsNow(deps.db, 'id', padIds([...order.keys()]), fields) : [];
  full.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
  return {
    items: partialViews(full, fields),
    total,
    page: q.page,
    limit: q.limit,
    nextCursor: more ? encodeCursor(sort, rows[rows.length - 1]!) : null,
  };
}

/**
 * At most this many devices are taken from the text index for a search. More match a text found in one device of
 * a hundred or more: reading the list's own index meets 50 of them within a few thousand entries.
 */
const TEXT_CANDIDATES_MAX = 1_000;

/**
 * The ids of the devices whose name (or uuid, with `inUuid`) holds `text`, ignoring case, from the database's
 * trigram index (migration 0017: SQLite's FTS5 `device_text`, PostgreSQL's pg_trgm indexes), when it can tell and
 * they are few; `undefined` when the list must read its sort's index instead: for text of fewer than 3 characters
 * (no trigram) or other than printable ASCII (which the index may fold otherwise than `containsText`), on a
 * PostgreSQL database without pg_trgm, and when more than `TEXT_CANDIDATES_MAX` devices of any organization match.
 * The list still checks `containsText` on each device.
 */
async function textCandidates(db: Db, text: string, inUuid: boolean): Promise<number[] | undefined> {
  if (text.length < 3 || !/^[\x20-\x7e]*$/.test(text)) return undefined;
  const queries = await textQueriesOf(db);
  if (!queries) return undefined;
  // A text found too often a moment ago is not asked of the index again: reading its first thousand matches to
  // learn that costs about a millisecond, as much as the rest of the page (only the way the list reads changes).
  // Requests for the same text at once wait for one reading.
  let memo = textMemos.get(db);
  if (!memo) {
    memo = { common: new Map(), reading: new Map() };
    textMemos.set(db, memo);
  }
  const key = `${inUuid ? 'uuid' : 'name'}:${text.toLowerCase()}`;
  const knownCommon = memo.common.get(key);
  if (knownCommon !== undefined && Date.now() - knownCommon < COMMON_TEXT_MS) return undefined;
  const reading = memo.reading.get(key);
  if (reading) return reading;
  const limit = TEXT_CANDIDATES_MAX + 1;
  // An FTS5 phrase (the text as it is, its quotes doubled; a column filter keeps it to names), or a pattern.
  const pattern = likeContains(text.toLowerCase());
  const parameters = queries.fts
    ? [`${inUuid ? '' : 'name : '}"${text.replaceAll('"', '""')}"`, limit]
    : inUuid
      ? [pattern, pattern, limit]
      : [pattern, limit];
  const query = inUuid ? queries.nameOrUuid : queries.name;
  const { common } = memo;
  const read = (async () => {
    // PostgreSQL plans each search for its own pattern: a prepared statement's generic plan would not know how
    // rare the text is, and would read every device instead of the index (seen: 47 ms instead of 3 ms).
    const rows: { id: number }[] = queries.fts
      ? await readNow(db, query, parameters)
      : (await db.executeQuery<{ id: number }>({ ...query, parameters })).rows;
    if (rows.length <= TEXT_CANDIDATES_MAX) return rows.map((r) => r.id);
    common.delete(key);
    if (common.size >= 1_000) common.delete(common.keys().next().value!);
    common.set(key, Date.now());
    return undefined;
  })();
  memo.reading.set(key, read);
  try {
    return await read;
  } finally {
    memo.reading.delete(key);
  }
}
/** How long a text found in more than `TEXT_CANDIDATES_MAX` devices is taken as common without asking again. */
const COMMON_TEXT_MS = 10 * 60 * 1000;
/** Per database: texts found common (when), and the readings of the index under way. */
const textMemos = new WeakMap<
  Db,
  { common: Map<string, number>; reading: Map<string, Promise<number[] | undefined>> }
>();

interface TextQueries {
  fts: boolean;
  name: CompiledQuery<{ id: number }>;
  nameOrUuid: CompiledQuery<{ id: number }>;
}

/**
 * The text index's queries for `db`, compiled once; `undefined` on a PostgreSQL database without the indexes, asked
 * again at the next search (an administrator may make them meanwhile: `fleetgate doctor` says how).
 */
function textQueriesOf(db: Db): Promise<TextQueries | undefined> {
  let queries = textQueries.get(db);
  if (!queries) {
    queries = (async () => {
      if (!(db.getExecutor().adapter instanceof PostgresAdapter)) {
        const fts = sql<{
          id: number;
        }>`select rowid as id from device_text where device_text match ${''} limit ${0}`;
        return { fts: true, name: fts.compile(db), nameOrUuid: fts.compile(db) };
      }
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_indexes
        where schemaname = current_schema() and indexname in ('devices_name_trgm', 'devices_uuid_trgm')`.execute(
        db,
      );
      if (rows[0]?.n !== 2) return undefined;
      // `lower(name)` and `uuid` as the indexes have them; the same pattern for both.
      const name = sql<{
        id: number;
      }>`select id from devices where lower(name) like ${''} escape '\\' limit ${0}`;
      const nameOrUuid = sql<{ id: number }>`select id from devices
        where lower(name) like ${''} escape '\\' or uuid::text like ${''} escape '\\' limit ${0}`;
      return { fts: false, name: name.compile(db), nameOrUuid: nameOrUuid.compile(db) };
    })();
    textQueries.set(db, queries);
    void queries.then(
      (found) => found ?? textQueries.delete(db),
      () => textQueries.delete(db),
    );
  }
  return queries;
}
const textQueries = new WeakMap<Db, Promise<TextQueries | undefined>>();

export async function getDevice(deps: ServiceDeps, actor: Actor, ref: DeviceRef): Promise<DeviceView> {
  // A prefix or a name is resolved to the device's id first (resolve.ts).
  const direct = isDirectRef(ref) ? ref : (await deviceRowOf(deps.db, actor, ref)).id;
  // The row with its fleet's name in one query, checked as deviceForAction checks it.
  let [row] = await viewRowsNow(deps.db, typeof direct === 'number' ? 'id' : 'uuid', [direct]);
  // No device has that id: a long one may be a uuid prefix of digits alone (deviceRowOf looks it up so).
  if (!row && typeof direct === 'number' && direct >= 1_000_000)
    [row] = await viewRowsNow(deps.db, 'id', [(await deviceRowOf(deps.db, actor, direct)).id]);
  if (!row) throw notFound('device');
  authorize(actor.principal, 'device.read', { orgId: row.org_id, fleetId: row.fleet_id }, 'device');
  return deviceViews([row])[0]!;
}

export function newDeviceUuid(): string {
  return randomBytes(16).toString('hex');
}

/**
 * The device limit: one rule for every way a device comes to be. An organization's `device_limit` bounds its
 * **admitted** devices (unset: unlimited; 0: none). A device is admitted when it is not decommissioned and
 * either enrolls without auth sets (made by a person, a provisioning key, a recovery adoption or an import:
 * it may work at once) or holds an accepted auth set. A device that only waits with preauthorized, pending or
 * rejected auth sets is outside the limit until one is accepted: preauthorizing more devices than the limit is
 * allowed (as in Mender), the limit applies when they are accepted.
 *
 * `assertRoomForDevice` is called, inside the transaction that admits the device, by `insertDevice` and when
 * an auth set is accepted. It takes the organization's row lock before it counts, so admissions from every
 * path at once count in turn and never go past the limit. Over the limit it throws `unprocessable` (422, as
 * the Mender management API answers an accept); a device's own auth request answers 401 instead
 * (`isDeviceLimitReached`). Lowering the limit below the count removes no device; it only stops new ones.
 */
export async function assertRoomForDevice(trx: Db, orgId: number, admitting?: number): Promise<void> {
  const org = await lockOrganization(trx, orgId);
  if (!org || org.deviceLimit === null) return;
  // A device admitted already (a second accepted key of the same device) takes no new place.
  if (admitting !== undefined) {
    const already = await admittedDevices(trx, orgId).where('devices.id', '=', admitting).executeTakeFirst();
    if (Number(already?.n) > 0) return;
  }
  const { n } = await admittedDevices(trx, orgId).executeTakeFirstOrThrow();
  if (Number(n) >= org.deviceLimit)
    throw new AppError(
      'unprocessable',
      `the organization's device limit (${org.deviceLimit}) is reached: raise it (PUT /api/v1/orgs/${orgId}/device-limit), or decommission or reject a device`,
      { details: { limit: org.deviceLimit, reason: DEVICE_LIMIT_REACHED } },
    );
}

const DEVICE_LIMIT_REACHED = 'device_limit';

/** Whether `err` is `assertRoomForDevice`'s refusal. */
export function isDeviceLimitReached(err: unknown): boolean {
  return (
    err instanceof AppError &&
    (err.details as { reason?: string } | undefined)?.reason === DEVICE_LIMIT_REACHED
  );
}

/** Counts the organization's admitted devices (see `assertRoomForDevice`). */
function admittedDevices(db: Db, orgId: number) {
  const setsOf = (eb: ExpressionBuilder<Database, 'devices'>) =>
    eb.selectFrom('auth_sets').select('auth_sets.id').whereRef('auth_sets.device_id', '=', 'devices.id');
  return db
    .selectFrom('devices')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('devices.org_id', '=', orgId)
    .where('devices.decommissioned_at', 'is', null)
    .where((eb) =>
      eb.or([
        eb.not(eb.exists(setsOf(eb))),
        eb.exists(setsOf(eb).where('auth_sets.status', '=', 'accepted')),
      ]),
    );
}

/** The organization's device limit and how many devices it counts (admin and Mender's `limits/max_devices`). */
export async function getDeviceLimit(
  deps: ServiceDeps,
  actor: Actor,
  orgId: number,
): Promise<{ orgId: number; limit: number | null; accepted: number }> {
  authorize(actor.principal, 'org.read', { orgId }, 'organization');
  const limit = await orgDeviceLimit(deps.db, orgId);
  if (limit === undefined) throw notFound('organization');
  const { n } = await admittedDevices(deps.db, orgId).executeTakeFirstOrThrow();
  return { orgId, limit, accepted: Number(n) };
}

/** Sets the organization's device limit (owners and admins; null: unlimited). */
export async function setDeviceLimit(
  deps: ServiceDeps,
  actor: Actor,
  orgId: number,
  limit: number | null,
): Promise<{ orgId: number; limit: number | null; accepted: number }> {
  await write(deps, actor, { action: 'org.device_limit', resourceType: 'organization' }, async (trx) => {
    authorize(actor.principal, 'org.read', { orgId }, 'organization');
    authorize(actor.principal, 'org.update', { orgId }, 'organization');
    const changed = await setOrgDeviceLimit(trx, orgId, limit);
    if (!changed) throw notFound('organization');
    return { value: undefined, orgId, resourceId: orgId, details: { from: changed.from, to: limit } };
  });
  return getDeviceLimit(deps, actor, orgId);
}

/** A device to create: see `insertDevice`. */
export interface NewDevice {
  fleet: { id: number; org_id: number };
  deviceType: string;
  /** 32 hex digits (any case), chosen by the device or a person; unset: the server picks one. */
  uuid?: string | undefined;
  /** Unset: `device-` and the uuid's first 7 digits. */
  name?: string | undefined;
  notes?: string | undefined;
  osVersion?: string | null | undefined;
  agentVersion?: string | null | undefined;
  /**
   * `admitted`: the device may work at once and takes its place under the device limit now. `awaiting`: a
   * preauthorized device that waits for its auth set to be accepted; it takes its place then.
   */
  admission: 'admitted' | 'awaiting';
}

/**
 * The answer for a uuid some device already has. Uuids are unique across organizations, so the answer is the
 * same wherever that device is: it never says that the uuid exists or where, which would let anyone who may
 * create devices probe other organizations for uuids.
 */
export function uuidUnavailable(): AppError {
  return new AppError('conflict', 'this uuid cannot be used: choose another', {
    details: { reason: 'uuid_unavailable' },
  });
}

/**
 * Creates a device row: the one way every feature makes one, inside the caller's transaction (which has
 * authorized the creation and audits it). Checks the uuid (well formed, not taken: `uuidUnavailable`), the
 * device type (built in or the organization's own), the device limit for an admitted device
 * (`assertRoomForDevice`), gives the default name, and drops the recovery candidates of the uuid: the device is
 * known again. Throws `bad_request`, `conflict` or `unprocessable` after reads only, so the caller's transaction
 * stays usable (PostgreSQL).
 */
export async function insertDevice(
  trx: Db,
  input: NewDevice,
): Promise<{ id: number; uuid: string; name: string; org_id: number; fleet_id: number }> {
  const uuid = input.uuid?.toLowerCase() ?? newDeviceUuid();
  if (!/^[0-9a-f]{32}$/.test(uuid)) throw new AppError('bad_request', 'a device uuid is 32 hex digits');
  const orgId = input.fleet.org_id;
  await assertDeviceType(trx, orgId, input.deviceType);
  const taken = await trx.selectFrom('devices').select('id').where('uuid', '=', uuid).executeTakeFirst();
  if (taken) throw uuidUnavailable();
  if (input.admission === 'admitted') await assertRoomForDevice(trx, orgId);
  const now = Date.now();
  const device = await trx
    .insertInto('devices')
    .values({
      uuid,
      org_id: orgId,
      fleet_id: input.fleet.id,
      name: input.name ?? `device-${uuid.slice(0, 7)}`,
      device_type: input.deviceType,
      notes: input.notes ?? '',
      os_version: input.osVersion ?? null,
      agent_version: input.agentVersion ?? null,
      created_at: now,
      updated_at: now,
    })
    .returning(['id', 'uuid', 'name', 'org_id', 'fleet_id'])
    .executeTakeFirstOrThrow();
  await trx.deleteFrom('recovery_candidates').where('uuid', '=', uuid).execute();
  return device;
}

export async function createDevice(
  deps: ServiceDeps,
  actor: Actor,
  input: {
    fleetId: number;
    deviceType?: string | undefined;
    name?: string | undefined;
    uuid?: string | undefined;
    notes?: string | undefined;
  },
): Promise<DeviceView> {
  const id = await write(deps, actor, { action: 'device.create', resourceType: 'device' }, async (trx) => {
    const fleet = await fleetForAction(trx, actor, input.fleetId, 'device.create');
    const deviceType = input.deviceType ?? fleet.default_device_type;
    if (!deviceType)
      throw new AppError('bad_request', 'deviceType is required (the fleet has no default device type)');
    const row = await insertDevice(trx, {
      fleet,
      deviceType,
      uuid: input.uuid,
      name: input.name,
      notes: input.notes,
      admission: 'admitted',
    });
    return {
      value: row.id,
      orgId: fleet.org_id,
      resourceId: row.uuid,
      details: { fleetId: fleet.id, deviceType },
    };
  });
  return getDevice(deps, actor, id);
}

export async function updateDevice(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
  input: {
    name?: string | undefined;
    notes?: string | undefined;
    deviceType?: string | undefined;
    fleetId?: number | undefined;
  },
): Promise<DeviceView> {
  const updated = await write(
    deps,
    actor,
    { action: 'device.update', resourceType: 'device' },
    async (trx) => {
      const device = await deviceForAction(trx, actor, ref, 'device.update');
      if (input.fleetId !== undefined && input.fleetId !== device.fleet_id) {
        // Moving needs the right to add devices to the target fleet, which must be in the same organization.
        const target = await fleetForAction(trx, actor, input.fleetId, 'device.create');
        if (target.org_id !== device.org_id)
          throw new AppError('bad_request', 'a device moves only between fleets of its organization');
      }
      if (input.deviceType !== undefined) await assertDeviceType(trx, device.org_id, input.deviceType);
      await trx
        .updateTable('devices')
        .set({
          ...(input.name !== undefined ? { name: input.name } : {}),
          ...(input.notes !== undefined ? { notes: input.notes } : {}),
          ...(input.deviceType !== undefined ? { device_type: input.deviceType } : {}),
          ...(input.fleetId !== undefined ? { fleet_id: input.fleetId } : {}),
          updated_at: Date.now(),
        })
        .where('id', '=', device.id)
        .execute();
      const details: Record<string, unknown> = { ...input };
      const moved = input.fleetId !== undefined && input.fleetId !== device.fleet_id;
      // In another fleet, the device's effective variables are the new fleet's (and its own).
      if (moved) await bumpVariablesRevision(trx, { deviceId: device.id });
      if (input.fleetId !== undefined) details.fromFleetId = device.fleet_id;
      return { value: { id: device.id, moved }, orgId: device.org_id, resourceId: device.uuid, details };
    },
  );
  if (updated.moved) deps.events.emit('variables.changed', { deviceId: updated.id });
  return getDevice(deps, actor, updated.id);
}

export async function deleteDevice(deps: ServiceDeps, actor: Actor, ref: DeviceRef): Promise<void> {
  await write(deps, actor, { action: 'device.delete', resourceType: 'device' }, async (trx) => {
    const device = await deviceForAction(trx, actor, ref, 'device.delete');
    await trx.deleteFrom('devices').where('id', '=', device.id).execute();
    return {
      value: undefined,
      orgId: device.org_id,
      resourceId: device.uuid,
      details: { name: device.name },
    };
  });
}

export async function listDeviceTags(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
): Promise<Record<string, string>> {
  const device = await deviceForAction(deps.db, actor, ref, 'device.read');
  return (await tagsOf(deps.db, deviceTags, [device.id])).get(device.id) ?? {};
}

export async function setDeviceTag(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
  key: string,
  value: string,
): Promise<void> {
  await write(deps, actor, { action: 'device.tag.set', resourceType: 'device' }, async (trx) => {
    const device = await deviceForAction(trx, actor, ref, 'device.tag');
    await putTag(trx, deviceTags, device.id, key, value);
    return { value: undefined, orgId: device.org_id, resourceId: device.uuid, details: { key, value } };
  });
}

export async function removeDeviceTag(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
  key: string,
): Promise<void> {
  await write(deps, actor, { action: 'device.tag.delete', resourceType: 'device' }, async (trx) => {
    const device = await deviceForAction(trx, actor, ref, 'device.tag');
    if (!(await deleteTag(trx, deviceTags, device.id, key))) throw notFound('tag');
    return { value: undefined, orgId: device.org_id, resourceId: device.uuid, details: { key } };
  });
}

/** What live views show of a device's presence (the web UI's device lists; `GET /api/v1/events`). */
export interface DevicePresence {
  id: number;
  uuid: string;
  orgId: number;
  fleetId: number;
  status: DeviceStatus;
  onlineVia: LinkKind[];
  vpnAddress: string | null;
  connectedAt: string | null;
  disconnectedAt: string | null;
  lastSeenAt: string | null;
}

/**
 * The presence of the devices `ids` (those that still exist), unscoped: the caller shows each one only to the
 * people who may read it (`can(principal, 'device.read', …)`).
 */
export async function devicePresence(db: Db, ids: readonly number[]): Promise<DevicePresence[]> {
  const views: DevicePresence[] = [];
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await db
      .selectFrom('devices')
      .select([
        'id',
        'uuid',
        'org_id',
        'fleet_id',
        'connected_at',
        'disconnected_at',
        'vpn_connected_at',
        'vpn_disconnected_at',
        'vpn_address',
        'mender_connected_at',
        'mender_disconnected_at',
        'last_seen_at',
        'decommissioned_at',
      ])
      .select(pendingAuthExpression().as('pending_auth'))
      .where('id', 'in', ids.slice(i, i + 500))
      .execute();
    for (const r of rows) {
      views.push({
        id: r.id,
        uuid: r.uuid,
        orgId: r.org_id,
        fleetId: r.fleet_id,
        status: deviceStatus(r),
        onlineVia: onlineLinks(r),
        vpnAddress: onlineLinks(r).includes('vpn') ? r.vpn_address : null,
        connectedAt: iso(r.connected_at),
        disconnectedAt: iso(r.disconnected_at),
        lastSeenAt: iso(r.last_seen_at),
      });
    }
  }
  return views;
}
