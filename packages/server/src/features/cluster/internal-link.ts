import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import {
  bridge,
  type OpenTarget,
  openTargetSchema,
  StreamError,
  StreamErrorCode,
  type StreamErrorCodeValue,
} from '@fleetgate/protocol';
import { z } from 'zod';
import type { Logger } from '../../infra/logging/index.ts';
import type { LinkOpener } from '../remote-access/index.ts';

/**
 * The internal link between instances (issue 19): when a person's stream lands on instance A and the device's
 * tunnel is on instance B, A (which authorized it and records the session) opens the stream through B's internal
 * port. One TCP connection per stream, so flow control, half-close (FIN) and reset (RST) are TCP's own at this
 * hop, as at every other hop of the stream.
 *
 * The exchange: A sends one line, `{"body": <JSON text>, "sig": <hex HMAC-SHA256 of body with the cluster
 * secret>}`; the body names the sending and the receiving instance, a time and a random nonce (a request is
 * good once, for 30 s, at the instance it names), the device and the target. B answers one line, `{"ok":true}`
 * followed by the stream's bytes, or `{"ok":false,"code":…,"reason":…}` and closes. Anything else (no signature,
 * a wrong one, an old or replayed request, plain HTTP) gets the refusal line and the connection closes: the
 * port is useless without the secret.
 */

/** Largest request line, in bytes. */
const MAX_REQUEST = 8 * 1024;
/** How long a connection may take to send its request line, in milliseconds. */
const REQUEST_TIMEOUT_MS = 5_000;
/** How far a request's time may be from the receiver's clock, in milliseconds. */
const MAX_SKEW_MS = 30_000;

const requestBodySchema = z.strictObject({
  from: z.string().min(1).max(64),
  to: z.string().min(1).max(64),
  at: z.number().int(),
  nonce: z.string().regex(/^[0-9a-f]{32}$/),
  device: z.strictObject({ id: z.number().int().positive(), uuid: z.string().min(1).max(64) }),
  target: openTargetSchema,
  /** Who the stream opens for (`LinkOpener` of remote-access), for links whose device wants to know. */
  opener: z.strictObject({ userId: z.string().min(1).max(128) }).optional(),
});
export type InternalStreamRequest = z.infer<typeof requestBodySchema>;

function sign(secret: string, body: string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

function refusalLine(code: string, reason: string): string {
  return `${JSON.stringify({ ok: false, code, reason })}\n`;
}

export interface InternalLinkServerOptions {
  instanceId: string;
  secret: string;
  log: Logger;
  /** Opens the stream over this instance's own link to the device; rejects with a `StreamError`. */
  openLocal(
    device: { id: number; uuid: string },
    target: OpenTarget,
    opener: LinkOpener | undefined,
  ): Promise<Duplex>;
}

/** The receiving end: a TCP server on the internal port. */
export class InternalLinkServer {
  private readonly server: net.Server;
  private readonly nonces = new Map<string, number>();
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly options: InternalLinkServerOptions) {
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
  }

  /** Listens; a port it cannot bind fails the start with the setting that moves it. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new Error(
            `the internal link between instances cannot listen on ${host}:${port} (${err.code ?? err.message}): ` +
              'stop what holds the port, or choose another with FLEETGATE_INTERNAL_PORT',
            { cause: err },
          ),
        ),
      );
      this.server.listen({ host, port }, () => {
        this.server.removeAllListeners('error');
        this.server.on('error', (err) =>
          this.options.log.error({ err }, 'the internal link between instances failed'),
        );
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  /** Stops listening and resets the streams still relayed through this instance. */
  close(): Promise<void> {
    for (const socket of this.sockets) socket.resetAndDestroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    socket.setNoDelay(true);
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => refuse('timeout', 'no request within 5 s'), REQUEST_TIMEOUT_MS);
    const refuse = (code: string, reason: string) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.end(refusalLine(code, reason));
      socket.destroySoon();
    };
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf(10);
      if (end < 0) {
        if (buffered.length > MAX_REQUEST) refuse('bad_request', 'request line too long');
        return;
      }
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      const rest = buffered.subarray(end + 1);
      if (rest.length) socket.unshift(rest);
      const checked = this.check(buffered.subarray(0, end).toString('utf8'));
      if ('refusal' in checked) return refuse(checked.refusal, checked.reason);
      void this.relay(socket, checked.request);
    };
    socket.on('data', onData);
  }

  /** The request, if its signature, receiver, time and nonce hold. */
  private check(line: string): { request: InternalStreamRequest } | { refusal: string; reason: string } {
    const unauthorized = {
      refusal: 'unauthorized',
      reason: 'a request signed with the cluster secret is needed',
    };
    let envelope: unknown;
    try {
      envelope = JSON.parse(line);
    } catch {
      return unauthorized;
    }
    const { body, sig } = (envelope ?? {}) as { body?: unknown; sig?: unknown };
    if (typeof body !== 'string' || typeof sig !== 'string' || !/^[0-9a-f]{64}$/.test(sig))
      return unauthorized;
    const expected = Buffer.from(sign(this.options.secret, body), 'hex');
    if (!timingSafeEqual(expected, Buffer.from(sig, 'hex'))) return unauthorized;
    let request: InternalStreamRequest;
    try {
      request = requestBodySchema.parse(JSON.parse(body));
    } catch {
      return { refusal: 'bad_request', reason: 'the request body is not a stream request' };
    }
    const now = Date.now();
    if (request.to !== this.options.instanceId)
      return { refusal: 'unauthorized', reason: 'the request names another instance' };
    if (Math.abs(now - request.at) > MAX_SKEW_MS)
      return {
        refusal: 'unauthorized',
        reason: 'the request is too old (or the clocks differ by more than 30 s)',
      };
    for (const [nonce, at] of this.nonces) if (now - at > 2 * MAX_SKEW_MS) this.nonces.delete(nonce);
    if (this.nonces.has(request.nonce))
      return { refusal: 'unauthorized', reason: 'the request was used already' };
    this.nonces.set(request.nonce, now);
    return { request };
  }

  private async relay(socket: net.Socket, request: InternalStreamRequest): Promise<void> {
    let stream: Duplex;
    try {
      stream = await this.options.openLocal(request.device, request.target, request.opener);
    } catch (err) {
      const code = err instanceof StreamError ? err.code : StreamErrorCode.internal;
      const reason = err instanceof StreamError ? err.reason : 'the stream could not be opened';
      if (!(err instanceof StreamError))
        this.options.log.error({ err }, 'opening a stream for another instance failed');
      socket.end(refusalLine(code, reason));
      return;
    }
    if (socket.destroyed) {
      stream.destroy();
      return;
    }
    socket.write(`${JSON.stringify({ ok: true })}\n`);
    socket.resume();
    await bridge(socket, stream).catch(() => {});
  }
}

