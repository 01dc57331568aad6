import { type QueryClient, useQueryClient } from '@tanstack/react-query';
import { useEffect } from 'react';
import type { Device, DevicePage } from './client.ts';

/**
 * Live updates from `GET /api/v1/events` (server-sent events, signed in by the session cookie): a device's
 * presence is patched into every device list and page on screen at once, and any other change in the
 * organization makes the pages on screen fetch again (batched: a burst of changes is one refetch).
 */
type Presence = Pick<
  Device,
  'id' | 'status' | 'onlineVia' | 'vpnAddress' | 'connectedAt' | 'disconnectedAt' | 'lastSeenAt'
>;

export function useLiveUpdates(enabled: boolean): void {
  const queryClient = useQueryClient();
  useEffect(() => {
    if (!enabled) return;
    const source = new EventSource('/api/v1/events');
    let refetch: ReturnType<typeof setTimeout> | undefined;
    const refetchSoon = () => {
      clearTimeout(refetch);
      refetch = setTimeout(
        () => void queryClient.invalidateQueries({ predicate: (q) => q.queryKey[0] !== 'me' }),
        250,
      );
    };
    source.addEventListener('device', (event) => {
      const shown = patchPresence(queryClient, JSON.parse((event as MessageEvent<string>).data) as Presence);
      // A device no list on screen holds yet (one that just enrolled): the lists fetch again to take it in.
      if (!shown) void queryClient.invalidateQueries({ queryKey: ['devices'] });
      // Counts by status change with presence; lists keep their rows (a device that went offline under an
      // "online" filter stays in view, marked offline, rather than vanishing under the reader's pointer).
      void queryClient.invalidateQueries({ queryKey: ['dashboard'] });
    });
    source.addEventListener('change', (event) => {
      const change = JSON.parse((event as MessageEvent<string>).data) as { resourceType: string };
      if (change.resourceType === 'membership' || change.resourceType === 'organization')
        void queryClient.invalidateQueries({ queryKey: ['me'] });
      refetchSoon();
    });
    source.addEventListener('end', () => {
      source.close();
      // The next request answers 401, which takes the page to the sign-in form with the reason.
      void queryClient.invalidateQueries({ queryKey: ['me'] });
    });
    return () => {
      clearTimeout(refetch);
      source.close();
    };
  }, [enabled, queryClient]);
}

/** Patches the device into every cached list and page; answers whether any of them held it. */
function patchPresence(queryClient: QueryClient, presence: Presence): boolean {
  let shown = false;
  const patch = (device: Device): Device => {
    if (device.id !== presence.id) return device;
    shown = true;
    return {
      ...device,
      status: presence.status,
      onlineVia: presence.onlineVia,
      vpnAddress: presence.vpnAddress,
      connectedAt: presence.connectedAt,
      disconnectedAt: presence.disconnectedAt,
      lastSeenAt: presence.lastSeenAt,
    };
  };
  queryClient.setQueriesData<DevicePage>({ queryKey: ['devices'] }, (page) =>
    page ? { ...page, items: page.items.map(patch) } : page,
  );
  queryClient.setQueriesData<Device>({ queryKey: ['device'] }, (device) => (device ? patch(device) : device));
  return shown;
}
