import { sha256Hex } from '../../infra/crypto/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { DeviceCredential } from './authenticate.ts';

/**
 * After a refused device credential: `true` when the credential is genuine but its device was decommissioned,
 * so the tunnel answers 403 (the agent stops) rather than 401 (the agent retries). Only a credential the
 * device really held says so: a guess at a decommissioned device's uuid learns nothing.
 */
export async function decommissionedCredential(
  deps: ServiceDeps,
  credential: DeviceCredential,
): Promise<boolean> {
  if (credential.type === 'token') {
    let claims: Awaited<ReturnType<ServiceDeps['deviceTokens']['verify']>>;
    try {
      claims = await deps.deviceTokens.verify(credential.token);
    } catch {
      return false;
    }
    const device = await deps.db
      .selectFrom('devices')
      .select(['uuid', 'decommissioned_at'])
      .where('id', '=', claims.deviceId)
      .executeTakeFirst();
    return !!device && device.uuid === claims.uuid && device.decommissioned_at !== null;
  }
  const found = await deps.db
    .selectFrom('device_keys')
    .innerJoin('devices', 'devices.id', 'device_keys.device_id')
    .select(['devices.uuid', 'devices.decommissioned_at'])
    .where('device_keys.key_hash', '=', sha256Hex(credential.key))
    .executeTakeFirst();
  return !!found && found.uuid === credential.uuid && found.decommissioned_at !== null;
}
