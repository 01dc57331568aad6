import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer } from '../harness.ts';
import {
  type AlphaResources,
  alphaPathValue,
  alphaRequest,
  fillPath,
  type OpenApiDocument,
  type Operation,
  operationsOf,
  resolveSchema,
  seedAlphaResources,
} from '../openapi-cases.ts';

/**
 * Hostile input against every operation of the OpenAPI document, as a caller who is allowed in (alpha's
 * owner, alpha's device on device routes, alpha's provisioning key for registration), so the input reaches
 * parsing, validation and the services: random and mistyped JSON, control characters and odd unicode,
 * extreme numbers, unknown properties, malformed JSON text, wrong content types, deep nesting, bodies at and
 * over the size limit, hostile query strings and garbage path parameters. Whatever comes in, the server
 * answers below 500, and every 4xx carries `{"error":{"code","message"}}`. Each listed hostile constant is
 * tried in every body field, query parameter and path parameter (fast-check examples), then `RUNS` random
 * cases per operation; about 10,000 requests in all, some 15 s on SQLite.
 */

const RUNS = { body: 30, rawBody: 20, query: 30, path: 25 } as const;
/** Upper bound on one property, shrinking included, in milliseconds. */
const PROPERTY_TIME_LIMIT = 20_000;

const server = await startTestServer();
const openapi = (await server.api('GET', '/api/v1/openapi.json')).body as OpenApiDocument;
const operations = operationsOf(openapi);
const withBody = operations.filter((op) => op.bodySchema);
const withQuery = operations.filter((op) => op.queryParameters.length > 0);
const withPathParameters = operations.filter((op) => op.pathParameters.length > 0);

let resources: AlphaResources;
/** The same app listening on 127.0.0.1, for requests whose path must arrive exactly as written. */
let listeningPort: number;
const agent = new http.Agent({ keepAlive: true });
/** Alpha's device's credential; updated when a fuzzed request happens to rotate its key. */
let deviceCredential: string;

beforeAll(async () => {
  resources = await seedAlphaResources(server);
  deviceCredential = resources.keyedDevice.credential;
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  listeningPort = (server.app.server.address() as AddressInfo).port;
});

afterAll(async () => {
  agent.destroy();
  await server?.close();
});

/** Who may call the operation: nobody for public routes, else the credential the route takes. */
function credentialFor(op: Operation): string | undefined {
  if (op.security?.length === 0) return undefined;
  // Registration is public to the user authentication; it takes the provisioning key as its Bearer token.
  if (op.key === 'POST /api/v1/devices/register') return resources.alphaProvisioningKey;
  if (op.path.startsWith('/api/v1/device/')) return deviceCredential;
  return server.adminToken;
}

interface HostileRequest {
  op: Operation;
  url: string;
  /** Raw request body text (or bytes); absent = no body. */
  payload?: string | Buffer;
  /** `null` = send no content-type at all. */
  contentType?: string | null;
  /**
   * Send over a real socket, with the path exactly as written. `app.inject` parses the URL as a browser would,
   * resolving `..` and `%2e%2e` and turning `\` into `/` before the server sees it, which would turn garbage
   * into a different, valid request.
   */
  overSocket?: boolean;
}

interface RawAnswer {
  status: number;
  text: string;
  contentType: string;
}

/** Operations that received at least one hostile request. */
const fuzzed = new Set<string>();

async function send(request: HostileRequest): Promise<RawAnswer> {
  fuzzed.add(request.op.key);
  const token = credentialFor(request.op);
  const contentType =
    request.contentType === undefined
      ? request.payload === undefined
        ? null
        : 'application/json'
      : request.contentType;
  const headers: Record<string, string> = {
    ...(token ? { authorization: `Bearer ${token}` } : {}),
    ...(contentType === null ? {} : { 'content-type': contentType }),
  };
  const answer = request.overSocket
    ? await sendOverSocket(request.op.method, request.url, headers, request.payload)
    : await sendInProcess(request.op.method, request.url, headers, request.payload);
  rememberRotatedDeviceKey(request, answer);
  return answer;
}

