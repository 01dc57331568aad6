import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { recordSessionEnd, recordSessionStart } from '../src/features/sessions/service.ts';
import { seedTwoOrgs, type TestServer } from './harness.ts';

/**
 * Reading fleetgate's own OpenAPI document to generate test cases: its operations, concrete URLs that name
 * organization alpha's resources, and minimal valid request bodies. Shared by the access-control and the
 * hostile-input tests, so a route added to the server is tested by both without anyone listing it.
 */

/** The part of JSON Schema that @fastify/swagger emits for our zod schemas. */
export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  enum?: unknown[];
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean | number;
  minItems?: number;
  nullable?: boolean;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  $ref?: string;
}

export interface OpenApiParameter {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required?: boolean;
  schema?: JsonSchema;
}

interface OpenApiOperation {
  parameters?: OpenApiParameter[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: JsonSchema }> };
  responses?: Record<string, { content?: Record<string, unknown> }>;
  security?: unknown[];
}

export interface OpenApiDocument {
  paths: Record<string, Record<string, unknown>>;
  components?: { schemas?: Record<string, JsonSchema> };
}

/** One method on one path of the document, e.g. `PUT /api/v1/fleets/{fleetId}/tags/{key}`. */
export interface Operation {
  /** `METHOD /path`, as the document spells the path. */
  key: string;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD' | 'OPTIONS';
  path: string;
  pathParameters: OpenApiParameter[];
  queryParameters: OpenApiParameter[];
  /** The schema of an `application/json` request body, when the operation takes one. */
  bodySchema: JsonSchema | undefined;
  /** The operation's own `security` (an empty list marks a public route). */
  security: unknown[] | undefined;
  /** POST, PUT, PATCH and DELETE change something. */
  isWrite: boolean;
  /** Its 200 answer is a server-sent event stream, which stays open: read its first event only. */
  isEventStream: boolean;
}

const httpMethods = ['get', 'put', 'post', 'patch', 'delete', 'head', 'options'] as const;

/** Every operation of the document, in the document's order. */
export function operationsOf(doc: OpenApiDocument): Operation[] {
  return Object.entries(doc.paths).flatMap(([path, item]) => {
    const shared = (item.parameters as OpenApiParameter[] | undefined) ?? [];
    return httpMethods
      .filter((m) => item[m] !== undefined)
      .map((m) => {
        const op = item[m] as OpenApiOperation;
        const parameters = [...shared, ...(op.parameters ?? [])];
        const method = m.toUpperCase() as Operation['method'];
        return {
          key: `${method} ${path}`,
          method,
          path,
          pathParameters: parameters.filter((p) => p.in === 'path'),
          queryParameters: parameters.filter((p) => p.in === 'query'),
          bodySchema: op.requestBody?.content?.['application/json']?.schema,
          security: op.security,
          isWrite: ['POST', 'PUT', 'PATCH', 'DELETE'].includes(method),
          isEventStream: op.responses?.['200']?.content?.['text/event-stream'] !== undefined,
        };
      });
  });
}

/** Follows `$ref` and `allOf` so callers see one plain schema. */
export function resolveSchema(doc: OpenApiDocument, schema: JsonSchema): JsonSchema {
  if (schema.$ref) {
    const name = schema.$ref.replace('#/components/schemas/', '');
    const target = doc.components?.schemas?.[name];
    if (!target) throw new Error(`the document has no schema ${schema.$ref}`);
    return resolveSchema(doc, target);
  }
  if (schema.allOf?.length) {
    const merged: JsonSchema = { properties: {}, required: [] };
    for (const part of schema.allOf.map((inner) => resolveSchema(doc, inner))) {
      const { properties, required, ...rest } = part;
      Object.assign(merged, rest);
      Object.assign(merged.properties!, properties);
      merged.required!.push(...(required ?? []));
    }
    return merged;
  }
  return schema;
}

