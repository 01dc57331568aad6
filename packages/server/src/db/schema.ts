import type { ColumnType, Generated } from 'kysely';

/**
 * The database schema as Kysely sees it. Times are UTC epoch milliseconds (integers), booleans are 0/1
 * integers and JSON is text (see `infra/db/json`), so the same queries run on SQLite and PostgreSQL.
 */
export interface Database {
  organizations: OrganizationTable;
  users: UserTable;
  memberships: MembershipTable;
  sessions: SessionTable;
  api_keys: ApiKeyTable;
  ssh_keys: SshKeyTable;
  fleets: FleetTable;
  device_types: DeviceTypeTable;
  devices: DeviceTable;
  device_tags: DeviceTagTable;
  fleet_tags: FleetTagTable;
  fleet_variables: FleetVariableTable;
  device_variables: DeviceVariableTable;
  audit_events: AuditEventTable;
  provisioning_keys: ProvisioningKeyTable;
  device_keys: DeviceKeyTable;
  auth_sets: AuthSetTable;
  recovery_candidates: RecoveryCandidateTable;
  device_connections: DeviceConnectionTable;
  device_state_samples: DeviceStateSampleTable;
  remote_sessions: RemoteSessionTable;
  session_recordings: SessionRecordingTable;
  session_recording_chunks: SessionRecordingChunkTable;
  device_web_sessions: DeviceWebSessionTable;
  device_diagnostics: DeviceDiagnosticsTable;
  instances: InstanceTable;
}

/**
 * A running fleetgate instance (features/cluster): it heartbeats while it runs; one whose heartbeat stops is
 * dead, and its devices' presence and its sessions are closed by whichever instance notices first.
 */
export interface InstanceTable {
  id: string;
  /** Where it runs, for people: host name and process id. */
  host: string;
  pid: number;
  /** Its internal link (`http://host:port`), where other instances open streams to devices it holds; null = none. */
  internal_url: string | null;
  started_at: number;
  heartbeat_at: number;
}

export interface OrganizationTable {
  id: Generated<number>;
  slug: string;
  name: string;
  /** Devices that may be accepted; null = unlimited, 0 = none. */
  device_limit: number | null;
  /** 1: shell sessions through the SSH gateway are recorded (asciicast v2). */
  session_recording: Generated<number>;
  created_at: number;
  updated_at: number;
}

export interface UserTable {
  id: Generated<number>;
  email: string;
  name: string;
  password_hash: string;
  /** 1 for server administrators (the first owner): may create users and see every organization. */
  is_server_admin: number;
  created_at: number;
  updated_at: number;
}

export interface MembershipTable {
  id: Generated<number>;
  org_id: number;
  user_id: number;
  role: string;
  /** JSON array of fleet ids the membership is narrowed to, or null for the whole organization. */
  fleet_ids: string | null;
  created_at: number;
}

export interface SessionTable {
  id: Generated<number>;
  user_id: number;
  token_hash: string;
  source_ip: string | null;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
}

export interface ApiKeyTable {
  id: Generated<number>;
  user_id: number;
  name: string;
  token_hash: string;
  /** The first characters of the key, shown in lists so people can tell keys apart. */
  token_prefix: string;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
  /** Null: the person's own key. A service (`openssh`): a service credential that may do only what it needs. */
  service: ColumnType<string | null, string | null | undefined, never>;
}

export interface SshKeyTable {
  id: Generated<number>;
  user_id: number;
  name: string;
  algorithm: string;
  public_key: string;
  fingerprint: string;
  created_at: number;
  last_used_at: number | null;
}

export interface FleetTable {
  id: Generated<number>;
  org_id: number;
  name: string;
  description: string;
  default_device_type: string | null;
  created_at: number;
  updated_at: number;
  /** When the fleet's variables last changed (epoch ms, strictly increasing): part of devices' revisions. */
  variables_changed_at: number | null;
  /** JSON array of ports people may reach on the fleet's devices; null = the default ([22]). */
  allowed_ports: string | null;
}

export interface DeviceTypeTable {
  id: Generated<number>;
  org_id: number;
  slug: string;
  name: string;
  arch: string;
  created_at: number;
}

