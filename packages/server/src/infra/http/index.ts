import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
  type RawServerDefault,
} from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  isResponseSerializationError,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import client from 'prom-client';
import { type Actor, authorizeRoute, type Principal, type ServerAction } from '../access/index.ts';
import { AppError, type ErrorCode, httpStatusOf, retryAfterHeader } from '../errors/index.ts';
import type { Logger } from '../logging/index.ts';
import { HostRouter } from './hosts.ts';
import { errorBody } from './schemas.ts';
import { UpgradeRouter } from './upgrades.ts';

export { type HostHandler, HostRouter } from './hosts.ts';
export {
  refuseUpgrade,
  refuseUpgradeWith,
  releaseUpgradeSocket,
  type UpgradeHandler,
  UpgradeRouter,
} from './upgrades.ts';
export { acceptWebSocket, assertWebSocketHandshake, keepAlive, PING_INTERVAL_MS } from './websocket.ts';
export { errorBody };
export type App = FastifyInstance;
export type TypedApp = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  ZodTypeProvider
>;

declare module 'fastify' {
  interface FastifyInstance {
    /** Where upgrade endpoints (WebSockets, raw streams) are registered by path: see upgrades.ts. */
    upgrades: UpgradeRouter;
    /** Hosts served apart from the API and UI, before Fastify sees their requests: see hosts.ts. */
    hosts: HostRouter;
  }
  interface FastifyRequest {
    principal: Principal;
    /** The request was signed in by the browser's session cookie (not an `Authorization` header). */
    viaSessionCookie: boolean;
  }
  interface FastifyContextConfig {
    /** The route answers without authentication. */
    public?: boolean;
    /** The server action the route is made for: service credentials allowed that action may call it. */
    serves?: ServerAction;
    /**
     * The route is made for devices: device credentials may call it and nothing else may (`authorizeRoute`);
     * every other route refuses devices with 401. The OpenAPI document gives it the `device` security scheme.
     */
    forDevices?: boolean;
  }
}

export interface HttpOptions {
  log: Logger;
  bodyLimit: number;
  /** Turns an `Authorization` header into a principal, or throws `unauthorized`. */
  authenticate(header: string | undefined, request: FastifyRequest): Promise<Principal>;
  /** Extra gauges for /metrics (database pool…). */
  collectMetrics?(registry: client.Registry): void;
  /** Serve HTTPS with this PEM certificate (chain) and key; unset = plain HTTP. */
  https?: { cert: string | Buffer; key: string | Buffer };
}

/**
 * The browser's sign-in: a session token in an httpOnly, `SameSite=Strict` cookie (`Secure` over TLS), set by
 * `POST /api/v1/auth/login` with `cookie: true`, so no token is ever readable by page scripts. An
 * `Authorization` header wins over it.
 */
export const SESSION_COOKIE = 'fleetgate_session';

