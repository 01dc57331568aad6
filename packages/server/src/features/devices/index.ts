/**
 * Devices: the one door for device rows (`insertDevice`, the device limit), how a person's words name a device
 * (resolve.ts), its status, and decommissioning. Other features use only what is exported here.
 */
export { type DecommissionedDevice, decommissionDevice, registerDecommissionRoutes } from './decommission.ts';
export {
  type DeviceCandidate,
  type DeviceRef,
  deviceRefParam,
  parseDeviceRef,
  resolveDeviceRef,
  unknownDevice,
} from './resolve.ts';
export { registerDeviceRoutes } from './routes.ts';
export {
  assertRoomForDevice,
  type DevicePresence,
  type DeviceRow,
  deviceForAction,
  devicePresence,
  getDeviceLimit,
  insertDevice,
  isDeviceLimitReached,
  setDeviceLimit,
} from './service.ts';
export {
  type DeviceStatus,
  deviceStatus,
  deviceStatuses,
  type LinkKind,
  linkKinds,
  onlineLinks,
  statusExpression,
} from './status.ts';
