import { z } from 'zod';
import { actorOf, type TypedApp } from '../../infra/http/index.ts';
import { idParam } from '../../infra/http/schemas.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import { deviceStatuses } from '../devices/index.ts';
import { DASHBOARD_HOURS, readDashboard } from './service.ts';

const statusCounts = z.object(Object.fromEntries(deviceStatuses.map((s) => [s, z.number()]))) as z.ZodObject<
  Record<(typeof deviceStatuses)[number], z.ZodNumber>
>;

const dashboardSchema = z.object({
  orgId: z.number(),
  at: z.string().describe('when the figures were read'),
  devices: z.object({
    total: statusCounts,
    fleets: z.array(z.object({ fleetId: z.number(), name: z.string(), counts: statusCounts })),
  }),
  connections: z
    .array(z.object({ start: z.string(), connects: z.number(), disconnects: z.number() }))
    .describe(
      `${DASHBOARD_HOURS} hourly buckets, oldest first, the last holding the current hour: tunnel and OpenVPN connects and disconnects from the connection history (written about once a second)`,
    ),
  failedDeviceAuthentications: z
    .number()
    .nullable()
    .describe(
      `refusals of devices recorded in the audit log over the last ${DASHBOARD_HOURS} h (audit events of this organization whose actor is a device or an unauthenticated caller and whose outcome is denied or failure: refused registrations, key exchanges, auth requests). Wrong device keys and tokens name no organization and are only counted in memory, so they are not included. null when the caller may not read the audit log`,
    ),
  pendingAuthSets: z.number().describe('auth sets waiting for acceptance'),
  liveSessions: z.number().describe('remote sessions open now'),
});

export function registerDashboardRoutes(app: TypedApp, deps: ServiceDeps): void {
  app.get(
    '/api/v1/orgs/:orgId/dashboard',
    {
      schema: {
        tags: ['organizations'],
        summary: `An organization at a glance: devices by status per fleet, connects and disconnects per hour over the last ${DASHBOARD_HOURS} h, failed device authentications, the pending queue, live sessions. Scoped like the device list`,
        params: z.object({ orgId: idParam }),
        response: { 200: dashboardSchema },
      },
    },
    async (request) => readDashboard(deps, actorOf(request), request.params.orgId),
  );
}