/** The value of cookie `name` in the request's `Cookie` header, or undefined (a route's or an upgrade's request). */
export function cookieOf(request: { headers: IncomingHttpHeaders }, name: string): string | undefined {
  const header = request.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** `Set-Cookie` for the browser's session cookie; `maxAgeSeconds` 0 removes it. */
export function sessionCookieHeader(request: FastifyRequest, token: string, maxAgeSeconds: number): string {
  const secure = request.protocol === 'https' ? '; Secure' : '';
  return `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure}`;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Cross-site request forgery: a cookie travels with requests that other sites' pages make, so a write signed
 * in by the cookie must come from fleetgate's own pages. Browsers say where a request comes from in
 * `Sec-Fetch-Site` (all current ones) and `Origin` (every cross-origin and every non-GET fetch); a write whose
 * origin is not this host, or that says neither, is refused. `SameSite=Strict` already keeps the cookie off
 * cross-site requests in current browsers; this check does not rely on it. Upgrades signed in by the cookie
 * (the web terminal's WebSocket) take the same check: browsers send `Origin` with every WebSocket handshake,
 * and other sites' pages may open WebSockets to any host (cross-site WebSocket hijacking).
 */
export function assertSameOrigin(request: { headers: IncomingHttpHeaders }): void {
  const site = request.headers['sec-fetch-site'];
  const origin = request.headers.origin;
  let originHost: string | undefined;
  try {
    originHost = origin ? new URL(origin).host : undefined;
  } catch {
    originHost = undefined;
  }
  const sameSite = site === undefined || site === 'same-origin';
  const sameOrigin = origin === undefined ? site === 'same-origin' : originHost === request.headers.host;
  if (sameSite && sameOrigin) return;
  throw new AppError(
    'forbidden',
    "cross-site request refused: a change signed in by fleetgate's session cookie must come from fleetgate's own pages " +
      '(scripts send Authorization: Bearer <token or API key> instead)',
  );
}

/**
 * A route serializer (`serializerCompiler: serializeUnchecked`) that writes the answer with `JSON.stringify` alone,
 * without zod parsing it against the response schema first; the schema still documents the route in the OpenAPI
 * document. Only for the hottest reads, whose answer one function builds as exactly the schema's output type
 * (checked at compile time), its keys in the schema's order and without a `__proto__` key in its records (zod's
 * parse drops one): the output is then byte for byte what zod's serializer writes. zod's parse of a page of 50
 * devices cost ~4 µs per device, a sixth of the device list's CPU in bench/api.
 */
export const serializeUnchecked = () => (data: unknown) => JSON.stringify(data);

/**
 * `true` when `View` and `Schema` are the same type each way: `const check: SameType<DeviceView, z.output<…>> =
 * true` fails to compile when a route that uses `serializeUnchecked` builds something else than its schema.
 */
export type SameType<View, Schema> = [View, keyof View] extends [Schema, keyof Schema]
  ? [Schema, keyof Schema] extends [View, keyof View]
    ? true
    : false
  : false;

/** The principal and source address of a request, for service calls. */
export function actorOf(request: FastifyRequest): Actor {
  return { principal: request.principal, sourceIp: request.ip };
}

export function sendError(reply: FastifyReply, code: ErrorCode, message: string, details?: unknown) {
  return reply
    .status(httpStatusOf(code))
    .headers(retryAfterHeader(code, details))
    .send({ error: { code, message, ...(details === undefined ? {} : { details }) } });
}

/** Fastify's own 4xx errors (body parsing, content type) mapped onto our codes. */
function codeOfFastifyError(err: FastifyError): ErrorCode {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'payload_too_large';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return err.statusCode === 415 ? 'unsupported_media_type' : 'bad_request';
    default:
      return err.statusCode === 413
        ? 'payload_too_large'
        : err.statusCode === 415
          ? 'unsupported_media_type'
          : 'bad_request';
  }
}

/** How long requests still running when the server stops have to finish before their connections are cut. */
const STOP_GRACE_MS = 10_000;

/**
 * Lets the server stop without waiting on connections that would hold it open: Node stops its header timeout
 * once the server closes, so a connection that never sent a request kept a stopping server up for good
 * (seen with one silent connection). On stop, those are cut at once, idle keep-alive connections by Node,
 * and requests still running get `STOP_GRACE_MS` to finish.
 */
function stopsWithoutWaiting(app: FastifyInstance): void {
  const server = app.server;
  const open = new Set<Socket>();
  /** Connections that sent a request or an upgrade, by `address|port` (with TLS, requests come on a wrapping socket). */
  const spoke = new Set<string>();
  const keyOf = (socket: Socket) => `${socket.remoteAddress}|${socket.remotePort}`;
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => {
      open.delete(socket);
      spoke.delete(keyOf(socket));
    });
  });
  const heard = (request: IncomingMessage) => spoke.add(keyOf(request.socket as Socket));
  server.on('request', heard);
  // Upgraded connections (devices' tunnels, streams) are ended by their own owners, with a reason.
  server.on('upgrade', heard);
  app.addHook('preClose', async () => {
    for (const socket of open) if (!spoke.has(keyOf(socket))) socket.destroy();
    setTimeout(() => server.closeAllConnections(), STOP_GRACE_MS).unref();
  });
}

/**
 * The HTTP edge: Fastify with zod validation, one error shape, authentication on every route not marked
 * public, OpenAPI at /api/v1/openapi.json with docs at /api/docs, health and Prometheus metrics.
 */
