/** What other features may use of devices: the device rows' one door, and how a person's words name a device. */
export { type DeviceCandidate, resolveDeviceRef, unknownDevice } from './resolve.ts';
export { deviceRefParam } from './routes.ts';
export { type DeviceRef, type DeviceRow, deviceForAction, parseDeviceRef } from './service.ts';
