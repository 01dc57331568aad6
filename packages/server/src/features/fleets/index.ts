/** Fleets: groups of devices in an organization. Other features use only what is exported here. */
export { type FleetCandidate, type FleetRef, fleetIdOf, fleetRefParam } from './resolve.ts';
export { registerFleetRoutes } from './routes.ts';
export { defaultFleetFor, type FleetRow, fleetForAction } from './service.ts';
