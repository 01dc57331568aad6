import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { extractArchive, writeArchive } from './archive.ts';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-archive-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('backup archives', () => {
  it('give back every entry byte for byte with its SHA-256, and tar can list them', async () => {
    const big = randomBytes(3 * 1024 * 1024 + 17);
    fs.writeFileSync(path.join(dir, 'big'), big);
    const file = path.join(dir, 'backup.tar.gz');
    await writeArchive(
      file,
      [
        { name: 'manifest.json', source: { bytes: Buffer.from('{"a":1}') }, mode: 0o600 },
        { name: 'database/fleetgate.db', source: { file: path.join(dir, 'big') }, mode: 0o600 },
        { name: 'data/empty', source: { bytes: Buffer.alloc(0) }, mode: 0o600 },
        { name: 'data/ssh/key', source: { bytes: Buffer.from('secret') }, mode: 0o600 },
      ],
      0o600,
    );
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const listing = spawnSync('tar', ['-tzf', file], { encoding: 'utf8' });
    expect(listing.stdout.trim().split('\n')).toEqual([
      'manifest.json',
      'database/fleetgate.db',
      'data/empty',
      'data/ssh/key',
    ]);
    const into = path.join(dir, 'out');
    fs.mkdirSync(into);
    const { manifest, entries } = await extractArchive(file, into);
    expect(manifest.toString()).toBe('{"a":1}');
    expect(entries.map((e) => [e.name, e.size])).toEqual([
      ['manifest.json', 7],
      ['database/fleetgate.db', big.length],
      ['data/empty', 0],
      ['data/ssh/key', 6],
    ]);
    expect(entries[1]!.sha256).toBe(sha256(big));
    expect(fs.readFileSync(path.join(into, 'database/fleetgate.db')).equals(big)).toBe(true);
    expect(fs.readFileSync(path.join(into, 'data/ssh/key'), 'utf8')).toBe('secret');
  });

  it('refuse a truncated file, a file that is not gzip, and entries that would land outside', async () => {
    const file = path.join(dir, 'backup.tar.gz');
    await writeArchive(
      file,
      [
        { name: 'manifest.json', source: { bytes: Buffer.from('{}') }, mode: 0o600 },
        { name: 'data/x', source: { bytes: randomBytes(200_000) }, mode: 0o600 },
      ],
      0o600,
    );
    const truncated = path.join(dir, 'truncated.tar.gz');
    fs.writeFileSync(truncated, fs.readFileSync(file).subarray(0, 60_000));
    const out = (name: string) =>
      fs.mkdirSync(path.join(dir, name), { recursive: true }) ?? path.join(dir, name);
    await expect(extractArchive(truncated, out('a'))).rejects.toThrow(/truncated|damaged/);

    const text = path.join(dir, 'notes.txt');
    fs.writeFileSync(text, 'not an archive');
    await expect(extractArchive(text, out('b'))).rejects.toThrow('it is not a gzip file, or it is damaged');

    const hostile = path.join(dir, 'hostile.tar.gz');
    await writeArchive(
      hostile,
      [
        { name: 'manifest.json', source: { bytes: Buffer.from('{}') }, mode: 0o600 },
        { name: '../escaped', source: { bytes: Buffer.from('x') }, mode: 0o600 },
      ],
      0o600,
    );
    await expect(extractArchive(hostile, out('c'))).rejects.toThrow(/outside the data directory/);
    expect(fs.existsSync(path.join(dir, 'escaped'))).toBe(false);
  });
});
