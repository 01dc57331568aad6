import { type QueryClient, useQueryClient } from '@tanstack/react-query';
import { useEffect } from 'react';
import type { Device, DevicePage, ListedDevice } from './client.ts';

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
    const recent = new RecentPresence();
    // A list or page fetched while a presence event arrives may have been read before that presence was written:
    // its answer lands after the patch and would put the older status back (a device accepted from the pending
    // queue stayed "never-connected" in the devices table although online). Newer presence is applied again.
    const stopReapplying = queryClient.getQueryCache().subscribe((cacheEvent) => {
      if (cacheEvent.type !== 'updated' || cacheEvent.action.type !== 'success' || cacheEvent.action.manual)
        return;
      const kind = cacheEvent.query.queryKey[0];
      if ((kind !== 'devices' && kind !== 'device') || recent.size === 0) return;
      const key = cacheEvent.query.queryKey;
      if (kind === 'device')
        queryClient.setQueryData<Device>(key, (device) => (device ? recent.newest(device) : device));
      else
        queryClient.setQueryData<DevicePage>(key, (page) =>
          page ? { ...page, items: page.items.map((device) => recent.newest(device)) } : page,
        );
    });
    source.addEventListener('device', (event) => {
      const presence = JSON.parse((event as MessageEvent<string>).data) as Presence;
      recent.add(presence);
      const shown = patchPresence(queryClient, presence);
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
      stopReapplying();
      source.close();
    };
  }, [enabled, queryClient]);
}

/** How long a presence event is kept to be applied again over answers fetched meanwhile, in milliseconds. */
const RECENT_MS = 30_000;

/** The presence events of the last `RECENT_MS`, newest per device. */
class RecentPresence {
  private readonly byDevice = new Map<number, { presence: Presence; at: number }>();

  get size(): number {
    return this.byDevice.size;
  }

  add(presence: Presence): void {
    const now = Date.now();
    for (const [id, entry] of this.byDevice) if (now - entry.at > RECENT_MS) this.byDevice.delete(id);
    this.byDevice.set(presence.id, { presence, at: now });
  }

  /** The device with the presence told for it, when that is newer than what the device says. */
  newest<D extends ListedDevice>(device: D): D {
    const entry = this.byDevice.get(device.id);
    if (!entry || stampOf(entry.presence) <= stampOf(device)) return device;
    return withPresence(device, entry.presence);
  }
}

/** The latest presence time a device view carries: its last connect, disconnect or sign of life. */
function stampOf(presence: Partial<Pick<Presence, 'connectedAt' | 'disconnectedAt' | 'lastSeenAt'>>): number {
  return Math.max(
    ...[presence.connectedAt, presence.disconnectedAt, presence.lastSeenAt].map((t) =>
      t ? Date.parse(t) : 0,
    ),
  );
}

function withPresence<D extends ListedDevice>(device: D, presence: Presence): D {
  return {
    ...device,
    status: presence.status,
    onlineVia: presence.onlineVia,
    vpnAddress: presence.vpnAddress,
    connectedAt: presence.connectedAt,
    disconnectedAt: presence.disconnectedAt,
    lastSeenAt: presence.lastSeenAt,
  };
}

/** Patches the device into every cached list and page; answers whether any of them held it. */
function patchPresence(queryClient: QueryClient, presence: Presence): boolean {
  let shown = false;
  const patch = <D extends ListedDevice>(device: D): D => {
    if (device.id !== presence.id) return device;
    shown = true;
    return withPresence(device, presence);
  };
  queryClient.setQueriesData<DevicePage>({ queryKey: ['devices'] }, (page) =>
    page ? { ...page, items: page.items.map(patch) } : page,
  );
  queryClient.setQueriesData<Device>({ queryKey: ['device'] }, (device) => (device ? patch(device) : device));
  return shown;
}
