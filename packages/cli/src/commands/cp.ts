import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { apiPath } from '../client.ts';
import { type CliIo, CommandContext } from '../context.ts';
import { CliError } from '../errors.ts';
import { trustedCas } from '../tls.ts';

/** One side of `cp`: a file on this machine, or `<device>:<absolute path>` on a device. */
export type CopyEnd = { local: string } | { device: string; path: string };

/**
 * Parses one argument of `cp`: `<device>:<path>` (device uuid, id, unique uuid prefix or name; the path absolute)
 * is on a device; anything else (`./a:b`, `/tmp/x`, `file.txt`) is local.
 */
export function parseCopyEnd(text: string): CopyEnd {
  const match = /^([^/:]+):(.*)$/.exec(text);
  if (!match || text.startsWith('./')) return { local: text };
  const [, device, devicePath] = match as unknown as [string, string, string];
  if (!devicePath.startsWith('/'))
    throw new CliError(
      `the path on the device must be absolute: ${device}:/${devicePath.replace(/^\.?\/?/, '')}?`,
    );
  return { device, path: devicePath };
}

interface CopyOptions {
  mode?: string;
}

/** What `cp` did, as `--json` prints it. */
interface CopyResult {
  direction: 'upload' | 'download';
  device: string;
  devicePath: string;
  localPath: string;
  size: number;
  sha256: string;
  /** The SHA-256 computed here equals the one the device computed of what it wrote or read. */
  verified: true;
  session: string;
}

/**
 * `cp <src> <dst>`: copies one file to or from a device through the server (`PUT`/`GET
 * /api/v1/devices/:device/files`), as scp does: the same rights (operators and above), audited. Integrity end to
 * end: an upload sends the SHA-256 of the local file, which the agent checks before the file takes its place; a
 * download is written beside its destination and renamed into place only when its SHA-256 equals the device's.
 * Progress on standard error when it is a terminal.
 */
export function registerCpCommand(program: Command, io: CliIo): void {
  program
    .command('cp')
    .description('copy a file to or from a device (like scp), checked end to end by SHA-256')
    .argument('<source>', 'a local file, or <device>:<absolute path>')
    .argument('<destination>', 'a local path, or <device>:<absolute path> (ending in / for a directory)')
    .option(
      '--mode <octal>',
      'permissions of an uploaded file, e.g. 0755 (default: those of the file it replaces, else 0644)',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  fleetgate cp ./app.tar.gz kiosk-17:/tmp/\n  fleetgate cp 7f3c9a1:/var/log/syslog ./syslog\n' +
        '<device> is a uuid, id, unique uuid prefix or name. Operators and above may copy files (as with ssh); the\n' +
        "device's agent must have its exec service on. The server limits sizes (FLEETGATE_FILE_TRANSFER_MAX_BYTES).",
    )
    .action(async (sourceText: string, destinationText: string, options: CopyOptions, command: Command) => {
      const source = parseCopyEnd(sourceText);
      const destination = parseCopyEnd(destinationText);
      if (options.mode !== undefined && !/^0?[0-7]{3}$/.test(options.mode))
        throw new CliError(`--mode takes octal permissions such as 0644 or 755, not "${options.mode}"`);
      const ctx = new CommandContext(io, command);
      await ctx.client(); // fails early, with how to sign in, when there is no login
      const { server, token, ca } = await ctx.connection();
      const transfer = { io, server: server!, token: token!, ca };
      let result: CopyResult;
      if ('local' in source && 'device' in destination) {
        result = await upload(transfer, source.local, destination, options.mode);
      } else if ('device' in source && 'local' in destination) {
        result = await download(transfer, source, destination.local);
      } else {
        throw new CliError(
          'one side of cp is a device (<device>:<absolute path>) and the other a local path, e.g. ' +
            'fleetgate cp ./file kiosk-17:/tmp/',
        );
      }
      ctx.out.result(result, (done) => {
        const remote = `${done.device}:${done.devicePath}`;
        const route =
          done.direction === 'upload' ? `${done.localPath} → ${remote}` : `${remote} → ${done.localPath}`;
        return `${route}: ${formatBytes(done.size)}, SHA-256 ${done.sha256} verified on both ends\n`;
      });
    });
}

