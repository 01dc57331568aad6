import type { Principal } from '../../infra/access/index.ts';
import { type Db, lowerAscii } from '../../infra/db/index.ts';
import { type DeviceRow, resolveDeviceRef, unknownDevice } from '../devices/index.ts';

/**
 * How people name a device when they reach it — at the SSH gateway, in OpenSSH integration mode and at the
 * CONNECT proxy (the stream router resolves `{typed}` device references here): what the API's paths take
 * (devices/resolve.ts: uuid, unique uuid prefix, id or name), optionally followed by `.<deviceSuffix>`
 * (`kiosk-17.devices`). A full uuid may also be followed by `.balena`, openBalena's name for a device behind its VPN
 * (`<uuid>.balena`), so the scripts and habits of people moving from it still work.
 */

/** A device the person may see, found from what they typed: its whole row, so the router need not read it again. */
export type ResolvedDevice = DeviceRow;

export { unknownDevice };

/**
 * Resolves a device as a person typed it at a host name, among the devices `principal` may read: the suffix is
 * taken off and the rest resolved as the API resolves `:device` (`not_found`, or `conflict` with the candidates).
 */
export async function resolveDevice(
  db: Db,
  principal: Principal,
  typed: string,
  deviceSuffix: string,
): Promise<ResolvedDevice> {
  let text = typed.trim();
  const ending = `.${deviceSuffix}`;
  if (lowerAscii(text).endsWith(lowerAscii(ending))) text = text.slice(0, -ending.length);
  else if (/^[0-9a-f]{32}\.balena$/.test(lowerAscii(text))) text = text.slice(0, -'.balena'.length);
  if (!text) throw unknownDevice(typed);
  return resolveDeviceRef(db, principal, text, typed);
}
