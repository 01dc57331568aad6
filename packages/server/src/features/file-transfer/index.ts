import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { FileErrorCode, type FileRequest, filePathSchema, sha256Schema } from '@fleetgate/protocol';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Actor } from '../../infra/access/index.ts';
import { AppError, badRequest } from '../../infra/errors/index.ts';
import { actorOf, errorBody, type TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { parseDeviceRef } from '../devices/index.ts';
import type { DeviceReference, StreamRouter, StreamSession } from '../remote-access/index.ts';
import { FilePeer, FileRefusal } from './peer.ts';

/** A device as the person names it: its id or uuid, a unique uuid prefix, or its name. */
const deviceParam = z.string().min(1).max(255).describe('the device: id, uuid, unique uuid prefix or name');
const pathParam = filePathSchema.describe('absolute path of the file on the device');
const params = z.object({ device: deviceParam });

/**
 * The device a path parameter names: a uuid as the API's paths carry it, else what a person typed (an id, a unique
 * uuid prefix — which may be all digits, `45099294` — or a name: resolveDevice tells them apart).
 */
function deviceReferenceOf(text: string): DeviceReference {
  return /^[0-9a-fA-F]{32}$/.test(text) ? { ref: parseDeviceRef(text) } : { typed: text };
}

const transferredFile = z.object({
  path: z.string(),
  size: z.number().int().describe('bytes written'),
  sha256: z.string().describe('SHA-256 of what the device wrote to disk (hex), equal to what was sent'),
  session: z.string().describe('the session id: GET /api/v1/sessions/{sessionId}'),
});

/**
 * File transfer (issue 16): `GET /api/v1/devices/:device/files?path=` downloads a file from the device and
 * `PUT` the same URL uploads one, each through the stream router (surface `files`): authorized as scp/sftp are
 * (`device.ssh`: operators and above; viewers 403, other organizations 404), audited with the operation, path,
 * size and SHA-256, listed in sessions, and refused by an agent whose exec service is off. The agent hashes
 * what it reads from or writes to disk; the server hashes what passes and compares (the file sub-protocol of
 * @fleetgate/protocol): a download whose bytes differ is cut short, never completed; an upload lands at the path
 * whole and verified, or not at all. `FLEETGATE_FILE_TRANSFER_MAX_BYTES` bounds both.
 */
export function registerFileTransfer(app: TypedApp, deps: ServiceDeps, router: StreamRouter): void {
  const limit = deps.config.fileTransferMaxBytes;
  const tags = ['remote access'];

  app.get(
    '/api/v1/file-transfer',
    {
      schema: {
        tags,
        summary: "This server's file transfer limit",
        description:
          'The largest file that may be uploaded to or downloaded from a device, in bytes ' +
          '(`FLEETGATE_FILE_TRANSFER_MAX_BYTES`), so that a client can refuse a larger one before sending it.',
        response: { 200: z.object({ maxBytes: z.number().int() }) },
      },
    },
    async () => ({ maxBytes: limit }),
  );

  app.get(
    '/api/v1/devices/:device/files',
    {
      // A HEAD would read the whole file on the device for nothing.
      exposeHeadRoute: false,
      schema: {
        tags,
        summary: 'Download a file from the device',
        description:
          'Streams the regular file at `path` on the device as `application/octet-stream` ' +
          '(`Content-Disposition: attachment`), with `Content-Length` and its SHA-256 ahead in `X-Content-SHA256` ' +
          '(hex) and `Repr-Digest`. The agent hashes the file, then sends it while hashing it again; the server checks the bytes as they pass: if they differ (the file changed meanwhile), the response is cut short, never completed. ' +
          'Operators and above (a shell right, as scp: viewers get 403); 404 when the file does not exist, 403 when ' +
          "the agent's user may not read it, 409 when it is a directory or not a regular file, 413 over the server's " +
          'limit (`FLEETGATE_FILE_TRANSFER_MAX_BYTES`), 503 when the device is offline. Audited and listed in ' +
          'sessions (surface `files`).',
        params,
        querystring: z.object({ path: pathParam }),
        response: {
          400: errorBody,
          403: errorBody,
          404: errorBody,
          409: errorBody,
          413: errorBody,
          503: errorBody,
        },
      },
    },
    async (request, reply) => {
      const { path } = request.query;
      const session = await openTransfer(router, actorOf(request), request.params.device, {
        op: 'read',
        path,
      });
      const peer = new FilePeer();
      peer.sendNothing();
      void session.relay(peer).catch(() => {});
      const meta = await peer.first.catch((error: unknown) => {
        session.stream.destroy();
        throw appErrorOf(error, session, path);
      });
      if (meta.type !== 'meta') {
        session.stream.destroy();
        throw new AppError('internal', 'the agent answered a download as an upload');
      }
      if (meta.size > limit) {
        session.addEndDetails({ size: meta.size, refused: 'over the size limit' });
        session.stream.destroy();
        throw new AppError(
          'payload_too_large',
          `${path} is ${meta.size} bytes, more than this server's limit of ${limit} bytes ` +
            '(FLEETGATE_FILE_TRANSFER_MAX_BYTES): copy a part of it (split, tail) or ask the administrator',
          { details: { size: meta.size, limit } },
        );
      }
      const body = new PassThrough();
      const hash = createHash('sha256');
      let received = 0;
      // The bytes that complete the file wait until the agent said it read what it announced and the hash of what
      // passed matched: until then the response is one chunk short of its Content-Length, so cutting it on a
      // mismatch leaves the client a download that failed, never a complete one with the wrong bytes.
      let last: Buffer | undefined;
      peer.receive((bytes, done) => {
        received += bytes.length;
        hash.update(bytes);
        if (received > meta.size) {
          body.destroy(new Error('the device sent more than the size it announced'));
          session.stream.destroy();
          return;
        }
        if (received === meta.size) {
          last = bytes;
          done();
        } else if (body.write(bytes)) done();
        else body.once('drain', done);
      });
      peer.last.then(
        (done) => {
          const sha256 = hash.digest('hex');
          if (received !== meta.size || sha256 !== meta.sha256 || done.sha256 !== meta.sha256) {
            session.addEndDetails({ size: received, sha256, verified: false });
            body.destroy(
              new Error(`the bytes received (SHA-256 ${sha256}) are not the file announced (${meta.sha256})`),
            );
            return;
          }
          session.addEndDetails({ size: received, sha256, verified: true });
          body.end(last);
        },
        (error: unknown) => {
          session.addEndDetails({ size: received, failed: (error as Error).message });
          body.destroy(error as Error);
        },
      );
      // The person went away (or the download was cut): the device stops reading.
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) session.stream.destroy(new Error('the download was not completed'));
      });
      const name = path.slice(path.lastIndexOf('/') + 1);
      return reply
        .headers({
          'content-type': 'application/octet-stream',
          'content-length': String(meta.size),
          'content-disposition': contentDisposition(name),
          'x-content-sha256': meta.sha256,
          'repr-digest': `sha-256=:${Buffer.from(meta.sha256, 'hex').toString('base64')}:`,
          'x-fleetgate-session': session.id,
          'cache-control': 'no-store',
        })
        .send(body as never);
    },
  );

  // Its own scope: the body is the file, streamed through (never parsed or buffered), whatever its content type.
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    // Left unread here (no body): the handler streams `request.raw` itself. (A stream as `body` would also be walked
    // by the server's NUL check, which looks into parsed bodies.)
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));
    scope.withTypeProvider<ZodTypeProvider>().put(
      '/api/v1/devices/:device/files',
      {
        schema: {
          tags,
          summary: 'Upload a file to the device',
          description:
            'The request body is the file, sent as is (any content type, e.g. `application/octet-stream`), with ' +
            '`Content-Length` (or chunked). It is written to a temporary file beside `path` and renamed into place ' +
            'only when the size and SHA-256 the agent computed of what it wrote equal what the server received, and ' +
            'the `sha256` given (query, or header `X-Content-SHA256`) when there is one: the path then holds the whole ' +
            'file, or what it held before. `mode` (octal, e.g. `0755`) sets the permissions; default 0644, or those of ' +
            'the file replaced. Operators and above (a shell right, as scp: viewers get 403); 404 when the directory ' +
            "does not exist, 403 when the agent's user may not write there, 409 when `path` is a directory, 413 over " +
            "the server's limit (`FLEETGATE_FILE_TRANSFER_MAX_BYTES`; refused before reading when `Content-Length` says " +
            'so), 422 when the SHA-256 or size differ, 503 when the device is offline. Cookie sign-ins must come from ' +
            "fleetgate's own pages (CSRF). Audited and listed in sessions (surface `files`).",
          params,
          querystring: z.object({
            path: pathParam,
            sha256: sha256Schema.optional().describe('SHA-256 of the file (hex); the agent checks it'),
            mode: z
              .string()
              .regex(/^0?[0-7]{3}$/, 'octal permissions such as 0644 or 755')
              .optional()
              .describe('permissions of the file (octal)'),
          }),
          response: {
            200: transferredFile,
            400: errorBody,
            403: errorBody,
            404: errorBody,
            409: errorBody,
            413: errorBody,
            422: errorBody,
            503: errorBody,
          },
        },
      },
      async (request, reply) => {
        const { path } = request.query;
        const lengthHeader = request.headers['content-length'];
        const declared = lengthHeader === undefined ? undefined : Number(lengthHeader);
        if (declared !== undefined && !(Number.isSafeInteger(declared) && declared >= 0))
          throw badRequest('Content-Length is not a byte count');
        const headerSha = request.headers['x-content-sha256'];
        const given =
          request.query.sha256 ?? (typeof headerSha === 'string' ? headerSha.toLowerCase() : undefined);
        if (given !== undefined && !sha256Schema.safeParse(given).success)
          throw badRequest('X-Content-SHA256 is a SHA-256 as 64 hexadecimal characters');
        const actor = actorOf(request);
        // Before anything is opened on the device, and before the body is read.
        const found = await router.findDevice(
          { actor, current: true },
          deviceReferenceOf(request.params.device),
        );
        if (declared !== undefined && declared > limit) {
          reply.header('connection', 'close');
          throw tooLarge(declared, limit);
        }
        const mode = request.query.mode === undefined ? undefined : Number.parseInt(request.query.mode, 8);
        const session = await openTransfer(router, actor, found, {
          op: 'write',
          path,
          ...(declared === undefined ? {} : { size: declared }),
          ...(given === undefined ? {} : { sha256: given }),
          ...(mode === undefined ? {} : { mode }),
        });
        const peer = new FilePeer();
        void session.relay(peer).catch(() => {});
        const upload: Readable = request.raw;
        let sent = 0;
        try {
          await peer.first;
          const hash = createHash('sha256');
          for await (const chunk of upload as AsyncIterable<Buffer>) {
            sent += chunk.length;
            if (sent > limit) throw tooLarge(sent, limit);
            hash.update(chunk);
            await peer.send(chunk);
          }
          if (declared !== undefined && sent !== declared)
            throw badRequest(
              `the body ended after ${sent} of ${declared} bytes: nothing was written; send it again`,
            );
          peer.commit({ size: sent, sha256: hash.digest('hex') });
          const written = await peer.last;
          session.addEndDetails({ ...written, verified: true });
          return { path, size: written.size, sha256: written.sha256, session: session.id };
        } catch (error) {
          // The agent removes its temporary file when the stream goes without a matching commit.
          session.addEndDetails({ size: sent, failed: (error as Error).message });
          session.stream.destroy();
          if (!upload.readableEnded) reply.header('connection', 'close');
          throw appErrorOf(error, session, path);
        }
      },
    );
  });
}