export async function createHttpApp(options: HttpOptions): Promise<TypedApp> {
  const app = Fastify({
    loggerInstance: options.log as FastifyBaseLogger,
    bodyLimit: options.bodyLimit,
    // One line per request from our onResponse hook below, without headers (they carry credentials).
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { maxParamLength: 256, ignoreTrailingSlash: true },
    // The router's own refusals (undecodable %-escapes, over-long path parameters) in our error shape.
    frameworkErrors: (err, _request, reply) =>
      err.statusCode === 414
        ? sendError(reply, 'uri_too_long', 'a path parameter is longer than 256 characters')
        : sendError(reply, 'bad_request', `the URL cannot be decoded: ${err.message}`),
    ajv: undefined,
    // Fastify types an HTTPS instance differently, but every route and hook we use is the same on both.
    ...((options.https ? { https: options.https } : {}) as object),
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest('principal', null as never);
  app.decorateRequest('viaSessionCookie', false);
  const hosts = new HostRouter();
  hosts.interceptRequests(app.server);
  app.decorate('hosts', hosts);
  const upgrades = new UpgradeRouter(options.log, hosts);
  upgrades.listen(app.server);
  app.decorate('upgrades', upgrades);
  app.addHook('onClose', async () => upgrades.close());
  stopsWithoutWaiting(app);

  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof AppError) {
      if (err.code === 'internal') request.log.error({ err }, 'internal error');
      return sendError(reply, err.code, err.message, err.details);
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      const problems = err.validation.map((v) => ({
        where: err.validationContext,
        path: v.instancePath.replace(/^\//, '').replaceAll('/', '.'),
        message: v.message,
      }));
      const first = problems[0];
      const summary = first
        ? `${first.where} ${first.path || ''}: ${first.message}`.replace('  ', ' ')
        : 'invalid input';
      return sendError(reply, 'validation_failed', `invalid request ${summary}`, problems);
    }
    if (isResponseSerializationError(err)) {
      request.log.error({ err, cause: err.cause }, 'response does not match its schema');
      return sendError(reply, 'internal', 'internal error');
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return sendError(reply, codeOfFastifyError(err), err.message);
    }
    request.log.error({ err }, 'internal error');
    return sendError(reply, 'internal', 'internal error; the server log has the details');
  });

  app.setNotFoundHandler((request, reply) =>
    sendError(reply, 'not_found', `no route ${request.method} ${request.url.split('?')[0]}`),
  );

  // Authentication comes before body parsing and validation: an anonymous caller learns nothing else.
  app.addHook('onRequest', async (request) => {
    const route = request.routeOptions.url;
    if (!route?.startsWith('/api/v1/') || request.routeOptions.config.public) {
      request.principal = { type: 'anonymous' };
      return;
    }
    let header = request.headers.authorization;
    if (header === undefined) {
      const token = cookieOf(request, SESSION_COOKIE);
      if (token) {
        if (!SAFE_METHODS.has(request.method)) assertSameOrigin(request);
        request.viaSessionCookie = true;
        header = `Bearer ${token}`;
      }
    }
    request.principal = await options.authenticate(header, request);
    authorizeRoute(request.principal, request.routeOptions.config);
  });

  // PostgreSQL cannot store U+0000 in text, and no name, note or value needs it: refuse it everywhere.
  app.addHook('preValidation', async (request, reply) => {
    for (const [where, value] of [
      ['path', request.params],
      ['query', request.query],
      ['body', request.body],
    ] as const) {
      if (holdsNul(value)) {
        return sendError(
          reply,
          'bad_request',
          `the request ${where} holds a NUL (U+0000) character; remove it`,
        );
      }
    }
  });

  registerMetrics(app, options);
  await registerOpenApi(app);

  app.get('/healthz', { config: { public: true }, schema: { hide: true } }, async () => ({ status: 'ok' }));
  return app;
}

/**
 * `true` when a string or object key anywhere in a parsed JSON value contains U+0000 (no recursion). Raw
 * bodies (a route's own `Buffer` parser, such as the signed auth request's) are left to their route: their
 * bytes are not text yet, and walking them as an object would visit every byte.
 */
function holdsNul(value: unknown): boolean {
  const pending = [value];
  while (pending.length > 0) {
    const item = pending.pop();
    if (typeof item === 'string') {
      if (item.includes('\0')) return true;
    } else if (ArrayBuffer.isView(item)) {
      // Not walked: see above.
    } else if (Array.isArray(item)) {
      for (const inner of item) pending.push(inner);
    } else if (item !== null && typeof item === 'object') {
      for (const [key, inner] of Object.entries(item)) {
        if (key.includes('\0')) return true;
        pending.push(inner);
      }
    }
  }
  return false;
}

function registerMetrics(app: TypedApp, options: HttpOptions): void {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'fleetgate_' });
  const requests = new client.Counter({
    name: 'fleetgate_http_requests_total',
    help: 'HTTP requests answered, by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const latency = new client.Histogram({
    name: 'fleetgate_http_request_duration_seconds',
    help: 'HTTP request latency, by method and route',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  options.collectMetrics?.(registry);

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    requests.inc({ method: request.method, route, status: reply.statusCode });
    latency.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    request.log.info(
      {
        method: request.method,
        path: request.url.split('?')[0],
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      'request',
    );
  });

  app.get('/metrics', { config: { public: true }, schema: { hide: true } }, async (_request, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });
}

async function registerOpenApi(app: TypedApp): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'fleetgate API',
        version: '1',
        description:
          'Manage organizations, people, fleets and devices. Authenticate with `POST /api/v1/auth/login` and send ' +
          '`Authorization: Bearer <token or API key>`.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer' },
          device: {
            type: 'http',
            scheme: 'bearer',
            description: "a device's credential: a device token (JWT), or `<uuid>:<device key>`",
          },
        },
      },
      security: [{ bearer: [] }],
    },
    // Routes made for devices say so in the document, from the same declaration the server enforces.
    transform: (input) => {
      const transformed = jsonSchemaTransform(input);
      if (!input.route.config?.forDevices) return transformed;
      return { ...transformed, schema: { ...transformed.schema, security: [{ device: [] }] } };
    },
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/api/docs', uiConfig: { deepLinking: true } });
  app.get('/api/v1/openapi.json', { config: { public: true }, schema: { hide: true } }, async () =>
    app.swagger(),
  );
}