interface Transfer {
  io: CliIo;
  server: string;
  token: string;
  /** The profile's saved CA (see `Credentials.ca`). */
  ca: string | undefined;
}

function filesUrl(
  server: string,
  device: string,
  devicePath: string,
  query: Record<string, string> = {},
): URL {
  const url = new URL(apiPath`/api/v1/devices/${device}/files`, server);
  url.searchParams.set('path', devicePath);
  for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
  return url;
}

async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest('hex');
}

async function upload(
  transfer: Transfer,
  local: string,
  to: { device: string; path: string },
  mode?: string,
) {
  let stats: fs.Stats;
  try {
    stats = await fsp.stat(local);
  } catch (error) {
    throw new CliError(
      `cannot read ${local}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  if (!stats.isFile()) throw new CliError(`${local} is not a regular file: cp copies one file`);
  const devicePath = to.path.endsWith('/') ? `${to.path}${path.basename(local)}` : to.path;
  // Hashed first: the agent checks what it wrote against what this file holds, end to end.
  const sha256 = await sha256OfFile(local);
  const url = filesUrl(transfer.server, to.device, devicePath, { sha256, ...(mode ? { mode } : {}) });
  const progress = new Progress(transfer.io, `${path.basename(local)} → ${to.device}`, stats.size);
  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const request = (url.protocol === 'https:' ? https : http).request(url, {
      ...(transfer.ca ? { ca: trustedCas(transfer.ca) } : {}),
      method: 'PUT',
      headers: {
        authorization: `Bearer ${transfer.token}`,
        'content-type': 'application/octet-stream',
        'content-length': String(stats.size),
      },
    });
    request.once('response', (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.once('end', () => resolve({ status: response.statusCode ?? 0, body }));
      response.once('error', reject);
    });
    request.once('error', (error) =>
      reject(new CliError(`the upload to ${transfer.server} failed: ${error.message}; try again`)),
    );
    const file = fs.createReadStream(local);
    file.on('data', (chunk) => progress.add(chunk.length));
    file.once('error', (error) => request.destroy(error));
    file.pipe(request);
  });
  progress.end();
  if (answer.status !== 200) throw refusal(answer.status, answer.body, `${to.device}:${devicePath}`);
  const written = JSON.parse(answer.body) as { path: string; size: number; sha256: string; session: string };
  if (written.sha256 !== sha256 || written.size !== stats.size) {
    throw new CliError(
      `the device wrote ${written.size} bytes with SHA-256 ${written.sha256}, but ${local} is ${stats.size} bytes ` +
        `with SHA-256 ${sha256}: copy it again`,
      { exitCode: 2 },
    );
  }
  return {
    direction: 'upload' as const,
    device: to.device,
    devicePath: written.path,
    localPath: local,
    size: written.size,
    sha256,
    verified: true as const,
    session: written.session,
  };
}

async function download(transfer: Transfer, from: { device: string; path: string }, local: string) {
  let destination = local;
  const isDirectory = await fsp.stat(local).then(
    (stats) => stats.isDirectory(),
    () => false,
  );
  if (isDirectory || local.endsWith('/')) destination = path.join(local, path.basename(from.path));
  const url = filesUrl(transfer.server, from.device, from.path);
  // Written beside the destination and renamed once verified: a failed download leaves nothing behind.
  const partial = path.join(
    path.dirname(destination),
    `.${path.basename(destination)}.fleetgate-${randomBytes(4).toString('hex')}.part`,
  );
  try {
    const { size, sha256, session } = await new Promise<{ size: number; sha256: string; session: string }>(
      (resolve, reject) => {
        const request = (url.protocol === 'https:' ? https : http).get(url, {
          ...(transfer.ca ? { ca: trustedCas(transfer.ca) } : {}),
          headers: { authorization: `Bearer ${transfer.token}` },
        });
        request.once('error', (error) =>
          reject(new CliError(`the download from ${transfer.server} failed: ${error.message}; try again`)),
        );
        request.once('response', (response) => {
          if (response.statusCode !== 200) {
            let body = '';
            response.setEncoding('utf8');
            response.on('data', (chunk: string) => {
              body += chunk;
            });
            response.once('end', () =>
              reject(refusal(response.statusCode ?? 0, body, `${from.device}:${from.path}`)),
            );
            return;
          }
          const size = Number(response.headers['content-length']);
          const announced = String(response.headers['x-content-sha256'] ?? '');
          const progress = new Progress(transfer.io, `${from.device} → ${path.basename(destination)}`, size);
          const hash = createHash('sha256');
          let received = 0;
          response.on('data', (chunk: Buffer) => {
            received += chunk.length;
            hash.update(chunk);
            progress.add(chunk.length);
          });
          let file: fs.WriteStream;
          try {
            file = fs.createWriteStream(partial, { flags: 'wx', mode: 0o644 });
          } catch (error) {
            reject(error);
            return;
          }
          pipeline(response, file).then(
            () => {
              progress.end();
              const sha256 = hash.digest('hex');
              if (!response.complete || received !== size)
                reject(
                  new CliError(`the download was cut after ${received} of ${size} bytes: try again`, {
                    exitCode: 2,
                  }),
                );
              else if (sha256 !== announced)
                reject(
                  new CliError(
                    `the file received has SHA-256 ${sha256}, the device announced ${announced}: nothing was kept; try again`,
                    { exitCode: 2 },
                  ),
                );
              else resolve({ size, sha256, session: String(response.headers['x-fleetgate-session'] ?? '') });
            },
            (error: NodeJS.ErrnoException) => {
              progress.end();
              reject(
                error.code === 'ECONNRESET' || error.code === 'ERR_STREAM_PREMATURE_CLOSE'
                  ? new CliError(
                      `the download was cut after ${received} of ${size} bytes (the server stops a file whose bytes ` +
                        'differ from what the device announced): try again',
                      { exitCode: 2 },
                    )
                  : new CliError(`cannot write ${destination}: ${error.code ?? error.message}`),
              );
            },
          );
        });
      },
    );
    await fsp.rename(partial, destination);
    return {
      direction: 'download' as const,
      device: from.device,
      devicePath: from.path,
      localPath: destination,
      size,
      sha256,
      verified: true as const,
      session,
    };
  } finally {
    await fsp.rm(partial, { force: true });
  }
}

/** The server's refusal as one line: its message, and what to do next where it says. */
function refusal(status: number, body: string, what: string): CliError {
  let message = `HTTP ${status}`;
  try {
    message = JSON.parse(body).error.message ?? message;
  } catch {}
  return new CliError(`cannot copy ${what}: ${message}`);
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** A progress line on standard error, redrawn at most 10 times a second, only when it is a terminal. */
class Progress {
  private done = 0;
  private lastDrawn = 0;
  private readonly shown: boolean;

  constructor(
    private readonly io: CliIo,
    private readonly label: string,
    private readonly total: number,
  ) {
    this.shown = (io.stderr as { isTTY?: boolean }).isTTY === true;
  }

  add(bytes: number): void {
    this.done += bytes;
    if (!this.shown) return;
    const now = Date.now();
    if (now - this.lastDrawn < 100) return;
    this.lastDrawn = now;
    this.draw();
  }

  end(): void {
    if (!this.shown) return;
    this.draw();
    this.io.stderr.write('\n');
  }

  private draw(): void {
    const percent = this.total > 0 ? Math.floor((this.done / this.total) * 100) : 100;
    this.io.stderr.write(
      `\r${this.label}  ${String(percent).padStart(3)}%  ${formatBytes(this.done)} / ${formatBytes(this.total)}\x1b[K`,
    );
  }
}
