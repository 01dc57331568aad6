import { z } from 'zod';
import type { Actor } from '../../infra/access/index.ts';
import type { AppEvents } from '../../infra/events/index.ts';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { type ServiceDeps, write } from '../../infra/service/index.ts';
import { revokeDeviceCredentials } from '../device-keys/service.ts';
import type { DeviceRef } from './resolve.ts';
import { deviceRefParam } from './resolve.ts';
import { deviceSchema } from './routes.ts';
import { type DeviceView, deviceForAction, getDevice } from './service.ts';

/**
 * Decommissioning: the end of a device's life on this server. Its record stays (history, audit), but every
 * credential it holds is refused from the next request on, and whoever holds a live connection for it (the
 * tunnel) is told to close it.
 */

export type DecommissionedDevice = AppEvents['device.decommissioned'];

/**
 * Decommissions a device in one transaction: marks it, revokes all its keys, refuses its tokens issued so far
 * and rejects its auth sets; then, after the commit, tells the app's event bus (`device.decommissioned`).
 * Doing it again changes nothing more but tells the bus again (a connection may have slipped in).
 */
export async function decommissionDevice(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
): Promise<DeviceView> {
  const device = await write(
    deps,
    actor,
    { action: 'device.decommission', resourceType: 'device' },
    async (trx) => {
      const row = await deviceForAction(trx, actor, ref, 'device.decommission');
      const now = Date.now();
      const revokedKeys = await revokeDeviceCredentials(trx, row.id, now);
      if (row.decommissioned_at === null) {
        await trx.updateTable('devices').set({ decommissioned_at: now }).where('id', '=', row.id).execute();
      }
      const rejected = await trx
        .updateTable('auth_sets')
        .set({ status: 'rejected', updated_at: now })
        .where('device_id', '=', row.id)
        .where('status', 'in', ['accepted', 'preauthorized', 'pending'])
        .executeTakeFirst();
      const decommissioned: DecommissionedDevice = {
        deviceId: row.id,
        uuid: row.uuid,
        orgId: row.org_id,
        fleetId: row.fleet_id,
      };
      return {
        value: decommissioned,
        orgId: row.org_id,
        resourceId: row.uuid,
        details: { revokedKeys, rejectedAuthSets: Number(rejected.numUpdatedRows) },
      };
    },
  );
  deps.events.emit('device.decommissioned', device);
  return getDevice(deps, actor, device.deviceId);
}

export function registerDecommissionRoutes(app: TypedApp, deps: ServiceDeps): void {
  app.post(
    '/api/v1/devices/:device/decommission',
    {
      schema: {
        tags: ['devices'],
        summary: 'Decommission a device: every credential refused at once, live connections closed',
        params: z.object({ device: deviceRefParam }),
        response: { 200: deviceSchema },
      },
    },
    async (request) => decommissionDevice(deps, actorOf(request), request.params.device),
  );
}
