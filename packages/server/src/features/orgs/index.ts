/**
 * Organizations: the one writer of `organizations` rows (others call these), and how a person's words name one.
 * Other features use only what is exported here.
 */
export { type OrgCandidate, type OrgRef, orgIdOf, orgRefParam } from './resolve.ts';
export { registerOrgRoutes } from './routes.ts';
export {
  createOrgRecord,
  lockOrganization,
  orgDeviceLimit,
  setOrgDeviceLimit,
  setOrgSessionRecording,
} from './service.ts';
