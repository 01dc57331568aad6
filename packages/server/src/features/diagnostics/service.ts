import { Duplex } from 'node:stream';
import {
  DIAGNOSTICS_SERVICE,
  type DiagnosticsCheck,
  type DiagnosticsReport,
  type DiagnosticsStatus,
  diagnosticsReportSchema,
  diagnosticsStatuses,
  MAX_DIAGNOSTICS_REPORT,
  StreamErrorCode,
} from '@fleetgate/protocol';
import type { Selectable } from 'kysely';
import type { DeviceDiagnosticsTable } from '../../db/schema.ts';
import type { Actor } from '../../infra/access/index.ts';
import { json } from '../../infra/db/index.ts';
import { AppError, notFound } from '../../infra/errors/index.ts';
import { iso } from '../../infra/http/schemas.ts';
import { type Page, type PageRequest, type ServiceDeps, write } from '../../infra/service/index.ts';
import { type DeviceRef, deviceForAction } from '../devices/index.ts';
import type { StreamRouter, StreamSession } from '../remote-access/index.ts';

/**
 * Remote diagnostics (issue 16): the agent's fixed, versioned set of read-only checks, run on a person's request
 * through the stream router (surface `diagnostics`, action `device.diagnose`: operators and above, no shell rights
 * needed), and each report stored per device with history.
 *
 * A run answers within `DIAGNOSTICS_TIMEOUT_MS` whatever the device does: at once when it is offline
 * (`unavailable`), `conflict` when its agent is too old to know diagnostics, `bad_gateway` when its report is
 * oversized or malformed (nothing is stored then), `unavailable` when it does not answer in time.
 */

/**
 * How long a run may take, from asking the device to its whole report, in milliseconds (20 s): the agent's checks
 * run at once with 5 s each, so a device on a slow link still answers well within it.
 */
export const DIAGNOSTICS_TIMEOUT_MS = 20_000;

/** Reports kept per device: storing a new one drops the oldest beyond this. */
export const DIAGNOSTICS_KEPT_PER_DEVICE = 50;

export type DiagnosticsCounts = Record<DiagnosticsStatus, number>;

/** A stored run, as lists show it. */
export interface DiagnosticsRunSummary {
  id: number;
  device: { id: number; uuid: string };
  /** The stream router's session of the run (`GET /api/v1/sessions/:id`). */
  sessionId: string;
  requestedBy: { id: number | null; label: string };
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** The version of the agent's set of checks, and the agent's version. */
  version: number;
  agentVersion: string;
  /** The worst status among the checks. */
  status: DiagnosticsStatus;
  counts: DiagnosticsCounts;
}

/** A stored run with its checks. */
export interface DiagnosticsRunView extends DiagnosticsRunSummary {
  checks: DiagnosticsCheck[];
}

/** From best to worst: a run's status is its worst check's. */
const severity: readonly DiagnosticsStatus[] = ['ok', 'unavailable', 'timed_out', 'warning', 'failed'];

function worstOf(checks: readonly DiagnosticsCheck[]): DiagnosticsStatus {
  let worst: DiagnosticsStatus = 'ok';
  for (const check of checks)
    if (severity.indexOf(check.status) > severity.indexOf(worst)) worst = check.status;
  return worst;
}

function countsOf(checks: readonly DiagnosticsCheck[]): DiagnosticsCounts {
  const counts = Object.fromEntries(diagnosticsStatuses.map((s) => [s, 0])) as DiagnosticsCounts;
  for (const check of checks) counts[check.status] += 1;
  return counts;
}

type Row = Selectable<DeviceDiagnosticsTable>;

function summaryOf(row: Row, deviceUuid: string): DiagnosticsRunSummary {
  return {
    id: row.id,
    device: { id: row.device_id, uuid: deviceUuid },
    sessionId: row.session_id,
    requestedBy: { id: row.requested_by, label: row.requested_by_label },
    startedAt: iso(Number(row.started_at)),
    finishedAt: iso(Number(row.finished_at)),
    durationMs: Number(row.finished_at) - Number(row.started_at),
    version: row.version,
    agentVersion: row.agent_version,
    status: row.status as DiagnosticsStatus,
    counts: json.decode<DiagnosticsCounts>(row.counts)!,
  };
}