async function sendInProcess(
  method: string,
  url: string,
  headers: Record<string, string>,
  payload: string | Buffer | undefined,
): Promise<RawAnswer> {
  const response = await server.app.inject({
    method: method as 'GET',
    url,
    headers,
    ...(payload === undefined ? {} : { payload }),
  });
  return {
    status: response.statusCode,
    text: response.body,
    contentType: String(response.headers['content-type'] ?? ''),
  };
}

function sendOverSocket(
  method: string,
  path: string,
  headers: Record<string, string>,
  payload: string | Buffer | undefined,
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const outgoing = http.request(
      { host: '127.0.0.1', port: listeningPort, method, path, headers, agent, timeout: 10_000 },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            text: Buffer.concat(chunks).toString('utf8'),
            contentType: String(response.headers['content-type'] ?? ''),
          }),
        );
        response.on('error', reject);
      },
    );
    outgoing.on('timeout', () => outgoing.destroy(new Error(`no answer to ${method} ${path} in 10 s`)));
    outgoing.on('error', reject);
    outgoing.end(payload);
  });
}

/** A fuzzed `POST /device/self/key` that succeeds replaces the device's key: keep using the new one. */
function rememberRotatedDeviceKey(request: HostileRequest, answer: RawAnswer) {
  if (request.op.key !== 'POST /api/v1/device/self/key' || answer.status !== 201) return;
  const sent = (() => {
    try {
      return JSON.parse(String(request.payload ?? 'null'))?.key as string | undefined;
    } catch {
      return undefined;
    }
  })();
  const key = (JSON.parse(answer.text) as { key?: string }).key ?? sent;
  if (key) deviceCredential = `${resources.keyedDevice.uuid}:${key}`;
}

function describeRequest(request: HostileRequest): string {
  const payload = request.payload === undefined ? '' : String(request.payload);
  const shownPayload =
    payload.length > 300 ? `${payload.slice(0, 300)}… (${payload.length} characters)` : payload;
  return (
    `${request.op.method} ${JSON.stringify(request.url.slice(0, 300))}` +
    (request.contentType === undefined ? '' : ` content-type=${JSON.stringify(request.contentType)}`) +
    (request.payload === undefined ? '' : ` body=${JSON.stringify(shownPayload)}`)
  );
}

/**
 * Routes that go on to alpha's device, which has no agent in this test: input that happens to be valid (a query
 * `path=/a`) passes every check and gets 503 `unavailable` (the device is offline), which is the right answer.
 */
const REACHES_DEVICE = new Set(['GET /api/v1/devices/{device}/files', 'PUT /api/v1/devices/{device}/files']);

/** Throws (failing the property, with the request shown) unless the answer is < 500 and 4xx are well-formed. */
function expectSane(request: HostileRequest, answer: RawAnswer): void {
  if (REACHES_DEVICE.has(request.op.key) && answer.status === 503 && answer.text.includes('"unavailable"'))
    return;
  const problem = problemOf(answer);
  if (problem) {
    throw new Error(
      `${describeRequest(request)}\n→ ${answer.status} ${answer.text.slice(0, 500)}\n${problem}`,
    );
  }
}

function problemOf(answer: RawAnswer): string | undefined {
  if (answer.status >= 500) return 'a server error: hostile input must be refused with a 4xx';
  if (answer.status < 200) return 'an informational status';
  if (answer.status < 400) return undefined;
  if (!answer.contentType.includes('application/json'))
    return `a 4xx with content-type ${answer.contentType}`;
  let body: unknown;
  try {
    body = JSON.parse(answer.text);
  } catch {
    return 'a 4xx whose body is not JSON';
  }
  const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (typeof error?.code !== 'string' || typeof error.message !== 'string')
    return 'a 4xx without the error shape {"error":{"code":string,"message":string}}';
  return undefined;
}