function tooLarge(size: number, limit: number): AppError {
  return new AppError(
    'payload_too_large',
    `the file is ${size > limit ? 'larger' : 'as large'} than this server's limit of ${limit} bytes ` +
      '(FLEETGATE_FILE_TRANSFER_MAX_BYTES): nothing was written; send a smaller file or ask the administrator',
    { details: { limit } },
  );
}

/** Opens the transfer's stream; an agent whose exec service is off refuses it (403, saying so). */
async function openTransfer(
  router: StreamRouter,
  actor: Actor,
  device: string | Awaited<ReturnType<StreamRouter['findDevice']>>,
  file: FileRequest,
): Promise<StreamSession> {
  try {
    return await router.open({
      caller: { actor, current: true },
      device: typeof device === 'string' ? deviceReferenceOf(device) : device,
      target: { file },
      surface: 'files',
      details: { operation: file.op === 'read' ? 'download' : 'upload', path: file.path },
    });
  } catch (error) {
    const stream = error instanceof AppError && (error.details as { stream?: string } | undefined)?.stream;
    if (error instanceof AppError && error.code === 'unavailable' && stream === 'not-allowed') {
      throw new AppError(
        'forbidden',
        "this device does not allow file transfer: its agent's exec service is off (exec.enabled in the agent's " +
          'configuration); turn it on there to transfer files',
        { cause: error },
      );
    }
    throw error;
  }
}

/** What went wrong in a transfer, as the person should read it. */
function appErrorOf(error: unknown, session: StreamSession, path: string): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof FileRefusal) {
    const details = { reason: error.code, session: session.id };
    switch (error.code) {
      case FileErrorCode.notFound:
        return new AppError('not_found', error.message, { details });
      case FileErrorCode.permissionDenied:
        return new AppError('forbidden', error.message, { details });
      case FileErrorCode.notAFile:
        return new AppError('conflict', error.message, { details });
      case FileErrorCode.mismatch:
        return new AppError('unprocessable', error.message, { details });
      case FileErrorCode.io:
        return new AppError('conflict', `the device could not transfer ${path}: ${error.message}`, {
          details,
        });
    }
  }
  return new AppError(
    'unavailable',
    `the transfer of ${path} was cut (${(error as Error).message}): nothing was written; try again`,
    { cause: error, details: { session: session.id } },
  );
}

/** `attachment` with the file's name, plain where it is plain ASCII, else RFC 5987-encoded too. */
function contentDisposition(name: string): string {
  const plain = name.replace(/[^\x20-\x7e]|["\\]/g, '_') || 'download';
  return `attachment; filename="${plain}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}