/** A fresh ed25519 public key as one `id_ed25519.pub` line. */
export function ed25519Line(comment: string): string {
  const x = Buffer.from(generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const field = (bytes: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, bytes.length]), bytes]);
  const blob = Buffer.concat([field(Buffer.from('ssh-ed25519')), field(x)]);
  return `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
}

/** Strings tried, in order, against a `pattern`; none of them holds the word that marks alpha's data. */
const patternCandidates = [
  'access-check',
  'accesscheck',
  'ACCESS_CHECK',
  'aarch64',
  'access-check-key-0123456789',
  'a',
  'A',
  '1',
  '0123456789abcdef0123456789abcdef',
];

let uniqueCounter = 0;

export interface ValueOptions {
  /** Values for properties by name, whatever their schema: references to resources, formats JSON Schema cannot say. */
  byName: Record<string, () => unknown>;
  /** Property names that look like references (`…Id`, `…Ids`) must be in `byName`; this says which look so. */
  looksLikeReference(name: string): boolean;
}

/**
 * The smallest value the schema accepts: required properties only (plus any property `byName` knows, so
 * references always point somewhere real), an enum's first value, formats such as e-mail and uuid honoured.
 * Throws, naming the field, when it meets a reference it has no value for or a pattern it cannot satisfy.
 */
export function minimalValue(
  doc: OpenApiDocument,
  schema: JsonSchema,
  options: ValueOptions,
  where = 'body',
): unknown {
  const s = resolveSchema(doc, schema);
  const variants = s.anyOf ?? s.oneOf;
  if (variants?.length) {
    const first = variants.map((v) => resolveSchema(doc, v)).find((v) => v.type !== 'null') ?? variants[0]!;
    return minimalValue(doc, first, options, where);
  }
  if (s.enum?.length) return s.enum[0];
  const type = Array.isArray(s.type) ? s.type.find((t) => t !== 'null') : s.type;
  switch (type) {
    case 'object':
    case undefined: {
      if (type === undefined && !s.properties) return 'access-check';
      const value: Record<string, unknown> = {};
      const required = new Set(s.required ?? []);
      for (const [name, property] of Object.entries(s.properties ?? {})) {
        const known = options.byName[name];
        if (known) value[name] = known();
        else if (required.has(name)) {
          if (options.looksLikeReference(name)) {
            throw new Error(
              `${where}.${name} looks like a reference to a resource, but there is no value for it: ` +
                'add it to the table of alpha references so the request names a real resource',
            );
          }
          value[name] = minimalValue(doc, property, options, `${where}.${name}`);
        }
      }
      return value;
    }
    case 'array':
      return Array.from({ length: s.minItems ?? 0 }, () =>
        minimalValue(doc, s.items ?? {}, options, `${where}[]`),
      );
    case 'integer':
    case 'number': {
      const exclusive = s.exclusiveMinimum === true ? 1 : 0;
      const floor =
        typeof s.exclusiveMinimum === 'number' ? s.exclusiveMinimum + 1 : (s.minimum ?? 1) + exclusive;
      return Math.max(floor, 1);
    }
    case 'boolean':
      return false;
    case 'string':
      return minimalString(s, where);
    default:
      throw new Error(`${where}: no minimal value for JSON Schema type ${String(type)}`);
  }
}

function minimalString(s: JsonSchema, where: string): string {
  switch (s.format) {
    case 'email':
      return `access-check-${++uniqueCounter}@example.test`;
    case 'uuid':
      return randomUUID();
    case 'date-time':
      return new Date().toISOString();
  }
  const fits = (text: string) =>
    text.length >= (s.minLength ?? 0) &&
    text.length <= (s.maxLength ?? Number.POSITIVE_INFINITY) &&
    (!s.pattern || new RegExp(s.pattern, 'u').test(text));
  for (const candidate of patternCandidates) {
    const padded = candidate.padEnd(s.minLength ?? 0, 'x');
    if (fits(padded)) return padded;
  }
  throw new Error(`${where}: none of the candidate strings matches the pattern ${s.pattern}`);
}

/** Fills `{name}` in a document path with `valueFor(name)`, URL-encoded. */
export function fillPath(path: string, valueFor: (name: string) => string): string {
  return path.replace(/\{([^}]+)\}/g, (_match, name: string) => encodeURIComponent(valueFor(name)));
}

export const alphaTagKey = 'alpha-tag';
export const alphaVariableName = 'ALPHA_VAR';
export const alphaDeviceTypeSlug = 'alpha-board';
export const viewerPassword = 'alpha viewer password';
export const betaOwnerPassword = 'beta owner password';

/** A random 32-hex device uuid. */
export function newDeviceUuid(): string {
  return randomBytes(16).toString('hex');
}

/** A random device key: printable ASCII, 16-512 characters. */
export function newDeviceKey(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * `seedTwoOrgs`, plus one of everything else alpha can own, so every path parameter of the API has a real
 * alpha value: a device with a key of its own (imported, so its key is known), a tag and a variable on
 * alpha's fleet and on that device, a custom device type, a provisioning key, and an API key and an SSH key of
 * alpha's owner; and one recovery candidate (server-wide, no organization's). Alpha is renamed
 * "Alpha Default" so everything of alpha's shows the word "alpha". The alpha viewer gets a known password
 * (for throwaway sessions), and with it a new token.
 */
export async function seedAlphaResources(server: TestServer) {
  const seed = await seedTwoOrgs(server);
  const { api, adminToken: token } = server;
  const must = async (method: string, url: string, body: unknown, status: number) => {
    const answer = await api(method, url, { token, body });
    if (answer.status !== status)
      throw new Error(`${method} ${url} failed: ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer.body;
  };
  const { orgId, fleet } = seed.alpha;
  await must('PATCH', `/api/v1/orgs/${orgId}`, { name: 'Alpha Default' }, 200);
  const deviceType = await must(
    'POST',
    '/api/v1/device-types',
    { orgId, slug: alphaDeviceTypeSlug, name: 'Alpha board', arch: 'aarch64' },
    201,
  );
  const device = { uuid: newDeviceUuid(), key: newDeviceKey() };
  const imported = await must(
    'POST',
    '/api/v1/devices/import',
    {
      // Alpha's own device type, so lists filtered by it (`?deviceType=`) still hold alpha's data.
      items: [
        {
          uuid: device.uuid,
          apiKey: device.key,
          fleetId: fleet.id,
          name: 'alpha-keyed-device',
          deviceType: alphaDeviceTypeSlug,
        },
      ],
    },
    200,
  );
  if (imported.items[0]?.outcome !== 'created')
    throw new Error(`importing alpha's keyed device failed: ${JSON.stringify(imported)}`);
  const deviceKeys = await must('GET', `/api/v1/devices/${device.uuid}/keys`, undefined, 200);
  // A session of alpha's owner to the keyed device (recorded as the stream router records one: opening one for real
  // needs a live tunnel), for /sessions/{sessionId}.
  const me = await must('GET', '/api/v1/me', undefined, 200);
  const alphaSessionId = randomBytes(8).toString('hex');
  const sessionActor = {
    principal: {
      type: 'user' as const,
      userId: me.id as number,
      email: me.email as string,
      serverAdmin: true,
      memberships: [],
      credential: { type: 'session' as const, id: 0 },
    },
    sourceIp: '127.0.0.1',
  };
  const sessionDevice = {
    id: imported.items[0].deviceId as number,
    uuid: device.uuid,
    name: 'alpha-keyed-device',
    orgId,
    fleetId: fleet.id as number,
  };
  await recordSessionStart({ db: server.database.db }, sessionActor, {
    id: alphaSessionId,
    device: sessionDevice,
    surface: 'tunnel',
    port: 22,
    target: 'port 22',
    details: { port: 22 },
  });
  await recordSessionEnd(
    { db: server.database.db },
    sessionActor,
    { id: alphaSessionId, orgId, deviceUuid: device.uuid },
    { bytesToDevice: 10, bytesFromDevice: 20, outcome: 'closed', details: {} },
  );
  // Its recording (as the SSH gateway writes one for a recorded shell), for /sessions/{sessionId}/recording.
  await server.database.db
    .insertInto('session_recordings')
    .values({
      session_id: alphaSessionId,
      org_id: orgId,
      device_uuid: device.uuid,
      started_at: Date.now(),
      ended_at: Date.now(),
      bytes: 0,
      truncated: 0,
    })
    .execute();
  await server.database.db
    .insertInto('session_recording_chunks')
    .values({
      session_id: alphaSessionId,
      seq: 0,
      data: '{"version":2,"width":80,"height":24,"title":"alpha"}\n[0.1,"o","alpha$ "]\n',
    })
    .execute();
  // A stored diagnostics run of the keyed device (running one for real needs a live tunnel), for
  // /devices/{device}/diagnostics/{runId}.
  const alphaDiagnosticsRun = await server.database.db
    .insertInto('device_diagnostics')
    .values({
      org_id: orgId,
      device_id: sessionDevice.id,
      session_id: alphaSessionId,
      requested_by: me.id as number,
      requested_by_label: me.email as string,
      started_at: Date.now(),
      finished_at: Date.now(),
      version: 1,
      agent_version: 'alpha-agent',
      status: 'ok',
      counts: JSON.stringify({ ok: 1, warning: 0, failed: 0, unavailable: 0, timed_out: 0 }),
      checks: JSON.stringify([
        { id: 'disk', title: 'Disk usage', status: 'ok', summary: 'alpha disk', durationMs: 1, data: {} },
      ]),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  await must('PUT', `/api/v1/fleets/${fleet.id}/tags/${alphaTagKey}`, { value: 'alpha' }, 204);
  await must('PUT', `/api/v1/devices/${device.uuid}/tags/${alphaTagKey}`, { value: 'alpha' }, 204);
  await must('PUT', `/api/v1/fleets/${fleet.id}/variables/${alphaVariableName}`, { value: 'alpha' }, 200);
  await must('PUT', `/api/v1/devices/${device.uuid}/variables/${alphaVariableName}`, { value: 'alpha' }, 200);
  const provisioningKey = await must(
    'POST',
    `/api/v1/fleets/${fleet.id}/provisioning-keys`,
    { name: 'alpha-provisioning-key' },
    201,
  );
  const apiKey = await must('POST', '/api/v1/api-keys', { name: 'alpha-admin-key' }, 201);
  const sshKey = await must(
    'POST',
    '/api/v1/ssh-keys',
    { publicKey: ed25519Line('alpha-admin@laptop') },
    201,
  );

  // A device the server does not know presenting uuid + key becomes a recovery candidate.
  const lost = newDeviceUuid();
  await api('GET', '/api/v1/device/self', { token: `${lost}:${newDeviceKey()}` });
  const candidates = await must('GET', '/api/v1/recovery-candidates', undefined, 200);
  const candidate = (candidates.items as { id: number; uuid: string }[]).find((c) => c.uuid === lost);
  if (!candidate) throw new Error(`no recovery candidate for ${lost}: ${JSON.stringify(candidates)}`);

  // A preauthorized auth set (Mender-style identity + public key) of alpha's: every /auth-sets/{id} names it.
  const preauthorized = await must(
    'POST',
    '/api/v1/auth-sets/preauthorize',
    {
      fleetId: fleet.id,
      devices: [
        {
          identity: { serial: 'alpha-auth-set' },
          publicKey: generateKeyPairSync('ed25519')
            .publicKey.export({ type: 'spki', format: 'pem' })
            .toString(),
        },
      ],
    },
    200,
  );
  if (preauthorized.items[0]?.outcome !== 'created')
    throw new Error(`preauthorizing alpha's auth set failed: ${JSON.stringify(preauthorized)}`);

  await must('PATCH', `/api/v1/users/${seed.people.alphaViewer.userId}`, { password: viewerPassword }, 200);
  seed.people.alphaViewer.token = await server.login(seed.people.alphaViewer.email, viewerPassword);
  return {
    ...seed,
    /** Alpha's device with a key of its own: the one every `{device}` in a path names. */
    keyedDevice: {
      id: imported.items[0].deviceId as number,
      uuid: device.uuid,
      /** Its credential, as a device sends it: `Authorization: Bearer <uuid>:<key>`. */
      credential: `${device.uuid}:${device.key}`,
      keyId: deviceKeys.items[0].id as number,
    },
    alphaDeviceTypeId: deviceType.id as number,
    alphaProvisioningKeyId: provisioningKey.id as number,
    /** The provisioning key itself, as a device sends it to register. */
    alphaProvisioningKey: provisioningKey.key as string,
    alphaApiKeyId: apiKey.id as number,
    alphaSshKeyId: sshKey.id as number,
    recoveryCandidateId: candidate.id,
    alphaAuthSetId: preauthorized.items[0].authSetId as number,
    alphaSessionId,
    alphaDiagnosticsRunId: alphaDiagnosticsRun.id,
  };
}

export type AlphaResources = Awaited<ReturnType<typeof seedAlphaResources>>;

/**
 * The alpha value of each path parameter, by name (and, for names several routes use, by route). A parameter
 * this does not know throws, so a new route cannot be tested with a made-up id and pass for the wrong reason.
 */
export function alphaPathValue(resources: AlphaResources, path: string, name: string): string {
  const byRoute = (values: [RegExp, number][]) => {
    const found = values.find(([route]) => route.test(path));
    if (!found) {
      throw new Error(
        `${path}: {${name}} is known on other routes but not this one; say what it names in alphaPathValue`,
      );
    }
    return String(found[1]);
  };
  switch (name) {
    case 'orgId':
      return String(resources.alpha.orgId);
    case 'fleetId':
      return String(resources.alpha.fleet.id);
    case 'device':
      return resources.keyedDevice.uuid;
    case 'userId':
      // A member of alpha other than its owner: /users/{userId} and /orgs/{orgId}/members/{userId} alike.
      return String(resources.people.alphaOperator.userId);
    case 'key':
      return alphaTagKey;
    case 'name':
      return alphaVariableName;
    case 'typeId':
      return String(resources.alphaDeviceTypeId);
    case 'sessionId':
      return resources.alphaSessionId;
    case 'runId':
      // /devices/{device}/diagnostics/{runId}: the keyed device's stored run.
      return String(resources.alphaDiagnosticsRunId);
    case 'port':
      // /devices/{device}/ports/{port} and …/ports/{port}/vnc: the default allow-list's port.
      return '22';
    case 'keyId':
      return byRoute([
        [/^\/api\/v1\/api-keys\//, resources.alphaApiKeyId],
        [/^\/api\/v1\/ssh-keys\//, resources.alphaSshKeyId],
        [/^\/api\/v1\/provisioning-keys\//, resources.alphaProvisioningKeyId],
        [/^\/api\/v1\/devices\/\{device\}\/keys\//, resources.keyedDevice.keyId],
      ]);
    case 'id':
      return byRoute([
        [/^\/api\/v1\/recovery-candidates\//, resources.recoveryCandidateId],
        [/^\/api\/v1\/auth-sets\//, resources.alphaAuthSetId],
      ]);
    default:
      throw new Error(
        `${path}: no alpha value for the path parameter {${name}}; add it to alphaPathValue in ` +
          'test/openapi-cases.ts so the route is tested against a real alpha resource',
      );
  }
}

/** Body and query fields that name one of alpha's resources. */
export const alphaReferenceFields = ['orgId', 'fleetId', 'fleetIds', 'deviceType', 'defaultDeviceType'];

/** Values of body and query fields that name resources: alpha's, or (recovery candidates) the server's. */
export function referenceValues(resources: AlphaResources): Record<string, () => unknown> {
  return {
    orgId: () => resources.alpha.orgId,
    fleetId: () => resources.alpha.fleet.id,
    fleetIds: () => [resources.alpha.fleet.id],
    deviceType: () => alphaDeviceTypeSlug,
    defaultDeviceType: () => alphaDeviceTypeSlug,
    ids: () => [resources.recoveryCandidateId],
  };
}

/** `orgId`, `ids`, `fleet_id`, `uuid`…: a field that probably names a resource (or is one's identity). */
export function looksLikeReference(name: string): boolean {
  return (
    /^(?:id|ids|uuid)$|(?:Id|Ids|Uuid|_id|_ids|_uuid)$/.test(name) || alphaReferenceFields.includes(name)
  );
}

/** Values for fields whose valid form JSON Schema cannot describe, or that must be new each time. */
export const fieldsBeyondSchema: Record<string, () => unknown> = {
  publicKey: () => ed25519Line('access-check'),
  /** A new device's identity (registration, import): fresh, so it never collides. */
  uuid: newDeviceUuid,
  apiKey: newDeviceKey,
  api_key: newDeviceKey,
};

/** Query parameters whose valid form JSON Schema cannot describe: a file's absolute path on a device. */
export const queryValuesBeyondSchema: Record<string, () => string> = {
  path: () => '/etc/hostname',
};

/** A concrete request for an operation against alpha's resources: URL (with query) and minimal body. */
export function alphaRequest(
  doc: OpenApiDocument,
  op: Operation,
  resources: AlphaResources,
): { url: string; body: unknown } {
  const references = referenceValues(resources);
  const options: ValueOptions = { byName: { ...fieldsBeyondSchema, ...references }, looksLikeReference };
  const url = fillPath(op.path, (name) => alphaPathValue(resources, op.path, name));
  const query = new URLSearchParams();
  for (const p of op.queryParameters) {
    const reference = references[p.name] ?? queryValuesBeyondSchema[p.name];
    if (reference) query.set(p.name, String(reference()));
    else if (p.required)
      query.set(p.name, String(minimalValue(doc, p.schema ?? {}, options, `query.${p.name}`)));
  }
  const search = query.toString();
  return {
    url: search ? `${url}?${search}` : url,
    body: op.bodySchema ? minimalValue(doc, op.bodySchema, options) : undefined,
  };
}

/** Every property name anywhere in a schema (nested objects and array items included). */
function propertyNames(doc: OpenApiDocument, schema: JsonSchema, seen = new Set<JsonSchema>()): string[] {
  const s = resolveSchema(doc, schema);
  if (seen.has(s)) return [];
  seen.add(s);
  return [
    ...Object.entries(s.properties ?? {}).flatMap(([name, inner]) => [
      name,
      ...propertyNames(doc, inner, seen),
    ]),
    ...(s.items ? propertyNames(doc, s.items, seen) : []),
    ...[...(s.anyOf ?? []), ...(s.oneOf ?? [])].flatMap((inner) => propertyNames(doc, inner, seen)),
  ];
}

/** Whether the operation's request names alpha besides in its path: a reference field in query or body. */
export function namesAlphaOutsidePath(doc: OpenApiDocument, op: Operation): boolean {
  if (op.queryParameters.some((p) => alphaReferenceFields.includes(p.name))) return true;
  return (
    !!op.bodySchema && propertyNames(doc, op.bodySchema).some((name) => alphaReferenceFields.includes(name))
  );
}
