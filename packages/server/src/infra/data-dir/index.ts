import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../logging/index.ts';

/** The data directory and every directory fleetgate makes in it: its owner only (rwx------). */
export const PRIVATE_DIR_MODE = 0o700;
/** Files in the data directory (the SQLite database, its -wal and -shm): its owner only (rw-------). */
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Makes the data directory private to the account fleetgate runs as: creates it 0700 when missing; on an
 * existing install (made before this rule, or by hand under a 022 umask) lowers the directory to 0700 and each
 * regular file directly in it to 0600, and logs one line listing what changed. Modes that are already as
 * strict or stricter are left alone, and so are the subdirectories (`tls/`, `ssh/`, `keys/`): they are made
 * 0700 by their own code and, inside a 0700 directory, nobody else can reach their public parts anyway.
 * Links inside the directory are not followed. Answers what changed, as `name 0755 → 0700` lines.
 */
export function secureDataDir(dir: string, log: Logger): string[] {
  fs.mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const changed: string[] = [];
  const restrict = (file: string, name: string, allowed: number) => {
    const mode = fs.statSync(file).mode & 0o777;
    const tightened = mode & allowed;
    if (tightened === mode) return;
    fs.chmodSync(file, tightened);
    changed.push(`${name} ${octal(mode)} → ${octal(tightened)}`);
  };
  restrict(dir, '.', PRIVATE_DIR_MODE);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.isFile()) restrict(path.join(dir, entry.name), entry.name, PRIVATE_FILE_MODE);
  }
  if (changed.length > 0) {
    log.warn(
      { dataDir: dir, changed },
      `the data directory was readable by other accounts: made it ${octal(PRIVATE_DIR_MODE)} and its files ${octal(PRIVATE_FILE_MODE)}`,
    );
  }
  return changed;
}

/**
 * Creates `file` empty with mode 0600 when it does not exist yet, so that whatever opens it next (SQLite) never
 * leaves it readable by others for a moment; an existing file is left as it is (`secureDataDir` fixes it).
 */
export function createPrivateFile(file: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: PRIVATE_DIR_MODE });
  try {
    fs.closeSync(fs.openSync(file, 'wx', PRIVATE_FILE_MODE));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/** Lowers an existing file to 0600 (when it has more); a missing file is fine. */
export function restrictFile(file: string): void {
  let stats: fs.Stats;
  try {
    stats = fs.lstatSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const mode = stats.mode & 0o777;
  if (stats.isFile() && (mode & PRIVATE_FILE_MODE) !== mode) fs.chmodSync(file, mode & PRIVATE_FILE_MODE);
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}