export interface DeviceTable {
  id: Generated<number>;
  uuid: string;
  org_id: number;
  fleet_id: number;
  name: string;
  device_type: string;
  notes: string;
  created_at: number;
  updated_at: number;
  os_version: string | null;
  agent_version: string | null;
  /** Inventory attributes reported by the device: JSON object of name → value. */
  attributes: string | null;
  attributes_updated_at: number | null;
  decommissioned_at: number | null;
  /** Device tokens issued before this time (epoch ms) are refused. */
  tokens_valid_after: number | null;
  /** Presence (written in batches): online while connected_at is later than disconnected_at. */
  connected_at: number | null;
  disconnected_at: number | null;
  last_seen_at: number | null;
  /** Presence through OpenVPN (features/openvpn): online through it while vpn_connected_at is later. */
  vpn_connected_at: number | null;
  vpn_disconnected_at: number | null;
  /** The device's address on the VPN while it is connected through it. */
  vpn_address: string | null;
  /** The instance holding the device's tunnel (written with `connected_at`, its generation); null = none known. */
  tunnel_instance: string | null;
  /** The instance holding the device's OpenVPN connection (written with `vpn_connected_at`). */
  vpn_instance: string | null;
  /** Presence through mender-connect (features/mender-connect): online through it while mender_connected_at is later. */
  mender_connected_at: number | null;
  mender_disconnected_at: number | null;
  /** The instance holding the device's mender-connect link (written with `mender_connected_at`). */
  mender_instance: string | null;
  /** The agent's last state report: JSON object. */
  state: string | null;
  state_reported_at: number | null;
  /** When the device's own variables last changed (epoch ms, strictly increasing). */
  variables_changed_at: number | null;
  /** The last variables revision the agent reported as applied, when, and its error if it failed. */
  variables_applied_revision: number | null;
  variables_applied_at: number | null;
  variables_error: string | null;
  /** JSON array of ports people may reach on the device; null = the fleet's list. */
  allowed_ports: string | null;
}

export interface DeviceTagTable {
  device_id: number;
  key: string;
  value: string;
}

export interface FleetTagTable {
  fleet_id: number;
  key: string;
  value: string;
}

export interface FleetVariableTable {
  fleet_id: number;
  name: string;
  value: string;
  secret: number;
  /** The key that sealed `value` (a secret, `v1:<key id>:…`); null = `value` is plain. */
  key_id: ColumnType<string | null, string | null | undefined, string | null>;
  updated_at: number;
}

export interface DeviceVariableTable {
  device_id: number;
  name: string;
  value: string;
  secret: number;
  /** The key that sealed `value` (a secret, `v1:<key id>:…`); null = `value` is plain. */
  key_id: ColumnType<string | null, string | null | undefined, string | null>;
  updated_at: number;
}

export interface AuditEventTable {
  id: Generated<number>;
  at: number;
  org_id: number | null;
  actor_type: string;
  actor_id: number | null;
  actor_label: string;
  action: string;
  resource_type: string;
  resource_id: string | null;
  source_ip: string | null;
  outcome: string;
  details: string | null;
}

export interface ProvisioningKeyTable {
  id: Generated<number>;
  org_id: number;
  fleet_id: number;
  name: string;
  key_hash: string;
  key_prefix: string;
  max_uses: number | null;
  uses: Generated<number>;
  created_by: number | null;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
}

