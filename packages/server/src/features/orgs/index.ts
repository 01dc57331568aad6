/** What other features may use of organizations: how a person's words name one. */
export { type OrgCandidate, type OrgRef, orgIdOf, orgRefParam } from './resolve.ts';
