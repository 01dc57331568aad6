import { sql } from 'kysely';
import type { Actor } from '../../infra/access/index.ts';
import type { Config } from '../../infra/config/index.ts';
import type { Db } from '../../infra/db/index.ts';
import {
  addSecretKey,
  loadSecretKeyRing,
  reloadingKeyRing,
  SECRETS_KEY_ENV,
  SecretKeyError,
  type SecretKeyRing,
  secretsKeyFile,
} from '../../infra/secrets/index.ts';
import { type WriteDeps, write } from '../../infra/service/index.ts';

/**
 * Secret variables are sealed at rest (infra/secrets): `value` holds `v1:<key id>:…` and `key_id` the key's
 * id; the variable's identity is the sealing context, so a sealed value moved to another variable's row does
 * not open. Non-secret values stay plain (`key_id` null).
 */

export type VariableOwner = { fleetId: number } | { deviceId: number };

/** What a variable's sealed value is bound to: its owner and name. */
export function sealingContext(owner: VariableOwner, name: string): string {
  return 'fleetId' in owner
    ? `fleet-variable:${owner.fleetId}:${name}`
    : `device-variable:${owner.deviceId}:${name}`;
}

/** The row's stored form of a value: sealed for a secret, plain otherwise. */
export function storedValue(
  secrets: SecretKeyRing,
  owner: VariableOwner,
  name: string,
  value: string,
  secret: boolean,
): { value: string; key_id: string | null } {
  return secret
    ? { value: secrets.seal(value, sealingContext(owner, name)), key_id: secrets.currentKeyId }
    : { value, key_id: null };
}

/** The plain value of a stored row (throws `SealedValueError` when a sealed one does not open). */
export function plainValue(
  secrets: SecretKeyRing,
  owner: VariableOwner,
  row: { name: string; value: string; key_id: string | null },
): string {
  return row.key_id === null ? row.value : secrets.open(row.value, sealingContext(owner, row.name));
}

/**
 * At start, before anything reads variables: the key ring (`FLEETGATE_SECRETS_KEY`, else the key file, made
 * here on the very first start), checked against the keys the database's sealed values name. A value sealed
 * by a key the ring lacks stops the start with what to do: starting anyway would make those values
 * unreadable, and a new key file would hide that the right one is missing.
 */
export async function openSecretVariableKeys(db: Db, config: Config): Promise<SecretKeyRing> {
  const ring = loadSecretKeyRing({ dataDir: config.dataDir, envKeys: config.secretsKey });
  const used = await keyIdsInUse(db);
  const missing = [...used].filter((id) => !ring?.keyIds.includes(id));
  if (missing.length) {
    const file = secretsKeyFile(config.dataDir);
    const where = ring
      ? `${ring.source} does not hold key${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`
      : `neither ${file} nor ${SECRETS_KEY_ENV} gives any key`;
    throw new SecretKeyError(
      `secret variables in the database are sealed with key${missing.length > 1 ? 's' : ''} ${missing.join(', ')}, but ${where}. ` +
        `Restore ${file} from the backup of the data directory (or set ${SECRETS_KEY_ENV} to the keys it was given, ` +
        'comma separated), then start again. fleetgate did not start, and changed nothing.',
    );
  }
  const opened = ring ?? addSecretKey(config.dataDir);
  if (config.secretsKey) return opened;
  // A file that went missing or bad since the start keeps the ring as it was (the error is not worth a crash).
  return reloadingKeyRing(opened, () => {
    try {
      return loadSecretKeyRing({ dataDir: config.dataDir });
    } catch {
      return undefined;
    }
  });
}

async function keyIdsInUse(db: Db): Promise<Set<string>> {
  const [fleet, device] = await Promise.all([
    db.selectFrom('fleet_variables').select('key_id').distinct().where('key_id', 'is not', null).execute(),
    db.selectFrom('device_variables').select('key_id').distinct().where('key_id', 'is not', null).execute(),
  ]);
  return new Set([...fleet, ...device].map((r) => r.key_id!));
}

/**
 * Seals every secret value still stored plain (written before sealing existed, or by an older instance), each
 * by a conditional update so that two instances starting together never seal one twice. Answers how many.
 *
 * When it sealed any, the plain copies are scrubbed from the database files too: an UPDATE leaves the old row
 * in freed pages (SQLite, and its write-ahead log) or as a dead tuple (PostgreSQL), where anyone reading the
 * file would still find it. SQLite is rewritten (VACUUM) and its log truncated; PostgreSQL's two variable tables
 * are rewritten (VACUUM FULL, a short exclusive lock, once). Copies made before (backups, PostgreSQL's WAL
 * archive) are out of reach.
 */
