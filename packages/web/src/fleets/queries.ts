import { useQuery } from '@tanstack/react-query';
import { api, data } from '../api/client.ts';

/** The organization's fleets (up to 500: pickers and filters). */
export function useFleets(orgId: number | undefined) {
  return useQuery({
    queryKey: ['fleets', orgId, 'all'],
    enabled: orgId !== undefined,
    queryFn: async () => data(await api.GET('/api/v1/fleets', { params: { query: { orgId, limit: 500 } } })),
  });
}
