import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';

/**
 * A backup file is a gzip-compressed POSIX tar (ustar) archive, so `tar -tzvf backup.tar.gz` lists it and
 * `tar -xzf` unpacks it without fleetgate. Its first entry is `manifest.json`; every other entry is listed
 * in the manifest with its size and SHA-256. Written and read here with zlib and a few lines of tar: no
 * dependency for the 512-byte header format.
 */

const BLOCK = 512;

export interface ArchiveEntry {
  /** Name inside the archive (at most 100 bytes, `/`-separated). */
  name: string;
  /** A file to copy in, or the bytes themselves. */
  source: { file: string } | { bytes: Buffer };
  mode: number;
}

function header(name: string, size: number, mode: number, mtime: number): Buffer {
  const block = Buffer.alloc(BLOCK);
  if (Buffer.byteLength(name) > 100) throw new Error(`archive entry name too long: ${name}`);
  block.write(name, 0, 100, 'utf8');
  const octal = (value: number, offset: number, length: number) =>
    block.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'ascii');
  octal(mode & 0o7777, 100, 8);
  octal(0, 108, 8);
  octal(0, 116, 8);
  octal(size, 124, 12);
  octal(Math.floor(mtime / 1000), 136, 12);
  block.fill(' ', 148, 156);
  block.write('0', 156, 1, 'ascii');
  block.write('ustar\u000000', 257, 8, 'ascii');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return block;
}

/** Writes `entries` as a tar.gz to `file` (which must not be read until this resolves). */
export async function writeArchive(
  file: string,
  entries: readonly ArchiveEntry[],
  mode: number,
  onBytes?: (bytesWritten: number) => void,
): Promise<void> {
  let total = 0;
  const mtime = Date.now();
  async function* blocks(): AsyncGenerator<Buffer> {
    for (const entry of entries) {
      const size = 'bytes' in entry.source ? entry.source.bytes.length : fs.statSync(entry.source.file).size;
      yield header(entry.name, size, entry.mode, mtime);
      let written = 0;
      if ('bytes' in entry.source) {
        yield entry.source.bytes;
        written = entry.source.bytes.length;
      } else {
        for await (const chunk of fs.createReadStream(entry.source.file)) {
          const bytes = chunk as Buffer;
          // A file that grew while it was copied: the header promised `size` bytes.
          const take = bytes.subarray(0, Math.max(0, size - written));
          written += take.length;
          total += take.length;
          if (take.length) {
            onBytes?.(total);
            yield take;
          }
        }
      }
      if (written !== size) throw new Error(`${entry.name} changed size while it was written to the backup`);
      const pad = (BLOCK - (size % BLOCK)) % BLOCK;
      if (pad) yield Buffer.alloc(pad);
    }
    yield Buffer.alloc(BLOCK * 2);
  }
  const out = fs.createWriteStream(file, { mode, flags: 'wx' });
  await pipeline(blocks(), zlib.createGzip({ level: 6 }), out);
}

export interface ExtractedEntry {
  name: string;
  size: number;
  sha256: string;
  /** Where it was written, or unset for `manifest.json`, which is kept in `manifest`. */
  file?: string;
}

/**
 * Reads a tar.gz: answers the bytes of the first entry (which must be `manifest.json`) and writes every other
 * entry under `intoDir` (names that would leave it are refused), hashing as it goes. Throws a plain Error
 * with a reason a person can read when the file is not a gzip'd tar.
 */
export async function extractArchive(
  file: string,
  intoDir: string,
  onBytes?: (compressedBytesRead: number) => void,
): Promise<{ manifest: Buffer; entries: ExtractedEntry[] }> {
  const entries: ExtractedEntry[] = [];
  let manifest: Buffer | undefined;
  let pending: Buffer = Buffer.alloc(0);
  let current:
    | {
        name: string;
        size: number;
        left: number;
        hash: ReturnType<typeof createHash>;
        fd?: number;
        bytes?: Buffer[];
      }
    | undefined;
  let padding = 0;
  let ended = false;
  const input = fs.createReadStream(file);
  let read = 0;
  input.on('data', (chunk) => {
    read += chunk.length;
    onBytes?.(read);
  });
  const gunzip = zlib.createGunzip();
  input.pipe(gunzip);
  input.on('error', (err) => gunzip.destroy(err));
  try {
    for await (const chunk of gunzip) {
      pending = pending.length ? Buffer.concat([pending, chunk as Buffer]) : (chunk as Buffer);
      for (;;) {
        if (ended) {
          pending = Buffer.alloc(0);
          break;
        }
        if (current) {
          if (current.left > 0) {
            const take = pending.subarray(0, current.left);
            if (take.length === 0) break;
            current.hash.update(take);
            if (current.fd !== undefined) fs.writeSync(current.fd, take);
            else current.bytes?.push(Buffer.from(take));
            current.left -= take.length;
            pending = pending.subarray(take.length);
            if (current.left > 0) break;
          }
          if (current.fd !== undefined) {
            fs.fsyncSync(current.fd);
            fs.closeSync(current.fd);
          }
          const done: ExtractedEntry = {
            name: current.name,
            size: current.size,
            sha256: current.hash.digest('hex'),
          };
          if (current.bytes) manifest = Buffer.concat(current.bytes);
          else done.file = path.join(intoDir, current.name);
          entries.push(done);
          padding = (BLOCK - (current.size % BLOCK)) % BLOCK;
          current = undefined;
          continue;
        }
        if (padding) {
          const skip = Math.min(padding, pending.length);
          padding -= skip;
          pending = pending.subarray(skip);
          if (padding) break;
        }
        if (pending.length < BLOCK) break;
        const block = pending.subarray(0, BLOCK);
        pending = pending.subarray(BLOCK);
        if (block.every((b) => b === 0)) {
          ended = true;
          continue;
        }
        if (block.toString('ascii', 257, 262) !== 'ustar') throw new Error('it is not a tar archive');
        const name = block.toString('utf8', 0, 100).replace(/\0.*$/s, '');
        const size = Number.parseInt(block.toString('ascii', 124, 136).replace(/\0.*$/s, '').trim(), 8);
        const type = block.toString('ascii', 156, 157);
        if (!Number.isFinite(size) || size < 0) throw new Error(`entry ${name} has no valid size`);
        if (type !== '0' && type !== '\0') throw new Error(`entry ${name} is not a regular file`);
        if (entries.length === 0 && name !== 'manifest.json')
          throw new Error('its first entry is not manifest.json');
        current = { name, size, left: size, hash: createHash('sha256') };
        if (name === 'manifest.json') {
          if (entries.length > 0) throw new Error('it holds a second manifest.json');
          if (size > 1024 * 1024) throw new Error('its manifest.json is larger than 1 MiB');
          current.bytes = [];
        } else {
          const target = path.resolve(intoDir, name);
          if (!target.startsWith(path.resolve(intoDir) + path.sep) || name.includes('\\'))
            throw new Error(`entry ${name} would be written outside the data directory`);
          fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o700 });
          current.fd = fs.openSync(target, 'wx', 0o600);
        }
      }
    }
  } catch (err) {
    if (current?.fd !== undefined) fs.closeSync(current.fd);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR')
      throw new Error('it is not a gzip file, or it is damaged');
    throw err;
  }
  if (current) {
    if (current.fd !== undefined) fs.closeSync(current.fd);
    throw new Error(`it ends in the middle of ${current.name}: the file is truncated`);
  }
  if (!ended) throw new Error('it has no end-of-archive marker: the file is truncated');
  if (!manifest) throw new Error('it holds no manifest.json');
  return { manifest, entries };
}

/** SHA-256 of a file, in hex. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