async function expectProperty<T>(
  arbitrary: fc.Arbitrary<T>,
  numRuns: number,
  toRequest: (value: T) => HostileRequest,
  /** Cases always tried first, besides the `numRuns` random ones: every listed hostile constant, in its place. */
  examples: T[],
) {
  await fc.assert(
    fc.asyncProperty(arbitrary, async (value) => {
      const request = toRequest(value);
      expectSane(request, await send(request));
    }),
    {
      // fast-check counts examples in numRuns: add them, so the random runs are not crowded out.
      numRuns: numRuns + examples.length,
      examples: examples.map((example) => [example]),
      interruptAfterTimeLimit: PROPERTY_TIME_LIMIT,
    },
  );
}

// ---- Hostile values -------------------------------------------------------------------------------------

/** JSON text of an object whose own key is `__proto__` (an object literal would set the prototype instead). */
const protoPollution = JSON.parse(
  '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}',
);

const hostileConstants: unknown[] = [
  1e308,
  -1e308,
  5e-324,
  -0,
  0,
  -1,
  1.5,
  2 ** 31,
  2 ** 31 - 1,
  Number.MAX_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER + 2,
  '',
  ' ',
  'NaN',
  'Infinity',
  '-Infinity',
  '-0',
  '1e308',
  '99999999999999999999',
  '9999999999',
  '12345678901234567890123456789012',
  '0x10',
  'null',
  'true',
  '\u0000',
  'a\u0000b',
  '\u0007\u001b[31mred\u001b[0m',
  '\r\n\t\v\f\b',
  '\u202egnp.exe',
  '\u200b\ufeff\u2028\u2029',
  '\ud800',
  '\udc00x\ud800',
  'e\u0301\u0301\u0301',
  '𝕏🏳️‍🌈💥',
  'İıßẞﬃ',
  "'; drop table users; --",
  '%_\\%\\',
  '\\',
  '../../../etc/passwd',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4j-style lookup, sent as plain data.
  '${jndi:ldap://x}',
  '<script>alert(1)</script>',
  '💥'.repeat(64),
  'x'.repeat(129),
  'x'.repeat(70_000),
  [],
  {},
  [null],
  protoPollution,
];

const oddCharacters = fc.constantFrom(
  '\u0000',
  '\u0001',
  '\u0007',
  '\u001b',
  '\u007f',
  '\u0085',
  '\u00a0',
  '\u200b',
  '\u202e',
  '\ufeff',
  '\ufffd',
  '\uffff',
  '\ud800',
  '\udfff',
  'é',
  'ß',
  'İ',
  '𝕏',
  '%',
  '_',
  '\\',
  "'",
  '"',
  '=',
  '/',
  'a',
  '0',
);

const hostileString = fc.oneof(
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: oddCharacters, maxLength: 40 }),
);

const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.constantFrom(...hostileConstants), weight: 4 },
  { arbitrary: hostileString, weight: 3 },
  fc.integer(),
  fc.double(),
  fc.bigInt().map(String),
  fc.boolean(),
  fc.constant(null),
  fc.jsonValue({ maxDepth: 3 }),
  fc.integer({ min: 1, max: 300 }).map((depth) => nested(depth, 'x')),
);

/**
 * Percent-encodes every byte of the text's UTF-8 but unreserved characters. Unlike encodeURIComponent it never
 * throws: a lone surrogate goes out as U+FFFD (the raw lists below carry undecodable escapes on purpose).
 */
