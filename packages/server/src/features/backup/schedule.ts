import fs from 'node:fs';
import path from 'node:path';
import client from 'prom-client';
import type { Logger } from '../../infra/logging/index.ts';
import { type BackupTarget, createBackup } from './service.ts';

/** Names of the backups the schedule makes (and prunes): `fleetgate-<UTC time>.tar.gz`, which sort by time. */
const SCHEDULED_NAME = /^fleetgate-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z\.tar\.gz$/;

export interface BackupScheduleOptions {
  target: BackupTarget;
  /** Folder of the backups. */
  dir: string;
  /** Time between two backups, in milliseconds. */
  intervalMs: number;
  /** Backups kept: after each one, older scheduled backups beyond this count are deleted. */
  keep: number;
  log: Logger;
}

/** What the last scheduled backups did, for /readyz. */
export interface BackupScheduleStatus {
  lastSuccessAt: string | null;
  lastFile: string | null;
  lastFailureAt: string | null;
  lastError: string | null;
  nextAt: string | null;
}

export interface BackupSchedule {
  status(): BackupScheduleStatus;
  registerMetrics(registry: client.Registry): void;
  /** Stops the timer and waits for a backup under way. */
  stop(): Promise<void>;
}

/** The scheduled backups in `dir`, oldest first. */
export function scheduledBackups(dir: string): string[] {
  try {
    return fs
      .readdirSync(dir)
      .filter((name) => SCHEDULED_NAME.test(name))
      .sort();
  } catch {
    return [];
  }
}

/**
 * Backups made by the server itself every `intervalMs`, pruned to the newest `keep`. The first one is due one
 * interval after the newest backup already in `dir` (at once when none is there or it is older): restarting
 * the server neither skips nor repeats one. A failure is logged as an error, counted in
 * `fleetgate_backup_failures_total` and shown by /readyz; the next attempt is one interval later.
 */
export function scheduleBackups(options: BackupScheduleOptions): BackupSchedule {
  const { dir, intervalMs, keep, log } = options;
  const state: BackupScheduleStatus = {
    lastSuccessAt: null,
    lastFile: null,
    lastFailureAt: null,
    lastError: null,
    nextAt: null,
  };
  let failures = 0;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  const newest = scheduledBackups(dir).at(-1);
  const newestAt = newest ? fs.statSync(path.join(dir, newest)).mtimeMs : 0;
  if (newest) {
    state.lastSuccessAt = new Date(newestAt).toISOString();
    state.lastFile = path.join(dir, newest);
  }

  const plan = (delayMs: number) => {
    if (stopped) return;
    state.nextAt = new Date(Date.now() + delayMs).toISOString();
    timer = setTimeout(() => {
      running = runOnce().finally(() => {
        running = undefined;
        plan(intervalMs);
      });
    }, delayMs);
    timer.unref();
  };

  const runOnce = async () => {
    const started = Date.now();
    try {
      const result = await createBackup(options.target, {
        file: path.join(dir, `fleetgate-${new Date().toISOString().replace(/[:.]/g, '-')}.tar.gz`),
      });
      state.lastSuccessAt = new Date().toISOString();
      state.lastFile = result.file;
      state.lastError = null;
      const pruned = prune(dir, keep);
      log.info(
        { file: result.file, bytes: result.bytes, ms: Date.now() - started, pruned },
        `scheduled backup written to ${result.file}`,
      );
    } catch (err) {
      failures++;
      state.lastFailureAt = new Date().toISOString();
      state.lastError = err instanceof Error ? err.message : String(err);
      log.error({ err, dir }, `scheduled backup failed: ${state.lastError}`);
    }
  };

  plan(Math.max(0, newestAt + intervalMs - Date.now()));

  return {
    status: () => ({ ...state }),
    registerMetrics(registry) {
      new client.Counter({
        name: 'fleetgate_backup_failures_total',
        help: 'Scheduled backups that failed since the server started',
        registers: [registry],
        collect() {
          this.reset();
          this.inc(failures);
        },
      });
      new client.Gauge({
        name: 'fleetgate_backup_last_success_timestamp_seconds',
        help: 'When the last scheduled backup was written (0: none yet)',
        registers: [registry],
        collect() {
          this.set(state.lastSuccessAt ? Date.parse(state.lastSuccessAt) / 1000 : 0);
        },
      });
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

/** Deletes the oldest scheduled backups in `dir` beyond `keep`; answers their names. */
function prune(dir: string, keep: number): string[] {
  const all = scheduledBackups(dir);
  const old = all.slice(0, Math.max(0, all.length - keep));
  for (const name of old) fs.rmSync(path.join(dir, name), { force: true });
  return old;
}
