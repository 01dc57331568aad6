import {
  createRootRoute,
  createRoute,
  createRouter,
  lazyRouteComponent,
  Outlet,
  redirect,
} from '@tanstack/react-router';
import { DashboardPage } from '../dashboard/DashboardPage.tsx';
import { SignInPage } from '../session/SignInPage.tsx';
import { AppShellLayout } from './AppShellLayout.tsx';
import { NotFoundPage } from './NotFoundPage.tsx';

/**
 * Every page of the UI, by URL. Sign-in and the dashboard load with the first page; every other page is its own
 * chunk, fetched when first opened.
 */
const rootRoute = createRootRoute({ component: Outlet, notFoundComponent: NotFoundPage });

const signInRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: '/sign-in',
  validateSearch: (search: Record<string, unknown>): { reason?: string; next?: string } => ({
    ...(typeof search.reason === 'string' ? { reason: search.reason } : {}),
    ...(typeof search.next === 'string' && search.next.startsWith('/') ? { next: search.next } : {}),
  }),
  component: SignInPage,
});

const shellRoute = createRoute({ getParentRoute: () => rootRoute, id: 'shell', component: AppShellLayout });

const dashboardRoute = createRoute({ getParentRoute: () => shellRoute, path: '/', component: DashboardPage });

export interface DevicesSearch {
  q?: string;
  status?: string;
  fleetId?: number;
  tag?: string;
  deviceType?: string;
  sort?: string;
  page?: number;
}

const devicesRoute = createRoute({
  getParentRoute: () => shellRoute,
  path: '/devices',
  validateSearch: (search: Record<string, unknown>): DevicesSearch => {
    const out: DevicesSearch = {};
    for (const key of ['q', 'status', 'tag', 'deviceType', 'sort'] as const) {
      const value = search[key];
      if (typeof value === 'string' && value) out[key] = value;
    }
    const fleetId = Number(search.fleetId);
    if (Number.isInteger(fleetId) && fleetId > 0) out.fleetId = fleetId;
    const page = Number(search.page);
    if (Number.isInteger(page) && page > 1) out.page = page;
    return out;
  },
  component: lazyRouteComponent(() => import('../devices/DevicesPage.tsx'), 'DevicesPage'),
});
const deviceRoute = createRoute({
  getParentRoute: () => shellRoute,
  path: '/devices/$device',
  component: lazyRouteComponent(() => import('../devices/DevicePage.tsx'), 'DevicePage'),
});
const fleetsRoute = createRoute({
  getParentRoute: () => shellRoute,
  path: '/fleets',
  component: lazyRouteComponent(() => import('../fleets/FleetsPage.tsx'), 'FleetsPage'),
});
const fleetRoute = createRoute({
  getParentRoute: () => shellRoute,
  path: '/fleets/$fleetId',
  component: lazyRouteComponent(() => import('../fleets/FleetPage.tsx'), 'FleetPage'),
});
const pendingRoute = createRoute({
  getParentRoute: () => shellRoute,
  path: '/pending',
  component: lazyRouteComponent(() => import('../pending/PendingPage.tsx'), 'PendingPage'),
});
const peopleRoute = createRoute({
  getParentRoute: () => shellRoute,
  path: '/people',
  component: lazyRouteComponent(() => import('../people/PeoplePage.tsx'), 'PeoplePage'),
});
const auditRoute = createRoute({
  getParentRoute: () => shellRoute,
  path: '/audit',
  component: lazyRouteComponent(() => import('../audit/AuditPage.tsx'), 'AuditPage'),
});
const sessionsRoute = createRoute({
  getParentRoute: () => shellRoute,
  path: '/sessions',
  component: lazyRouteComponent(() => import('../sessions/SessionsPage.tsx'), 'SessionsPage'),
});
const sessionReplayRoute = createRoute({
  getParentRoute: () => shellRoute,
  path: '/sessions/$sessionId',
  component: lazyRouteComponent(() => import('../sessions/SessionReplayPage.tsx'), 'SessionReplayPage'),
});
const settingsRoute = createRoute({
  getParentRoute: () => shellRoute,
  path: '/settings',
  component: lazyRouteComponent(() => import('../settings/SettingsPage.tsx'), 'SettingsPage'),
});
const accountRoute = createRoute({
  getParentRoute: () => shellRoute,
  path: '/account',
  component: lazyRouteComponent(() => import('../people/AccountPage.tsx'), 'AccountPage'),
});

const routeTree = rootRoute.addChildren([
  signInRoute,
  shellRoute.addChildren([
    dashboardRoute,
    devicesRoute,
    deviceRoute,
    fleetsRoute,
    fleetRoute,
    pendingRoute,
    peopleRoute,
    auditRoute,
    sessionsRoute,
    sessionReplayRoute,
    settingsRoute,
    accountRoute,
  ]),
]);

export const router = createRouter({ routeTree, defaultPreload: 'intent' });

declare module '@tanstack/react-router' {
  interface Register {
    router: typeof router;
  }
}

export { redirect };