export interface DeviceKeyTable {
  id: Generated<number>;
  device_id: number;
  key_hash: string;
  /** How the key came: registration, rotation, an imported config.json, recovery, or balena's key exchange. */
  origin: 'register' | 'rotate' | 'import' | 'recovery' | 'exchange';
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

export type AuthSetStatus = 'pending' | 'accepted' | 'rejected' | 'preauthorized';
export type DeviceKeyType = 'rsa' | 'ecdsa-p256' | 'ecdsa-p384' | 'ed25519';

export interface AuthSetTable {
  id: Generated<number>;
  org_id: number;
  device_id: number | null;
  fleet_id: number | null;
  /** Canonical JSON of the identity attributes (keys sorted). */
  identity: string;
  identity_hash: string;
  /** PKIX (SPKI) PEM. */
  public_key: string;
  /** SHA-256 of the DER SPKI. */
  public_key_hash: string;
  key_type: DeviceKeyType;
  status: AuthSetStatus;
  source_ip: string | null;
  created_at: number;
  updated_at: number;
  last_request_at: number | null;
  request_count: Generated<number>;
}

export interface RecoveryCandidateTable {
  id: Generated<number>;
  uuid: string;
  key_hash: string;
  source_ip: string | null;
  agent_version: string | null;
  first_seen_at: number;
  last_seen_at: number;
  attempts: Generated<number>;
}

/** One tunnel connection of a device, from connect to disconnect (open while disconnected_at is null). */
export interface DeviceConnectionTable {
  id: Generated<number>;
  device_id: number;
  /** Which link: `tunnel` (the agent's WebSocket), `vpn` (OpenVPN) or `mender-connect`. */
  link: Generated<string>;
  remote_address: string | null;
  agent_version: string | null;
  connected_at: number;
  disconnected_at: number | null;
  duration_ms: number | null;
  close_code: number | null;
  close_reason: string | null;
  /** The instance that held it. */
  instance_id: string | null;
}

/** One minute's numbers from a device's state reports (migration 0015): the device page's charts. */
export interface DeviceStateSampleTable {
  device_id: number;
  /** Epoch ms / 60,000: at most one sample per device per minute. */
  minute: number;
  at: number;
  cpu_percent: number | null;
  memory_used_bytes: number | null;
  memory_total_bytes: number | null;
  disk_used_bytes: number | null;
  disk_total_bytes: number | null;
  temperature_celsius: number | null;
}

/** One person's session to a device (a stream opened through the stream router), live while ended_at is null. */
export interface RemoteSessionTable {
  id: string;
  org_id: number;
  fleet_id: number;
  device_id: number;
  device_uuid: string;
  device_name: string;
  user_id: number | null;
  actor_label: string;
  /** Which surface opened it: tunnel, connect, ssh… */
  surface: string;
  port: number | null;
  target: string;
  client_address: string | null;
  started_at: number;
  ended_at: number | null;
  bytes_to_device: Generated<number>;
  bytes_from_device: Generated<number>;
  outcome: string | null;
  terminated_by: number | null;
  terminated_by_label: string | null;
  /** The instance relaying it (where the person's connection is). */
  instance_id: string | null;
}

/** A shell session's recording (asciicast v2), by the id of its `remote_sessions` row. */
export interface SessionRecordingTable {
  session_id: string;
  org_id: number;
  device_uuid: string;
  started_at: number;
  ended_at: number | null;
  /** Bytes of asciicast text recorded. */
  bytes: number;
  /** 1 when the recording stopped at its size limit. */
  truncated: number;
}

/** Part of a recording: asciicast lines, in `seq` order. */
export interface SessionRecordingChunkTable {
  id: Generated<number>;
  session_id: string;
  seq: number;
  data: string;
}

/** A grant to a device port's web page, and the session it becomes once entered (features/device-web). */
export interface DeviceWebSessionTable {
  id: Generated<number>;
  /** SHA-256 (hex) of the single-use grant. */
  grant_hash: string;
  /** SHA-256 (hex) of the device origin's cookie; null until the grant is entered. */
  cookie_hash: string | null;
  user_id: number;
  /** What the person signed in with: the page works while it holds. */
  credential_type: 'session' | 'api_key' | 'ssh_key';
  credential_id: number;
  org_id: number;
  device_id: number;
  device_uuid: string;
  port: number;
  /** 1: HTTPS on the device port. */
  tls: number;
  created_at: number;
  grant_expires_at: number;
  entered_at: number | null;
  expires_at: number | null;
}

/** One run of a device's remote diagnostics: its report (features/diagnostics). */
export interface DeviceDiagnosticsTable {
  id: Generated<number>;
  org_id: number;
  device_id: number;
  session_id: string;
  requested_by: number | null;
  requested_by_label: string;
  started_at: number;
  finished_at: number;
  /** The version of the agent's set of checks. */
  version: number;
  agent_version: string;
  /** The worst status among its checks. */
  status: string;
  /** How many checks came out in each status, JSON text. */
  counts: string;
  /** The checks, JSON text. */
  checks: string;
}
