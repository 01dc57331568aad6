import type { paths } from '@fleetgate/web/api-schema';

/**
 * The shapes the fleetgate REST API (`<server>/api/v1`) answers, as the CLI reads them: taken from the server's
 * OpenAPI document (`npm -w packages/web run api-types` writes it, packages/web/test/api-schema.test.ts fails when
 * it is stale), the same declarations the web UI is typed from. Times are ISO 8601 strings.
 */

type JsonOf<R> = R extends { content: { 'application/json': infer T } } ? T : never;
/** The JSON body `method path` answers with `status`. */
type Answer<P extends keyof paths, M extends keyof paths[P], S extends number = 200> = paths[P][M] extends {
  responses: infer R;
}
  ? S extends keyof R
    ? JsonOf<R[S]>
    : never
  : never;
/** One item of a list route's `items`. */
type ItemOf<P extends keyof paths> =
  Answer<P, 'get' & keyof paths[P]> extends { items: (infer T)[] } ? T : never;

/** A page of a list: `?limit=` (1-500, default 50) and `?page=` (from 1). */
export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  limit: number;
}

/** Lists that are never paged (API keys, SSH keys, device types, variables). */
export interface Items<T> {
  items: T[];
}

export const roles = ['owner', 'admin', 'operator', 'viewer'] as const;
export type Role = (typeof roles)[number];

export type User = Answer<'/api/v1/users/{userId}', 'get'>;

/** `POST /users` and `POST /orgs/:orgId/members` answer a generated password once. */
export interface WithOneTimePassword {
  password?: string;
}

export type Me = Answer<'/api/v1/me', 'get'>;

export type LoginAnswer = Answer<'/api/v1/auth/login', 'post'>;

export type Org = Answer<'/api/v1/orgs/{orgId}', 'get'>;

/** `fleetIds: null` = the whole organization. */
export type Member = ItemOf<'/api/v1/orgs/{orgId}/members'>;

export type ApiKey = ItemOf<'/api/v1/api-keys'>;

export type SshKey = ItemOf<'/api/v1/ssh-keys'>;

export type Tags = Record<string, string>;

export type Fleet = Answer<'/api/v1/fleets/{fleetId}', 'get'>;

/** Built-in types have `id: null` and `orgId: null`. */
export type DeviceType = ItemOf<'/api/v1/device-types'>;

export const deviceStatuses = ['online', 'offline', 'pending', 'never-connected', 'decommissioned'] as const;
export const listSorts = ['name', '-name', 'createdAt', '-createdAt'] as const;

export type Device = Answer<'/api/v1/devices/{device}', 'get'>;

/** Secret values are write-only: the API answers `value: null`. */
export type Variable = ItemOf<'/api/v1/fleets/{fleetId}/variables'>;

/** A device's effective variable: its own, or inherited from its fleet. */
export type EffectiveVariable = ItemOf<'/api/v1/devices/{device}/variables'>;

export type AuditEvent = ItemOf<'/api/v1/audit'>;

/** A person's session to a device (tunnel, SSH, CONNECT), live or ended. */
export type RemoteSession = Answer<'/api/v1/sessions/{sessionId}', 'get'>;

/** How one diagnostics check came out. */
export const diagnosticsStatuses = ['ok', 'warning', 'failed', 'unavailable', 'timed_out'] as const;
export type DiagnosticsStatus = (typeof diagnosticsStatuses)[number];

/** A stored run of a device's remote diagnostics, as lists show it (`GET /devices/:device/diagnostics`). */
export type DiagnosticsRunSummary = ItemOf<'/api/v1/devices/{device}/diagnostics'>;

/** One run with its checks (`POST /devices/:device/diagnostics`, `GET …/diagnostics/:runId`). */
export type DiagnosticsRun = Answer<'/api/v1/devices/{device}/diagnostics/{runId}', 'get'>;

/** A port allow-list and where it comes from (`GET|PUT /fleets/:fleet/allowed-ports`, `…/devices/:device/…`). */
export type AllowedPorts = Answer<'/api/v1/devices/{device}/allowed-ports', 'get'>;
/** `GET|PUT /orgs/:org/session-recording`. */
export type RecordingSetting = Answer<'/api/v1/orgs/{orgId}/session-recording', 'get'>;
/** `GET|PUT /orgs/:org/device-limit`: the limit (null: none) and the devices it counts now. */
export type DeviceLimit = Answer<'/api/v1/orgs/{orgId}/device-limit', 'get'>;