/**
 * Opens a stream to a device through the instance that holds it (`url`, its internal link: `http://host:port`).
 * Resolves with the connection, carrying the stream's bytes from now on; rejects with a `StreamError` when that
 * instance refuses (the device is gone from it: `unreachable`), or cannot be reached.
 */
export function openThroughInstance(
  url: string,
  secret: string,
  request: Omit<InternalStreamRequest, 'at' | 'nonce'>,
): Promise<Duplex> {
  const { hostname, port } = new URL(url);
  const body = JSON.stringify({ ...request, at: Date.now(), nonce: randomBytes(16).toString('hex') });
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      host: hostname.replace(/^\[|\]$/g, ''),
      port: Number(port),
      allowHalfOpen: true,
    });
    socket.setNoDelay(true);
    let answer = Buffer.alloc(0);
    const fail = (code: StreamErrorCodeValue, reason: string) => {
      socket.destroy();
      reject(new StreamError(code, reason));
    };
    const timer = setTimeout(
      () =>
        fail(StreamErrorCode.timeout, `the instance holding the device (${url}) did not answer within 10 s`),
      10_000,
    );
    socket.on('error', (err) => {
      clearTimeout(timer);
      fail(
        StreamErrorCode.unreachable,
        `the instance holding the device (${url}) cannot be reached: ${err.message}`,
      );
    });
    socket.on('connect', () => socket.write(`${JSON.stringify({ body, sig: sign(secret, body) })}\n`));
    const onData = (chunk: Buffer) => {
      answer = Buffer.concat([answer, chunk]);
      const end = answer.indexOf(10);
      if (end < 0) {
        if (answer.length > MAX_REQUEST)
          fail(StreamErrorCode.internal, 'the other instance answered garbage');
        return;
      }
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      const rest = answer.subarray(end + 1);
      let reply: { ok?: unknown; code?: unknown; reason?: unknown };
      try {
        reply = JSON.parse(answer.subarray(0, end).toString('utf8'));
      } catch {
        return fail(StreamErrorCode.internal, 'the other instance answered garbage');
      }
      if (reply.ok !== true) {
        const code = Object.values(StreamErrorCode).includes(reply.code as StreamErrorCodeValue)
          ? (reply.code as StreamErrorCodeValue)
          : StreamErrorCode.internal;
        return fail(code, typeof reply.reason === 'string' ? reply.reason.slice(0, 512) : 'refused');
      }
      socket.removeAllListeners('error');
      if (rest.length) socket.unshift(rest);
      resolve(socket);
    };
    socket.on('data', onData);
    socket.on('end', () => {
      if (answer.indexOf(10) < 0) {
        clearTimeout(timer);
        fail(StreamErrorCode.connectionClosed, 'the other instance closed the link before answering');
      }
    });
  });
}
