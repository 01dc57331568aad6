import { type SqlBool, sql } from 'kysely';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { DeviceLinks } from '../remote-access/index.ts';
import { openThroughInstance } from './internal-link.ts';
import { internalUrlOf } from './registry.ts';

/**
 * Devices' links held by other instances, as links of this one (issue 19): a device online through another
 * running instance (its tunnel, its OpenVPN connection or its mender-connect link, as its row says) is reached through that instance's
 * internal link. Asked after this instance's own links, so a device connected here never takes the detour.
 */
export function otherInstancesLinks(deps: ServiceDeps, secret: string): DeviceLinks {
  return {
    async linkOf(device) {
      const row = await deps.db
        .selectFrom('devices')
        .select([
          'tunnel_instance',
          'vpn_instance',
          'mender_instance',
          sql<SqlBool>`connected_at > coalesce(disconnected_at, 0)`.as('tunnel_online'),
          sql<SqlBool>`vpn_connected_at > coalesce(vpn_disconnected_at, 0)`.as('vpn_online'),
          sql<SqlBool>`mender_connected_at > coalesce(mender_disconnected_at, 0)`.as('mender_online'),
        ])
        .where('id', '=', device.id)
        .executeTakeFirst();
      if (!row) return undefined;
      const holders = [
        row.tunnel_online ? row.tunnel_instance : null,
        row.vpn_online ? row.vpn_instance : null,
        row.mender_online ? row.mender_instance : null,
      ].filter((holder): holder is string => !!holder && holder !== deps.instanceId);
      for (const holder of holders) {
        const url = await internalUrlOf(deps.db, holder);
        if (!url) continue;
        return {
          open: (target, opener) =>
            openThroughInstance(url, secret, {
              from: deps.instanceId,
              to: holder,
              device: { id: device.id, uuid: device.uuid },
              target,
              ...(opener ? { opener } : {}),
            }),
        };
      }
      return undefined;
    },
  };
}
