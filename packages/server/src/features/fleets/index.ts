/** What other features may use of fleets: how a person's words name a fleet. */
export { type FleetCandidate, type FleetRef, fleetIdOf, fleetRefParam } from './resolve.ts';
