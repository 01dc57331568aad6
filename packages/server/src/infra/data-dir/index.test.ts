import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../logging/index.ts';
import { createPrivateFile, restrictFile, secureDataDir } from './index.ts';

const modeOf = (file: string) => fs.statSync(file).mode & 0o777;

/** A logger whose JSON lines are kept. */
function recordingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('info', { write: (line: string) => lines.push(JSON.parse(line)) });
  return { log, lines };
}

describe('secureDataDir', () => {
  let parent: string;
  beforeEach(() => {
    parent = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-data-dir-'));
  });
  afterEach(() => fs.rmSync(parent, { recursive: true, force: true }));

  it('creates a missing data directory 0700 and says nothing', () => {
    const { log, lines } = recordingLogger();
    const dir = path.join(parent, 'data');
    expect(secureDataDir(dir, log)).toEqual([]);
    expect(modeOf(dir)).toBe(0o700);
    expect(lines).toEqual([]);
  });

  it('makes an existing directory 0700 and its files 0600, and logs one line naming each change', () => {
    const { log, lines } = recordingLogger();
    const dir = path.join(parent, 'data');
    fs.mkdirSync(dir);
    fs.chmodSync(dir, 0o755);
    for (const name of ['fleetgate.db', 'fleetgate.db-wal', 'fleetgate.db-shm']) {
      fs.writeFileSync(path.join(dir, name), '');
      fs.chmodSync(path.join(dir, name), 0o644);
    }
    fs.writeFileSync(path.join(dir, 'already-private'), '');
    fs.chmodSync(path.join(dir, 'already-private'), 0o400);
    fs.mkdirSync(path.join(dir, 'tls'), { mode: 0o700 });
    fs.writeFileSync(path.join(dir, 'tls', 'ca.crt'), '');
    fs.chmodSync(path.join(dir, 'tls', 'ca.crt'), 0o644);

    const changed = secureDataDir(dir, log);

    expect(modeOf(dir)).toBe(0o700);
    for (const name of ['fleetgate.db', 'fleetgate.db-wal', 'fleetgate.db-shm'])
      expect(modeOf(path.join(dir, name))).toBe(0o600);
    // Stricter modes stay; subdirectories' files are their own code's business.
    expect(modeOf(path.join(dir, 'already-private'))).toBe(0o400);
    expect(modeOf(path.join(dir, 'tls', 'ca.crt'))).toBe(0o644);
    expect(changed.sort()).toEqual([
      '. 0755 → 0700',
      'fleetgate.db 0644 → 0600',
      'fleetgate.db-shm 0644 → 0600',
      'fleetgate.db-wal 0644 → 0600',
    ]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ dataDir: dir, changed });
    expect(lines[0]?.msg).toMatch(/made it 0700 and its files 0600/);

    // Run again: nothing left to change, nothing logged.
    expect(secureDataDir(dir, log)).toEqual([]);
    expect(lines).toHaveLength(1);
  });

  it('does not follow a link to a file elsewhere', () => {
    const { log } = recordingLogger();
    const dir = path.join(parent, 'data');
    fs.mkdirSync(dir, { mode: 0o700 });
    const outside = path.join(parent, 'shared.txt');
    fs.writeFileSync(outside, '');
    fs.chmodSync(outside, 0o644);
    fs.symlinkSync(outside, path.join(dir, 'link'));
    secureDataDir(dir, log);
    expect(modeOf(outside)).toBe(0o644);
  });
});

describe('createPrivateFile and restrictFile', () => {
  let parent: string;
  beforeEach(() => {
    parent = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-data-dir-'));
  });
  afterEach(() => fs.rmSync(parent, { recursive: true, force: true }));

  it('creates a missing file 0600 in a new 0700 directory, and leaves an existing one as it is', () => {
    const file = path.join(parent, 'data', 'fleetgate.db');
    createPrivateFile(file);
    expect(modeOf(path.dirname(file))).toBe(0o700);
    expect(modeOf(file)).toBe(0o600);
    fs.writeFileSync(file, 'kept');
    createPrivateFile(file);
    expect(fs.readFileSync(file, 'utf8')).toBe('kept');
  });

  it('lowers a file to 0600 and accepts a missing one', () => {
    const file = path.join(parent, 'fleetgate.db-wal');
    fs.writeFileSync(file, '');
    fs.chmodSync(file, 0o664);
    restrictFile(file);
    expect(modeOf(file)).toBe(0o600);
    expect(() => restrictFile(path.join(parent, 'missing'))).not.toThrow();
  });
});