/**
 * The device end of a diagnostics stream as the router relays it: sends nothing (its end at once, which tells
 * the agent no more comes) and collects what the device writes, refusing more than `MAX_DIAGNOSTICS_REPORT`
 * bytes (the write fails, which resets the device's stream).
 */
class ReportCollector extends Duplex {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  /** The device ended its stream (FIN) after writing: the report is complete. */
  complete = false;
  /** Why it was refused, when it was. */
  refusal: string | undefined;

  override _read(): void {
    this.push(null);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.size += chunk.length;
    if (this.size > MAX_DIAGNOSTICS_REPORT) {
      this.refusal = `its report exceeds ${MAX_DIAGNOSTICS_REPORT / 1024} KiB`;
      done(new Error(`the diagnostics report exceeds ${MAX_DIAGNOSTICS_REPORT} bytes`));
      return;
    }
    this.chunks.push(chunk);
    done();
  }

  override _final(done: (error?: Error | null) => void): void {
    this.complete = true;
    done();
  }

  text(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Parses and validates what a device sent as its report; anything else is the device's fault (`bad_gateway`). */
export function parseReport(bytes: Buffer, deviceName: string): DiagnosticsReport {
  const invalid = (why: string) =>
    new AppError('bad_gateway', `device ${deviceName} sent an invalid diagnostics report: ${why}`, {
      details: { reason: 'invalid_report' },
    });
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw invalid('it is not UTF-8 JSON');
  }
  const parsed = diagnosticsReportSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw invalid(`at ${issue?.path.join('.') || '(root)'}: ${issue?.message}`.slice(0, 300));
  }
  return parsed.data;
}

/** Rejects with `error()` after `ms`, unless `promise` settles first. */
async function within<T>(promise: Promise<T>, ms: number, error: () => AppError): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(error()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs the device's diagnostics now and stores the report: `device.diagnose` (operators and above; viewers get
 * `forbidden`, other organizations `not_found`). Answers the stored run. The run is a session of the stream
 * router (surface `diagnostics`), audited as such, and its stored report a write (`device.diagnostics.run`).
 */
export async function runDeviceDiagnostics(
  deps: ServiceDeps,
  router: StreamRouter,
  actor: Actor,
  ref: DeviceRef,
  options: { timeoutMs?: number } = {},
): Promise<DiagnosticsRunView> {
  const timeoutMs = options.timeoutMs ?? DIAGNOSTICS_TIMEOUT_MS;
  const startedAt = Date.now();
  const deadline = startedAt + timeoutMs;
  const opening = router.open({
    caller: { actor, current: true },
    device: { ref },
    target: { service: DIAGNOSTICS_SERVICE },
    surface: 'diagnostics',
  });
  let session: StreamSession;
  try {
    session = await within(
      opening,
      timeoutMs,
      () =>
        new AppError(
          'unavailable',
          `the device did not take the diagnostics request within ${timeoutMs / 1000} s`,
          {
            details: { reason: 'timeout' },
          },
        ),
    );
  } catch (err) {
    // An open that succeeds after we gave up: its stream is closed unused, which ends its session.
    opening.then(
      (late) => late.stream.destroy(),
      () => {},
    );
    throw tooOldIfRefused(err);
  }
  const name = session.device.name;
  const collector = new ReportCollector();
  const relayed = session.relay(collector);
  try {
    await within(
      relayed,
      Math.max(0, deadline - Date.now()),
      () =>
        new AppError(
          'unavailable',
          `device ${name} did not send its diagnostics within ${timeoutMs / 1000} s`,
          { details: { reason: 'timeout' } },
        ),
    );
  } catch (err) {
    session.stream.destroy(new Error('no diagnostics report in time'));
    await relayed.catch(() => {});
    throw err;
  }
  if (collector.refusal) {
    throw new AppError(
      'bad_gateway',
      `device ${name} sent an invalid diagnostics report: ${collector.refusal}`,
      {
        details: { reason: 'report_too_large' },
      },
    );
  }
  if (!collector.complete) {
    throw new AppError('bad_gateway', `device ${name} ended its diagnostics stream without a report`, {
      details: { reason: 'invalid_report' },
    });
  }
  const report = parseReport(collector.text(), name);
  return storeReport(deps, actor, session, report, startedAt);
}

