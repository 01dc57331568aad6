import os from 'node:os';
import path from 'node:path';
import { openSecretVariableKeys, resealSecretVariables } from './features/variables/index.ts';
import { type ConfigInput, loadConfig } from './infra/config/index.ts';
import { openDatabase } from './infra/db/index.ts';
import { EventBus } from './infra/events/index.ts';
import { createLogger } from './infra/logging/index.ts';
import { addSecretKey, loadSecretKeyRing, secretsKeyFile } from './infra/secrets/index.ts';

export interface RotatedSecrets {
  /** Id of the key that seals from now on. */
  keyId: string;
  /** Secret values re-sealed with it. */
  resealed: number;
  /** Where the keys are: the key file, or `FLEETGATE_SECRETS_KEY`. */
  source: string;
}

/**
 * `fleetgate secrets rotate`: re-seals every secret variable with a new key, in one transaction (all or none).
 * With the key file (`<data dir>/keys/secrets.json`), a new key is put first in the file (written before any
 * value changes, so a failure halfway leaves every value readable) and the older keys stay in it, so backups
 * made before the rotation still open. A server running on that data directory may keep running: it reads the
 * file again when it meets the new key. With `FLEETGATE_SECRETS_KEY`, the operator puts the new key first in
 * the list (`<new>,<old>`), restarts the servers with it, and then rotates: the values are re-sealed with it.
 *
 * Runs as its own command rather than an API call: the keys live beside the data (file or environment of each
 * instance), not in the database, and the server holds no API that hands out or changes them.
 */
export async function rotateSecretKeys(
  /** `osUser`: who runs it on the machine, for the audit event (default: this process's user). */
  options: { env?: NodeJS.ProcessEnv; flags?: ConfigInput; osUser?: string } = {},
): Promise<RotatedSecrets> {
  const config = loadConfig(options.env ?? process.env, options.flags ?? {});
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    schema: config.dbSchema,
    sqliteFile: path.join(config.dataDir, 'fleetgate.db'),
  });
  try {
    // Every sealed value must open with the keys at hand before anything changes.
    await openSecretVariableKeys(database.db, config);
    const ring = config.secretsKey
      ? loadSecretKeyRing({ dataDir: config.dataDir, envKeys: config.secretsKey })!
      : addSecretKey(config.dataDir);
    const log = createLogger('silent');
    const events = new EventBus((err, name) => log.error({ err, event: name }, 'an event listener failed'));
    const osUser = options.osUser ?? os.userInfo().username;
    const resealed = await resealSecretVariables({ db: database.db, events, log }, osUser, ring);
    return {
      keyId: ring.currentKeyId,
      resealed,
      source: config.secretsKey ? 'FLEETGATE_SECRETS_KEY' : secretsKeyFile(config.dataDir),
    };
  } finally {
    await database.close();
  }
}
