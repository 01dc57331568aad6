import type { Actor } from '../../infra/access/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { type DeviceRef, deviceForAction } from '../devices/index.ts';
import { recordsSessions } from '../sessions/index.ts';

export interface TerminalAccess {
  device: { id: number; uuid: string; name: string };
  /** The device's organization records shell sessions: the terminal's output will be kept. */
  recorded: boolean;
}

/**
 * Whether `actor` may open a terminal on the device (a shell: `device.ssh`, operators and above of its
 * organization or fleet), and whether it would be recorded. Others who see the device get `forbidden`, the rest
 * `not_found`. The upgrade itself asks the stream router, which checks again and audits.
 */
export async function getTerminalAccess(
  deps: ServiceDeps,
  actor: Actor,
  ref: DeviceRef,
): Promise<TerminalAccess> {
  const device = await deviceForAction(deps.db, actor, ref, 'device.ssh');
  return {
    device: { id: device.id, uuid: device.uuid, name: device.name },
    recorded: await recordsSessions(deps, device.org_id),
  };
}
