import type { ColumnDataType, Kysely, Migration, MigrationProvider } from 'kysely';
import * as foundation from './0001_foundation.ts';
import * as unicodeFold from './0002_unicode_fold.ts';
import * as deviceIdentity from './0003_device_identity.ts';
import * as presence from './0004_presence.ts';
import * as authSetIdentityIndex from './0005_auth_set_identity_index.ts';
import * as sessions from './0006_sessions.ts';
import * as sessionRecordings from './0007_session_recordings.ts';
import * as serviceApiKeys from './0008_service_api_keys.ts';
import * as deviceListIndexes from './0009_device_list_indexes.ts';
import * as diagnostics from './0010_diagnostics.ts';
import * as deviceWeb from './0011_device_web.ts';
import * as sealedSecrets from './0012_sealed_secrets.ts';
import * as vpnPresence from './0013_vpn_presence.ts';
import * as instances from './0014_instances.ts';
import * as deviceStateSamples from './0015_device_state_samples.ts';
import * as menderConnectPresence from './0016_mender_connect_presence.ts';
import * as deviceTextIndex from './0017_device_text_index.ts';

/** Column types that differ between the dialects, handed to every migration. */
export interface MigrationContext {
  dialect: 'sqlite' | 'postgres';
  /** Auto-incrementing integer primary key. */
  id: ColumnDataType;
  /** 64-bit integer (epoch milliseconds). */
  bigint: ColumnDataType;
}

type VersionedMigration = {
  up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void>;
  down?(db: Kysely<unknown>, ctx: MigrationContext): Promise<void>;
};

/** Every migration, in order. Append new ones; never edit one that has shipped. */
const migrations: Record<string, VersionedMigration> = {
  '0001_foundation': foundation,
  '0002_unicode_fold': unicodeFold,
  '0003_device_identity': deviceIdentity,
  '0004_presence': presence,
  '0005_auth_set_identity_index': authSetIdentityIndex,
  '0006_sessions': sessions,
  '0007_session_recordings': sessionRecordings,
  '0008_service_api_keys': serviceApiKeys,
  '0009_device_list_indexes': deviceListIndexes,
  '0010_diagnostics': diagnostics,
  '0011_device_web': deviceWeb,
  '0012_sealed_secrets': sealedSecrets,
  '0013_vpn_presence': vpnPresence,
  '0014_instances': instances,
  '0015_device_state_samples': deviceStateSamples,
  '0016_mender_connect_presence': menderConnectPresence,
  '0017_device_text_index': deviceTextIndex,
};

export function migrationProvider(ctx: MigrationContext): MigrationProvider {
  return {
    async getMigrations() {
      const out: Record<string, Migration> = {};
      for (const [name, m] of Object.entries(migrations)) {
        out[name] = {
          up: (db) => m.up(db, ctx),
          down: m.down ? (db) => m.down!(db, ctx) : undefined,
        };
      }
      return out;
    },
  };
}

/** The names of every migration this build knows, oldest first: the last one is the schema version. */
export const migrationNames: readonly string[] = Object.keys(migrations);
