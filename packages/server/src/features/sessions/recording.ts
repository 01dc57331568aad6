import { StringDecoder } from 'node:string_decoder';
import { type Actor, authorize } from '../../infra/access/index.ts';
import { notFound } from '../../infra/errors/index.ts';
import { type ServiceDeps, write } from '../../infra/service/index.ts';
import { setOrgSessionRecording } from '../orgs/index.ts';
import { getSession } from './service.ts';

/**
 * Session recording (asciicast v2, https://docs.asciinema.org/manual/asciicast/v2/): when an organization turns
 * it on, the terminal output of every shell session — through the SSH gateway or the web terminal — is kept,
 * linked to the session by its id, for `GET /api/v1/sessions/:id/recording` and `fleetgate sessions play <id>`.
 *
 * Stored in the database (rows of JSON lines, appended about once a second), so every instance of a server
 * behind one PostgreSQL can serve every recording. A recording stops growing at `MAX_RECORDING_BYTES` and is
 * marked truncated.
 */

/** Largest recording kept per session, in bytes of asciicast text (16 MiB). */
export const MAX_RECORDING_BYTES = 16 * 1024 * 1024;
/** Buffered output is written at least this often, in milliseconds. */
const FLUSH_INTERVAL_MS = 1000;
/** … or when this many bytes are waiting. */
const FLUSH_BYTES = 64 * 1024;

export interface SessionRecordingSetting {
  orgId: number;
  enabled: boolean;
}

export async function getSessionRecordingSetting(
  deps: ServiceDeps,
  actor: Actor,
  orgId: number,
): Promise<SessionRecordingSetting> {
  authorize(actor.principal, 'org.read', { orgId }, 'organization');
  const row = await deps.db
    .selectFrom('organizations')
    .select('session_recording')
    .where('id', '=', orgId)
    .executeTakeFirst();
  if (!row) throw notFound('organization');
  return { orgId, enabled: row.session_recording === 1 };
}

/** Turns recording of the organization's shell sessions on or off (admins and owners). */
export async function setSessionRecordingSetting(
  deps: ServiceDeps,
  actor: Actor,
  orgId: number,
  enabled: boolean,
): Promise<SessionRecordingSetting> {
  return write(
    deps,
    actor,
    { action: 'org.session_recording.set', resourceType: 'organization' },
    async (trx) => {
      authorize(actor.principal, 'org.update', { orgId }, 'organization');
      if (!(await setOrgSessionRecording(trx, orgId, enabled))) throw notFound('organization');
      return { value: { orgId, enabled }, orgId, resourceId: orgId, details: { enabled } };
    },
  );
}

/** Whether the organization records shell sessions (no authorization: for the surfaces that open them). */
export async function recordsSessions(deps: ServiceDeps, orgId: number): Promise<boolean> {
  const row = await deps.db
    .selectFrom('organizations')
    .select('session_recording')
    .where('id', '=', orgId)
    .executeTakeFirst();
  return row?.session_recording === 1;
}

/**
 * A session's recording as asciicast v2 text, for those who may open a shell where the session was (operators
 * and above of its organization or fleet): a recording shows what the shell showed, which viewers never see, so
 * they get `forbidden`; people who cannot see the session get `not_found`, as do sessions without a recording.
 */
export async function getSessionRecording(
  deps: ServiceDeps,
  actor: Actor,
  sessionId: string,
): Promise<string> {
  // The session's own access rule first (viewers and above; others get not_found), then the shell's.
  const session = await getSession(deps, actor, sessionId);
  authorize(actor.principal, 'device.ssh', { orgId: session.orgId, fleetId: session.fleetId }, 'session');
  const recording = await deps.db
    .selectFrom('session_recordings')
    .select('session_id')
    .where('session_id', '=', sessionId)
    .executeTakeFirst();
  if (!recording) throw notFound('recording');
  const chunks = await deps.db
    .selectFrom('session_recording_chunks')
    .select('data')
    .where('session_id', '=', sessionId)
    .orderBy('seq')
    .execute();
  return chunks.map((c) => c.data).join('');
}

/** What a surface knows when a recorded shell starts. */
export interface RecordingStart {
  sessionId: string;
  orgId: number;
  deviceUuid: string;
  cols: number;
  rows: number;
  term: string;
  /** Shown as the recording's title. */
  title: string;
}