export async function sealPlainSecretVariables(
  db: Db,
  secrets: SecretKeyRing,
  dialect: 'sqlite' | 'postgres',
): Promise<number> {
  const sealed = await sealPlainRows(db, secrets);
  if (sealed > 0) {
    if (dialect === 'sqlite') {
      await sql`vacuum`.execute(db);
      await sql`pragma wal_checkpoint(truncate)`.execute(db);
    } else {
      await sql`vacuum full fleet_variables, device_variables`.execute(db);
    }
  }
  return sealed;
}

async function sealPlainRows(db: Db, secrets: SecretKeyRing): Promise<number> {
  let sealed = 0;
  const fleetRows = await db
    .selectFrom('fleet_variables')
    .select(['fleet_id', 'name', 'value'])
    .where('secret', '=', 1)
    .where('key_id', 'is', null)
    .execute();
  for (const row of fleetRows) {
    const stored = storedValue(secrets, { fleetId: row.fleet_id }, row.name, row.value, true);
    const result = await db
      .updateTable('fleet_variables')
      .set(stored)
      .where('fleet_id', '=', row.fleet_id)
      .where('name', '=', row.name)
      .where('key_id', 'is', null)
      .where('value', '=', row.value)
      .executeTakeFirst();
    sealed += Number(result.numUpdatedRows);
  }
  const deviceRows = await db
    .selectFrom('device_variables')
    .select(['device_id', 'name', 'value'])
    .where('secret', '=', 1)
    .where('key_id', 'is', null)
    .execute();
  for (const row of deviceRows) {
    const stored = storedValue(secrets, { deviceId: row.device_id }, row.name, row.value, true);
    const result = await db
      .updateTable('device_variables')
      .set(stored)
      .where('device_id', '=', row.device_id)
      .where('name', '=', row.name)
      .where('key_id', 'is', null)
      .where('value', '=', row.value)
      .executeTakeFirst();
    sealed += Number(result.numUpdatedRows);
  }
  return sealed;
}

/**
 * Re-seals every sealed value with the ring's current key (rotation), in one transaction with its audit event
 * (`secrets.rotate`, by the machine's operator `osUser`): all or none. Every value must open with the ring (the
 * caller checked the key ids with `openSecretVariableKeys`). Answers how many values were re-sealed.
 */
export async function resealSecretVariables(
  deps: WriteDeps,
  osUser: string,
  secrets: SecretKeyRing,
): Promise<number> {
  const actor: Actor = { principal: { type: 'system', osUser }, sourceIp: null };
  return write(deps, actor, { action: 'secrets.rotate', resourceType: 'secret_key' }, async (trx) => {
    let count = 0;
    const fleetRows = await trx
      .selectFrom('fleet_variables')
      .select(['fleet_id', 'name', 'value', 'key_id'])
      .where('key_id', 'is not', null)
      .where('key_id', '!=', secrets.currentKeyId)
      .execute();
    for (const row of fleetRows) {
      const owner = { fleetId: row.fleet_id };
      await trx
        .updateTable('fleet_variables')
        .set(storedValue(secrets, owner, row.name, plainValue(secrets, owner, row), true))
        .where('fleet_id', '=', row.fleet_id)
        .where('name', '=', row.name)
        .execute();
      count++;
    }
    const deviceRows = await trx
      .selectFrom('device_variables')
      .select(['device_id', 'name', 'value', 'key_id'])
      .where('key_id', 'is not', null)
      .where('key_id', '!=', secrets.currentKeyId)
      .execute();
    for (const row of deviceRows) {
      const owner = { deviceId: row.device_id };
      await trx
        .updateTable('device_variables')
        .set(storedValue(secrets, owner, row.name, plainValue(secrets, owner, row), true))
        .where('device_id', '=', row.device_id)
        .where('name', '=', row.name)
        .execute();
      count++;
    }
    return {
      value: count,
      orgId: null,
      resourceId: secrets.currentKeyId,
      details: { keyId: secrets.currentKeyId, resealed: count, osUser },
    };
  });
}
