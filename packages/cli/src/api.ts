/**
 * The shapes the fleetgate REST API (`<server>/api/v1`) answers, as the CLI reads them. The server's
 * OpenAPI description at `/api/v1/openapi.json` is the reference; times are ISO 8601 strings.
 */

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

export interface User {
  id: number;
  email: string;
  name: string;
  serverAdmin: boolean;
  createdAt: string;
}

/** `POST /users` and `POST /orgs/:orgId/members` answer a generated password once. */
export interface WithOneTimePassword {
  password?: string;
}

export interface Me extends User {
  memberships: { orgId: number; orgName: string; orgSlug?: string; role: Role; fleetIds: number[] | null }[];
}

export interface LoginAnswer {
  token: string;
  expiresAt: string;
  user: User;
}

export interface Org {
  id: number;
  slug: string;
  name: string;
  createdAt: string;
  updatedAt: string;
}

/** `fleetIds: null` = the whole organization. */
export interface Member {
  userId: number;
  email: string;
  name: string;
  role: Role;
  fleetIds: number[] | null;
  createdAt: string;
}

export interface ApiKey {
  id: number;
  name: string;
  prefix: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
  /** Null for a person's own key; the service of a service credential (`openssh`). */
  service?: string | null;
}

export interface SshKey {
  id: number;
  name: string;
  algorithm: string;
  fingerprint: string;
  createdAt: string;
  lastUsedAt: string | null;
}

export type Tags = Record<string, string>;

export interface Fleet {
  id: number;
  orgId: number;
  name: string;
  description: string;
  defaultDeviceType: string | null;
  deviceCount: number;
  tags?: Tags;
  createdAt: string;
  updatedAt: string;
}

/** Built-in types have `id: null` and `orgId: null`. */
export interface DeviceType {
  id: number | null;
  slug: string;
  name: string;
  arch: string;
  builtin: boolean;
  orgId: number | null;
}

export const deviceStatuses = ['online', 'offline', 'pending', 'never-connected', 'decommissioned'] as const;
export const listSorts = ['name', '-name', 'createdAt', '-createdAt'] as const;

export interface Device {
  id: number;
  uuid: string;
  name: string;
  orgId: number;
  fleetId: number;
  fleetName: string;
  deviceType: string;
  notes: string;
  status: string;
  tags: Tags;
  /** When the device was last connected or heard from; null if never. */
  lastSeenAt: string | null;
  createdAt: string;
  updatedAt: string;
}

/** Secret values are write-only: the API answers `value: null`. */
export interface Variable {
  name: string;
  value: string | null;
  secret: boolean;
  updatedAt?: string;
}

/** A device's effective variable: its own, or inherited from its fleet. */
export interface EffectiveVariable extends Variable {
  source: 'device' | 'fleet';
  overridesFleet?: boolean;
}

export interface AuditEvent {
  id: number;
  at: string;
  orgId: number | null;
  actor: { type: string; id: number | null; label: string };
  action: string;
  resourceType: string;
  resourceId: string | null;
  sourceIp: string | null;
  outcome: string;
  details: Record<string, unknown> | null;
}

/** A person's session to a device (tunnel, SSH, CONNECT), live or ended. */
export interface RemoteSession {
  id: string;
  orgId: number;
  fleetId: number;
  device: { id: number; uuid: string; name: string };
  user: { id: number | null; label: string };
  surface: string;
  port: number | null;
  target: string;
  clientAddress: string | null;
  startedAt: string;
  endedAt: string | null;
  live: boolean;
  bytesToDevice: number;
  bytesFromDevice: number;
  outcome: string | null;
  terminatedBy: { id: number | null; label: string } | null;
}

/** How one diagnostics check came out. */
export const diagnosticsStatuses = ['ok', 'warning', 'failed', 'unavailable', 'timed_out'] as const;
export type DiagnosticsStatus = (typeof diagnosticsStatuses)[number];

/** A stored run of a device's remote diagnostics, as lists show it (`GET /devices/:device/diagnostics`). */
export interface DiagnosticsRunSummary {
  id: number;
  device: { id: number; uuid: string };
  sessionId: string;
  requestedBy: { id: number | null; label: string };
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  version: number;
  agentVersion: string;
  status: DiagnosticsStatus;
  counts: Record<DiagnosticsStatus, number>;
}

/** One run with its checks (`POST /devices/:device/diagnostics`, `GET …/diagnostics/:runId`). */
export interface DiagnosticsRun extends DiagnosticsRunSummary {
  checks: {
    id: string;
    title: string;
    status: DiagnosticsStatus;
    summary: string;
    durationMs: number;
    data: Record<string, unknown>;
  }[];
}
