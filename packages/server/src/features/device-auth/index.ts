/**
 * Device authentication: the credential a device sends (device token, or uuid + device key), checked once for
 * every door a device comes in by (the API, the tunnel, the Mender-compatible API).
 */
export {
  authenticateDevice,
  authenticateDeviceKey,
  type DeviceCredential,
  deviceCredentialOf,
} from './authenticate.ts';
export { decommissionedCredential } from './decommissioned.ts';