/** The router's refusal by a device whose agent does not know the diagnostics service, said as such. */
function tooOldIfRefused(err: unknown): unknown {
  if (!(err instanceof AppError) || err.code !== 'unavailable') return err;
  const stream = (err.details as { stream?: string } | undefined)?.stream;
  if (stream !== StreamErrorCode.notAllowed) return err;
  return new AppError(
    'conflict',
    `the device's agent is too old for remote diagnostics: update fleetgate-agent on the device (${err.message})`,
    { details: { reason: 'agent_too_old' }, cause: err },
  );
}

async function storeReport(
  deps: ServiceDeps,
  actor: Actor,
  session: StreamSession,
  report: DiagnosticsReport,
  startedAt: number,
): Promise<DiagnosticsRunView> {
  const { device } = session;
  const principal = actor.principal;
  const requestedBy =
    principal.type === 'user'
      ? { id: principal.userId, label: principal.email }
      : { id: null, label: principal.type };
  const status = worstOf(report.checks);
  const counts = countsOf(report.checks);
  return write(deps, actor, { action: 'device.diagnostics.run', resourceType: 'device' }, async (trx) => {
    const row = await trx
      .insertInto('device_diagnostics')
      .values({
        org_id: device.orgId,
        device_id: device.id,
        session_id: session.id,
        requested_by: requestedBy.id,
        requested_by_label: requestedBy.label.slice(0, 320),
        started_at: startedAt,
        finished_at: Date.now(),
        version: report.version,
        agent_version: report.agentVersion,
        status,
        counts: json.encode(counts),
        checks: json.encode(report.checks),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    // History: the newest DIAGNOSTICS_KEPT_PER_DEVICE of the device.
    await trx
      .deleteFrom('device_diagnostics')
      .where('device_id', '=', device.id)
      .where('id', 'not in', (eb) =>
        eb
          .selectFrom('device_diagnostics')
          .select('id')
          .where('device_id', '=', device.id)
          .orderBy('started_at', 'desc')
          .orderBy('id', 'desc')
          .limit(DIAGNOSTICS_KEPT_PER_DEVICE),
      )
      .execute();
    return {
      value: { ...summaryOf(row, device.uuid), checks: report.checks },
      orgId: device.orgId,
      resourceId: device.uuid,
      details: { session: session.id, run: row.id, status, version: report.version, counts },
    };
  });
}

/** The device's stored runs, newest first: `device.diagnose` (operators and above). */
export async function listDeviceDiagnostics(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
  page: PageRequest,
): Promise<Page<DiagnosticsRunSummary>> {
  const device = await deviceForAction(deps.db, actor, ref, 'device.diagnose');
  const query = deps.db.selectFrom('device_diagnostics').where('device_id', '=', device.id);
  const { total } = await query
    .select((eb) => eb.fn.countAll<number>().as('total'))
    .executeTakeFirstOrThrow();
  const rows = await query
    .select([
      'id',
      'org_id',
      'device_id',
      'session_id',
      'requested_by',
      'requested_by_label',
      'started_at',
      'finished_at',
      'version',
      'agent_version',
      'status',
      'counts',
    ])
    .orderBy('started_at', 'desc')
    .orderBy('id', 'desc')
    .limit(page.limit)
    .offset((page.page - 1) * page.limit)
    .execute();
  return {
    items: rows.map((row) => summaryOf({ ...row, checks: '' }, device.uuid)),
    total: Number(total),
    page: page.page,
    limit: page.limit,
  };
}

/** One stored run with its checks: `device.diagnose`; `not_found` when it is not this device's. */
export async function getDeviceDiagnostics(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
  id: number,
): Promise<DiagnosticsRunView> {
  const device = await deviceForAction(deps.db, actor, ref, 'device.diagnose');
  const row = await deps.db
    .selectFrom('device_diagnostics')
    .selectAll()
    .where('device_id', '=', device.id)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!row) throw notFound('diagnostics report');
  return { ...summaryOf(row, device.uuid), checks: json.decode<DiagnosticsCheck[]>(row.checks)! };
}