function percentEncode(text: string): string {
  return [...Buffer.from(text, 'utf8')]
    .map((byte) =>
      /[A-Za-z0-9\-_.~]/.test(String.fromCharCode(byte))
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`,
    )
    .join('');
}

function nested(depth: number, core: unknown): unknown {
  let value = core;
  for (let i = 0; i < depth; i++) value = [value];
  return value;
}

/** Number literals that JSON.stringify cannot produce, spliced into otherwise valid bodies. */
const numberLiterals = [
  '99999999999999999999',
  '12345678901234567890123456789',
  '1e308',
  '1e400',
  '-1e400',
  '1e-400',
  '-0',
  '-0.0',
  '1.0',
  '1E2',
  '0.1e1',
  '2147483648',
  '-2147483649',
  '4294967297',
];

const malformedJson = [
  '',
  ' ',
  '{',
  '}',
  '{"a":',
  '{"a":1,}',
  '[1,]',
  "{'a':1}",
  '{a:1}',
  'nul',
  'undefined',
  'NaN',
  '{"a":NaN}',
  '{"a":Infinity}',
  '{"a":1}{"b":2}',
  '{"a":1} trailing',
  '\ufeff{}',
  '\u0000',
  '{"a":"\u0000"}',
  '{"a":"\\u0000"}',
  '{"a":"\\ud800"}',
  '{"a":"\\x41"}',
  '{"a":"\t"}',
  '"just a string"',
  'true',
  'null',
  '123',
  '1e400',
  '{"__proto__":{"x":1}}',
  '{"constructor":{"prototype":{"x":1}}}',
  '{"a":1,"a":2}',
  `{${'"k":1,'.repeat(10_000)}"k":2}`,
];

const contentTypes = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/xml',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'application/json; charset=nonsense',
  'APPLICATION/JSON',
  'application/jsonx',
  'application/merge-patch+json',
  'application/json, text/plain',
  ';;;',
  'application/json\u0000',
  '',
];

/** Deeply nested JSON text, built as text (a value this deep would overflow JSON.stringify's stack). */
function deepText(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array'
    ? `${'['.repeat(depth)}${']'.repeat(depth)}`
    : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

// ---- Bodies ---------------------------------------------------------------------------------------------

function propertyNamesOf(op: Operation): string[] {
  return Object.keys(resolveSchema(openapi, op.bodySchema ?? {}).properties ?? {});
}

/** The operation's URL against alpha's resources, with the minimal valid body, fresh for each call. */
function validRequest(op: Operation): { url: string; body: Record<string, unknown> } {
  const { url, body } = alphaRequest(openapi, op, resources);
  return { url, body: (body ?? {}) as Record<string, unknown> };
}

/** JSON bodies: random JSON, wrong types, hostile values in one field of a valid body, unknown properties. */
function hostileJsonBody(op: Operation): fc.Arbitrary<() => unknown> {
  const names = propertyNamesOf(op);
  const valid = () => validRequest(op).body;
  const variants: fc.Arbitrary<() => unknown>[] = [
    fc.jsonValue().map((value) => () => value),
    fc.constantFrom<unknown>(null, [], 'a string', 0, true).map((value) => () => value),
    fc
      .dictionary(
        fc.oneof(hostileString, fc.constantFrom('__proto__', 'constructor', 'prototype')),
        hostileValue,
        {
          minKeys: 1,
          maxKeys: 4,
        },
      )
      .map((extra) => () => ({ ...valid(), ...extra })),
  ];
  if (names.length) {
    variants.push(
      fc.tuple(fc.constantFrom(...names), hostileValue).map(([name, value]) => () => ({
        ...valid(),
        [name]: value,
      })),
      fc
        .record(Object.fromEntries(names.map((name) => [name, hostileValue])), { requiredKeys: [] })
        .map((value) => () => value),
    );
  }
  return fc.oneof(...variants);
}

/** Raw body text: malformed JSON, number literals JSON.stringify never writes, wrong content types. */
function hostileRawBody(op: Operation): fc.Arbitrary<() => { payload: string; contentType?: string | null }> {
  const names = propertyNamesOf(op);
  const variants: fc.Arbitrary<() => { payload: string; contentType?: string | null }>[] = [
    fc.constantFrom(...malformedJson).map((payload) => () => ({ payload })),
    fc.string({ unit: 'binary' }).map((payload) => () => ({ payload })),
    fc
      .constantFrom(...contentTypes)
      .map((contentType) => () => ({ payload: JSON.stringify(validRequest(op).body), contentType })),
    fc.constant(() => ({ payload: JSON.stringify(validRequest(op).body), contentType: null })),
    fc
      .tuple(fc.constantFrom(1_000, 20_000, 200_000), fc.constantFrom<'array' | 'object'>('array', 'object'))
      .map(([depth, kind]) => () => ({ payload: deepText(depth, kind) })),
  ];
  if (names.length) {
    variants.push(
      fc
        .tuple(fc.constantFrom(...names), fc.constantFrom(...numberLiterals))
        .map(([name, literal]) => () => ({
          payload: JSON.stringify({ ...validRequest(op).body, [name]: '@@literal@@' }).replace(
            '"@@literal@@"',
            literal,
          ),
        })),
      fc.tuple(fc.constantFrom(...names), fc.constantFrom(20_000, 200_000)).map(([name, depth]) => () => ({
        payload: JSON.stringify({ ...validRequest(op).body, [name]: '@@deep@@' }).replace(
          '"@@deep@@"',
          deepText(depth, 'array'),
        ),
      })),
    );
  }
  return fc.oneof(...variants);
}

describe.each(withBody)('$key with a hostile body', (op) => {
  it('answers random, mistyped and extended JSON bodies below 500, with the error shape on 4xx', async () => {
    const everyConstantInEveryField = propertyNamesOf(op).flatMap((name) =>
      hostileConstants.map((value) => () => ({ ...validRequest(op).body, [name]: value })),
    );
    await expectProperty(
      hostileJsonBody(op),
      RUNS.body,
      (makeBody) => ({ op, url: validRequest(op).url, payload: JSON.stringify(makeBody()) ?? 'null' }),
      everyConstantInEveryField,
    );
  }, 60_000);

  it('answers malformed JSON text, wrong content types and deep nesting below 500', async () => {
    const listed = [
      ...malformedJson.map((payload) => () => ({ payload })),
      ...contentTypes.map((contentType) => () => ({
        payload: JSON.stringify(validRequest(op).body),
        contentType,
      })),
    ];
    await expectProperty(
      hostileRawBody(op),
      RUNS.rawBody,
      (makeRaw) => ({ op, url: validRequest(op).url, ...makeRaw() }),
      listed,
    );
  }, 60_000);

  it('refuses a body over the size limit with 413, and survives one just under it', async () => {
    const { url, body } = validRequest(op);
    const limit = server.config.bodyLimit;
    const field = propertyNamesOf(op)[0] ?? 'padding';
    const template = JSON.stringify({ ...body, [field]: '@@fill@@' });
    for (const size of [limit - 64, limit + 1]) {
      const filler = 'x'.repeat(size - (template.length - '@@fill@@'.length));
      const payload = template.replace('@@fill@@', filler);
      const request = { op, url, payload };
      const answer = await send(request);
      expectSane(request, answer);
      if (size > limit) {
        // Refusals that come before the body is read (authentication, rate limits) are fine too.
        expect([401, 413, 429], describeRequest(request)).toContain(answer.status);
      }
    }
  }, 60_000);
});

// ---- Query strings --------------------------------------------------------------------------------------

const rawQueries = [
  '%',
  '%%',
  '%zz',
  'q=%E0%A4%A',
  'q=%C0%80',
  'q=%ED%A0%80',
  'q=%FF%FE',
  'q=%00',
  'q=a%00b',
  '=&=&',
  '&&&',
  '?',
  'limit[]=1',
  'limit[a]=1',
  'limit=1&limit=2',
  'page=1&page=x',
  '__proto__=1',
  '__proto__[x]=1',
  'constructor[prototype][x]=1',
  'limit=NaN',
  'limit=Infinity',
  'limit=-0',
  'limit=1e308',
  'limit=0x10',
  'limit=%201',
  'page=99999999999999999999',
  'orgId=-0',
  'orgId=9999999999',
  'orgId=2147483648',
  'fleetId=1e308',
  'fleetId=1.5',
  'actor=9999999999',
  'actor=99999999999999999999',
  'since=99999999999999999999',
  'since=-271821-04-20T00:00:00Z',
  'since=275760-09-13T00:00:00.001Z',
  'since=8640000000000001',
  'until=0',
  'resourceId=%00',
  'tag=%3D',
  'tag==',
  'tag=%3D%3D%3D',
  'tag=a%3D%00',
  'status=online&status=offline',
  'sort=-',
  'sort=name%00',
  `q=${'a'.repeat(20_000)}`,
  `q=${'%25'.repeat(2_000)}`,
  `q=${'%5C'.repeat(2_000)}`,
];

const queryConstants = hostileConstants
  .filter((v): v is string | number => typeof v !== 'object')
  .map(String)
  .filter((v) => v.length < 10_000);

const queryValue = fc.oneof(
  fc.constantFrom(...queryConstants),
  hostileString,
  fc.integer().map(String),
  fc.double().map(String),
  fc.bigInt().map(String),
);

function hostileQuery(op: Operation): fc.Arbitrary<string> {
  const names = op.queryParameters.map((p) => p.name);
  const pair = fc
    .tuple(fc.oneof({ arbitrary: fc.constantFrom(...names), weight: 4 }, hostileString), queryValue)
    .map(([name, value]) => `${percentEncode(name)}=${percentEncode(value)}`);
  return fc.oneof(
    fc.array(pair, { minLength: 1, maxLength: 6 }).map((pairs) => pairs.join('&')),
    fc.constantFrom(...rawQueries),
    fc
      .tuple(fc.array(pair, { maxLength: 3 }), fc.constantFrom(...rawQueries))
      .map(([pairs, raw]) => [...pairs, raw].join('&')),
  );
}

describe.each(withQuery)('$key with a hostile query string', (op) => {
  it('answers hostile query parameters below 500, with the error shape on 4xx', async () => {
    const everyConstantInEveryParameter = op.queryParameters.flatMap((p) =>
      queryConstants.map((value) => `${p.name}=${percentEncode(value)}`),
    );
    await expectProperty(
      hostileQuery(op),
      RUNS.query,
      (query) => ({ op, url: `${validRequest(op).url.split('?')[0]}?${query}` }),
      [...rawQueries, ...everyConstantInEveryParameter],
    );
  }, 60_000);
});

// ---- Path parameters ------------------------------------------------------------------------------------

const garbageSegments = [
  '..',
  '../',
  '../..',
  '..%2F',
  '%2e%2e%2f',
  '%2E%2E',
  '.',
  '%2F',
  '%5C',
  '\\',
  '%00',
  'a%00b',
  '%E2%80%AE',
  '%F0%9F%92%A5',
  '%20',
  '12345678901234567890',
  '99999999999999999999',
  '9999999999',
  '4294967296',
  '2147483648',
  '12345678901234567890123456789012',
  '00000000000000000000000000000000',
  'ffffffffffffffffffffffffffffffffff',
  '-1',
  '0',
  '-0',
  '1.5',
  'NaN',
  'Infinity',
  'null',
  'undefined',
  '%5B%5D',
  '%7B%7D',
  percentEncode("' or 1=1 --"),
];

function isDecodable(segment: string): boolean {
  try {
    decodeURIComponent(segment);
    return true;
  } catch {
    return false;
  }
}

/** Whether a path segment, once decoded, is a plain small id: that would name a real resource, not garbage. */
function isPlainId(segment: string): boolean {
  let decoded: string;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    return false;
  }
  const n = Number(decoded);
  return decoded.trim() !== '' && Number.isInteger(n) && n > 0 && n < 2 ** 31;
}

const garbageSegment = fc
  .oneof(
    { arbitrary: fc.constantFrom(...garbageSegments), weight: 3 },
    hostileString.map(percentEncode),
    fc.bigInt({ min: 10n ** 10n, max: 10n ** 40n }).map(String),
    fc.stringMatching(/^\d{20,40}$/),
  )
  .filter(reachesRoute);

/**
 * Garbage that gets past the router to the route: not empty, decodable, at most 256 characters (the router
 * refuses the others itself, tested below), and not a plain small id (that would name a real resource).
 */
function reachesRoute(segment: string): boolean {
  return segment !== '' && segment.length <= 256 && isDecodable(segment) && !isPlainId(segment);
}

describe.each(withPathParameters)('$key with garbage path parameters', (op) => {
  it('answers garbage in each path parameter below 500, with the error shape on 4xx', async () => {
    const names = op.pathParameters.map((p) => p.name);
    await expectProperty(
      fc.tuple(fc.constantFrom(...names), garbageSegment),
      RUNS.path,
      ([garbled, segment]) => {
        const { body } = op.bodySchema ? validRequest(op) : { body: undefined };
        const url = fillPath(op.path, (name) =>
          name === garbled ? '@@garbage@@' : alphaPathValue(resources, op.path, name),
        )
          // fillPath encodes what it fills; the garbage goes in exactly as written (raw `../`, bad escapes…).
          .replace(encodeURIComponent('@@garbage@@'), segment);
        return {
          op,
          url,
          overSocket: true,
          ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
        };
      },
      names.flatMap((name) =>
        garbageSegments.filter(reachesRoute).map((segment): [string, string] => [name, segment]),
      ),
    );
  }, 60_000);
});

/** Path parameters whose values people choose and that become object keys: tag keys and variable names. */
const userNamedKeyParameters = ['key', 'name'];
const withUserNamedKey = operations.filter((op) =>
  op.pathParameters.some((p) => userNamedKeyParameters.includes(p.name)),
);

describe('user-named keys called like JavaScript object internals', () => {
  it('refuse __proto__ with a 400 naming it on every route that takes one', async () => {
    expect(withUserNamedKey.length).toBeGreaterThanOrEqual(8);
    for (const op of withUserNamedKey) {
      const { body } = op.bodySchema ? validRequest(op) : { body: undefined };
      const url = fillPath(op.path, (name) =>
        userNamedKeyParameters.includes(name) ? '__proto__' : alphaPathValue(resources, op.path, name),
      );
      const request: HostileRequest = {
        op,
        url,
        ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
      };
      const answer = await send(request);
      expect(answer.status, describeRequest(request)).toBe(400);
      expect(JSON.parse(answer.text).error.message, describeRequest(request)).toMatch(
        /"__proto__" is a reserved name: choose another/,
      );
    }
  });

  it('take constructor, prototype and toString as ordinary names', async () => {
    for (const op of withUserNamedKey.filter((o) => o.method === 'PUT')) {
      for (const key of ['constructor', 'prototype', 'toString']) {
        const { body } = validRequest(op);
        const url = fillPath(op.path, (name) =>
          userNamedKeyParameters.includes(name) ? key : alphaPathValue(resources, op.path, name),
        );
        const request: HostileRequest = { op, url, payload: JSON.stringify(body) };
        const answer = await send(request);
        expect(answer.status, describeRequest(request)).toBeLessThan(300);
      }
    }
  });
});

/**
 * Ids in paths and query strings: `id`, `…Id`, and the references that take an id or a name (a device, a fleet,
 * an organization: written by its id here).
 */
const isIdParameter = (p: { name: string; schema?: { type?: string | string[] } }) =>
  ['device', 'fleetId', 'orgId'].includes(p.name) ||
  ((p.name === 'id' || p.name.endsWith('Id')) && p.schema?.type === 'integer');
/** Other ways of writing the number 1…, each of which once named the same resource as the id itself. */
const nonCanonical = (id: string) => [`0${id}`, `00${id}`, `+${id}`, ` ${id}`, `${id}.0`, `${id}e0`];

describe('ids written other than in plain decimal', () => {
  it('are refused with 400 in every path, never read as the id (00001 is not 1)', async () => {
    const withIds = operations.filter((op) => op.pathParameters.some(isIdParameter));
    expect(withIds.length).toBeGreaterThan(20);
    const problems: string[] = [];
    for (const op of withIds) {
      const { body } = op.bodySchema ? validRequest(op) : { body: undefined };
      for (const garbled of op.pathParameters.filter(isIdParameter)) {
        // A device by its id: `device` otherwise names it by uuid.
        const id =
          garbled.name === 'device'
            ? String(resources.keyedDevice.id)
            : alphaPathValue(resources, op.path, garbled.name);
        for (const written of nonCanonical(id)) {
          const url = fillPath(op.path, (name) =>
            name === garbled.name ? written : alphaPathValue(resources, op.path, name),
          );
          const request: HostileRequest = {
            op,
            url,
            ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
          };
          const answer = await send(request);
          if (answer.status !== 400) problems.push(`${describeRequest(request)} → ${answer.status}`);
        }
      }
    }
    expect(problems, problems.slice(0, 5).join('\n')).toEqual([]);
  });

  it('are refused with 400 in every query parameter that takes an id', async () => {
    const withIds = operations.filter((op) => op.queryParameters.some(isIdParameter));
    expect(withIds.length).toBeGreaterThan(3);
    const problems: string[] = [];
    for (const op of withIds) {
      const [path, search] = validRequest(op).url.split('?');
      for (const garbled of op.queryParameters.filter(isIdParameter)) {
        for (const written of nonCanonical('1')) {
          const query = new URLSearchParams(search);
          query.set(garbled.name, written);
          const request: HostileRequest = { op, url: `${path}?${query}` };
          const answer = await send(request);
          if (answer.status !== 400) problems.push(`${describeRequest(request)} → ${answer.status}`);
        }
      }
    }
    expect(problems, problems.slice(0, 5).join('\n')).toEqual([]);
  });
});

/** Path segments the router refuses before any route runs, by why. */
const routerRefusedSegments: Record<string, string[]> = {
  'undecodable percent-escapes': ['%', '%zz', '%FF', '%C0%AE', 'a%E0%A4%A', '%ED%A0%80'],
  "parameters over the router's 256-character limit": ['x'.repeat(257), '9'.repeat(300)],
};

describe('garbage the router refuses before any route runs', () => {
  it.each(Object.entries(routerRefusedSegments))(
    'answers %s in any path parameter with a 4xx in the error shape',
    async (_why, segments) => {
      const problems: string[] = [];
      for (const op of withPathParameters) {
        const garbled = op.pathParameters[0]!.name;
        for (const segment of segments) {
          const url = fillPath(op.path, (name) =>
            name === garbled ? '@@garbage@@' : alphaPathValue(resources, op.path, name),
          ).replace(encodeURIComponent('@@garbage@@'), segment);
          const request: HostileRequest = { op, url, overSocket: true };
          const answer = await send(request);
          const problem = problemOf(answer);
          if (problem)
            problems.push(
              `${describeRequest(request)} → ${answer.status} ${answer.text.slice(0, 200)}: ${problem}`,
            );
        }
      }
      expect(
        problems.length,
        `${problems.length} answers break the rule, e.g.\n${problems.slice(0, 3).join('\n')}`,
      ).toBe(0);
    },
  );
});

// ---- Afterwards -----------------------------------------------------------------------------------------

describe('after the hostile input', () => {
  it('fuzzed every operation that takes a body, query parameters or path parameters', () => {
    const expected = [...new Set([...withBody, ...withQuery, ...withPathParameters].map((op) => op.key))];
    expect(expected.length).toBeGreaterThan(0);
    expect(expected.filter((key) => !fuzzed.has(key))).toEqual([]);
  });

  it('still answers /healthz and serves an ordinary list', async () => {
    const health = await server.api('GET', '/healthz');
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: 'ok' });
    // Names may have been changed by valid fuzzed bodies; the resources themselves are still there.
    const devices = await server.api('GET', '/api/v1/devices?limit=500', { token: server.adminToken });
    expect(devices.status, JSON.stringify(devices.body)).toBe(200);
    expect(devices.body.items.map((d: { id: number }) => d.id)).toContain(resources.keyedDevice.id);
    const fleets = await server.api('GET', `/api/v1/fleets?orgId=${resources.alpha.orgId}`, {
      token: server.adminToken,
    });
    expect(fleets.status, JSON.stringify(fleets.body)).toBe(200);
    expect(fleets.body.items.map((f: { id: number }) => f.id)).toContain(resources.alpha.fleet.id);
  });
});
