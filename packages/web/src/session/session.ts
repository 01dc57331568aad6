import { useQuery } from '@tanstack/react-query';
import { createContext, useContext } from 'react';
import { api, data, type Me } from '../api/client.ts';

export const meQuery = {
  queryKey: ['me'],
  queryFn: async () => data(await api.GET('/api/v1/me')),
  staleTime: 60_000,
  retry: false,
} as const;

export function useMe() {
  return useQuery(meQuery);
}

export type Role = Me['memberships'][number]['role'];
export type Membership = Me['memberships'][number];

/** The organization the pages show, chosen in the header (kept per browser, not a secret). */
export interface OrgContextValue {
  me: Me;
  membership: Membership | undefined;
  orgId: number | undefined;
  setOrgId(orgId: number): void;
}

export const OrgContext = createContext<OrgContextValue | undefined>(undefined);

export function useOrg(): OrgContextValue {
  const value = useContext(OrgContext);
  if (!value) throw new Error('useOrg outside the signed-in shell');
  return value;
}

export type Action = Membership['actions'][number];

/**
 * Whether the signed-in person may do `action` in the current organization, as `/api/v1/me` states it: for
 * showing only the controls that will work. The server decides every request regardless.
 */
export function useCan(): (action: Action) => boolean {
  const { membership } = useOrg();
  return (action) => membership?.actions.includes(action) ?? false;
}

const ORG_KEY = 'fleetgate-org';
export function storedOrgId(): number | undefined {
  const value = Number(localStorage.getItem(ORG_KEY));
  return Number.isInteger(value) && value > 0 ? value : undefined;
}
export function storeOrgId(orgId: number): void {
  localStorage.setItem(ORG_KEY, String(orgId));
}