/**
 * Records one terminal: `output` for each chunk the device sent, `resize` for window changes, `finish` at the
 * end. Never throws at its callers: a failing database write is logged and the recording stops; the session
 * goes on.
 */
export class SessionRecorder {
  private readonly startedAt = performance.now();
  private readonly decoder = new StringDecoder('utf8');
  private pending: string[] = [];
  private pendingBytes = 0;
  private totalBytes = 0;
  private seq = 0;
  private truncated = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  /** Writes run one after another, in order. */
  private writes: Promise<void>;

  private constructor(
    private readonly deps: ServiceDeps,
    private readonly start: RecordingStart,
    created: Promise<void>,
  ) {
    this.writes = created;
    const header = {
      version: 2,
      width: start.cols,
      height: start.rows,
      timestamp: Math.floor(Date.now() / 1000),
      title: start.title,
      env: { TERM: start.term },
    };
    this.append(`${JSON.stringify(header)}\n`);
  }

  /** Starts recording: the recording's row and its audit event, then the header. */
  static begin(deps: ServiceDeps, actor: Actor, start: RecordingStart): SessionRecorder {
    const created = write(
      deps,
      actor,
      { action: 'session.recording.start', resourceType: 'session' },
      async (trx) => {
        await trx
          .insertInto('session_recordings')
          .values({
            session_id: start.sessionId,
            org_id: start.orgId,
            device_uuid: start.deviceUuid,
            started_at: Date.now(),
            ended_at: null,
            bytes: 0,
            truncated: 0,
          })
          .execute();
        return {
          value: undefined,
          orgId: start.orgId,
          resourceId: start.sessionId,
          details: { device: start.deviceUuid },
        };
      },
    );
    const recorder = new SessionRecorder(
      deps,
      start,
      created.catch((err: unknown) => {
        deps.log.error({ err, session: start.sessionId }, 'could not start a session recording');
        recorder.stopped = true;
      }),
    );
    return recorder;
  }

  private elapsed(): number {
    return Math.round(performance.now() - this.startedAt) / 1000;
  }

  output(data: Uint8Array): void {
    if (this.stopped || this.truncated) return;
    const text = this.decoder.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    if (text) this.append(`${JSON.stringify([this.elapsed(), 'o', text])}\n`);
  }

  resize(cols: number, rows: number): void {
    if (this.stopped || this.truncated) return;
    this.append(`${JSON.stringify([this.elapsed(), 'r', `${cols}x${rows}`])}\n`);
  }

  /** Writes what is left and closes the recording. Idempotent. */
  finish(): void {
    if (this.stopped) return;
    const rest = this.decoder.end();
    if (rest && !this.truncated) this.append(`${JSON.stringify([this.elapsed(), 'o', rest])}\n`);
    this.stopped = true;
    clearTimeout(this.timer);
    this.flush();
    const { sessionId } = this.start;
    this.enqueue(async () => {
      await this.deps.db
        .updateTable('session_recordings')
        .set({ ended_at: Date.now(), bytes: this.totalBytes, truncated: this.truncated ? 1 : 0 })
        .where('session_id', '=', sessionId)
        .execute();
    });
  }

  /** Resolves when everything recorded so far is in the database. */
  settled(): Promise<void> {
    return this.writes;
  }

  private append(line: string): void {
    const bytes = Buffer.byteLength(line);
    if (this.totalBytes + bytes > MAX_RECORDING_BYTES) {
      this.truncated = true;
      return;
    }
    this.totalBytes += bytes;
    this.pending.push(line);
    this.pendingBytes += bytes;
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
    else if (!this.timer && !this.stopped) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flush();
      }, FLUSH_INTERVAL_MS);
      this.timer.unref();
    }
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.pending.length) return;
    const data = this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    const seq = this.seq++;
    const { sessionId } = this.start;
    this.enqueue(async () => {
      await this.deps.db
        .insertInto('session_recording_chunks')
        .values({ session_id: sessionId, seq, data })
        .execute();
    });
  }

  private enqueue(task: () => Promise<void>): void {
    this.writes = this.writes.then(task).catch((err: unknown) => {
      this.deps.log.error({ err, session: this.start.sessionId }, 'could not write a session recording');
    });
  }
}
